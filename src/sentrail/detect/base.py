"""What every detector sees: per-step facts computed once, and the run's shared context."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any, ClassVar

from mypy_extensions import mypyc_attr

from sentrail.detect.text import (
    SCAN_HEAD,
    SCAN_TAIL,
    bounded,
    iter_strings,
    json_text,
    strings_text,
)
from sentrail.model.baseline import AgentBaseline
from sentrail.model.finding import Category, Finding, Severity
from sentrail.model.status import DENIED_STATUSES, FAILED_STATUSES
from sentrail.model.timestamps import parse_time
from sentrail.model.trace import RunHeader, Step
from sentrail.policy.bundle import RiskClass
from sentrail.policy.compiled import Policy, Profile
from sentrail.policy.match import GlobSet
from sentrail.policy.risk import tool_verb


class StepFacts:
    """One step with the facts detectors share, derived once."""

    __slots__ = (
        "_param_strings",
        "_result_text",
        "_time",
        "denied",
        "environment",
        "failed",
        "has_approval",
        "index",
        "params",
        "permissions",
        "registered",
        "result_cut",
        "result_of",
        "risk",
        "status",
        "step",
        "tool",
    )

    def __init__(self, step: Step, policy: Policy, run_environment: str | None) -> None:
        self.step = step
        self.index = step.step_index
        call = step.tool_call
        self.tool: str | None = call.tool if call is not None else None
        # A result that arrived after its call (the decision point): the call's tool.
        self.result_of: str | None = None
        self.params: dict[str, Any] = call.parameters if call is not None else {}
        self.risk: RiskClass | None = None
        self.registered = False
        if self.tool is not None:
            self.risk, self.registered = policy.registry.classify(self.tool)
        res = step.result
        status = res.status if res is not None else None
        self.status = status.lower() if isinstance(status, str) else ""
        self.failed = self.status in FAILED_STATUSES
        self.denied = self.status in DENIED_STATUSES
        self.environment = step.environment or run_environment
        self.permissions = step.permissions_used
        self.has_approval = bool(step.approval_id)
        self._time: dt.datetime | bool | None = False
        self._result_text: str | None = None
        self.result_cut = False  # set with result_text: it does not hold the whole result
        self._param_strings: list[tuple[str, str]] | None = None

    @property
    def is_write(self) -> bool:
        return self.risk is not None and self.risk is not RiskClass.READ_ONLY

    @property
    def time(self) -> dt.datetime | None:
        if self._time is False:
            self._time = parse_time(self.step.timestamp)
        return self._time  # type: ignore[return-value]

    @property
    def result_text(self) -> str:
        """The result (data and error) as one text, computed once and shared: for cheap
        prefilters and substring checks before any per-string work. A JSON text too long to
        keep whole would lose the middle of the result, so a long result is its strings one
        by one instead, each bounded as the per-string detectors read it (up to
        ``MAX_STRINGS_TEXT``); ``result_cut`` says so: a prefilter must not answer "no"
        then, substring searches find any value of a string's head or tail."""
        if self._result_text is None:
            res = self.step.result
            self.result_cut = False
            if res is None or (res.data is None and res.error is None):
                self._result_text = ""
            else:
                text = json_text([res.data, res.error])
                if len(text) > SCAN_HEAD + SCAN_TAIL:  # json_text kept its head and tail
                    text, self.result_cut = strings_text([res.data, res.error]), True
                self._result_text = text
        return self._result_text

    @property
    def param_strings(self) -> list[tuple[str, str]]:
        """(json path, bounded text) for every string of the call's parameters, in
        ``iter_strings`` order: walked once per step and shared by the detectors (each
        stops reading where its own limit says). Do not modify the list."""
        strings = self._param_strings
        if strings is None:
            strings = self._param_strings = (
                [(p, bounded(t)) for p, t in iter_strings(self.params)] if self.params else []
            )
        return strings

    @property
    def verb(self) -> str:
        return tool_verb(self.tool or "")


Emit = Callable[[Finding, "StepFacts | None"], None]
TRIGGER_STEP = -1  # where instructions found in the trigger (task text) are recorded


def _trigger_untrusted(header: RunHeader, profile: Profile) -> bool:
    """Does the task come from an untrusted channel: the trace says so
    (``trigger_source``), or the profile's ``untrusted_triggers`` globs match the trigger's
    source or its text (``email:*``)?"""
    source = header.trigger_source or ""
    if source.lower() in UNTRUSTED_SOURCES:
        return True
    globs = profile.untrusted_triggers
    if globs is None:
        return False
    return (bool(source) and source in globs) or (header.trigger or "")[:200] in globs


UNTRUSTED_SOURCES = frozenset(
    {
        "email",
        "e-mail",
        "ticket",
        "web_form",
        "webform",
        "form",
        "chat",
        "sms",
        "webhook",
        "issue",
        "comment",
        "external",
        "untrusted",
    }
)


class RunContext:
    """Per-run state shared by the detectors of one run."""

    def __init__(
        self,
        header: RunHeader,
        policy: Policy,
        emit: Emit,
        baseline: AgentBaseline | None = None,
    ) -> None:
        self.header = header
        self.policy = policy
        self.profile: Profile = policy.profile_for(header.agent_id)
        self.baseline = baseline
        self.history: list[StepFacts] = []
        self.findings: list[Finding] = []
        # Every instruction found: (step index, its whole window text), and per step the
        # JSON paths (fields) that carried one. The trigger's are at TRIGGER_STEP.
        self.injections: list[tuple[int, str]] = []
        self.injected_fields: dict[int, set[str]] = {}
        self.trigger_untrusted = _trigger_untrusted(header, self.profile)
        self.calls = self.writes = self.failures = self.denied_count = 0
        self._emit = emit
        self.boundary_from_summary = False
        self.boundary = self.profile.boundary
        self.denied_permissions: frozenset[str] = frozenset()
        self.update_header(header)

    def add_injection(self, step: int, text: str, path: str) -> None:
        self.injections.append((step, text))
        self.injected_fields.setdefault(step, set()).add(path)

    def move_injections(self, since: int, from_step: int, to_step: int) -> None:
        """Attribute the injections found at ``from_step`` (recorded after position
        ``since``) to ``to_step`` as well (a result event belongs to its call's step)."""
        for at, text in self.injections[since:]:
            if at == from_step:
                self.injections.append((to_step, text))
        paths = self.injected_fields.get(from_step)
        if paths:
            self.injected_fields.setdefault(to_step, set()).update(paths)

    def field_injected(self, step: int, path: str) -> bool:
        """Did an instruction sit in the field ``path`` of ``step``'s result, or in a field
        that contains it (a whole-result string, fields judged joined)?"""
        paths = self.injected_fields.get(step)
        if not paths:
            return False
        for p in paths:
            if path == p or path.startswith((p + ".", p + "[")) or p.startswith(path + "["):
                return True
        return False

    def update_header(self, header: RunHeader) -> None:
        """Take a newer header (``run_completed`` may bring the permissions summary)."""
        self.header = header
        summary = header.permissions_summary
        if summary is None:
            return
        self.denied_permissions = frozenset(summary.denied)
        if self.profile.boundary is None and not self.boundary_from_summary:
            # Without a policy boundary: the grant minus what the trace says was escalated.
            escalated = set(summary.escalated)
            self.boundary = GlobSet(p for p in summary.granted if p not in escalated)
            self.boundary_from_summary = True

    def emit(
        self,
        rule: str,
        category: Category,
        severity: Severity,
        facts: StepFacts | None,
        message: str,
        evidence: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        key: str = "",
    ) -> Finding:
        step_index = facts.index if facts is not None else None
        raw = f"{self.header.run_id}\x00{rule}\x00{step_index}\x00{key}".encode()
        finding = Finding(
            id="F-" + hashlib.sha256(raw).hexdigest()[:16],
            rule=rule,
            category=category,
            severity=severity,
            step_index=step_index,
            message=message,
            evidence=evidence or {},
            tags=tags or list(TAGS.get(category, ())),
        )
        self._emit(finding, facts)
        return finding


@mypyc_attr(allow_interpreted_subclasses=True)
class Detector:
    """Base class. One instance per run; ``on_step`` sees steps in arrival order.

    What a detector can say is declared on its class, as data (the registry,
    :mod:`sentrail.detect.registry`, lists detectors by ``name``): its ``category`` and,
    per rule id, the severities that rule can have. A rule id ending in ``*`` stands for
    a family (the policy's own rules, ``policy.rule.<id>``).

    Every subclass defines ``__init__``: compiled by mypyc, a class constructed through an
    ``__init__`` inherited from this base (which allows interpreted subclasses, for the
    hooks) keeps one reference to ``ctx`` too many, and the run's whole state outlives it.
    """

    name: ClassVar[str] = ""
    category: ClassVar[Category]
    rules: ClassVar[dict[str, tuple[Severity, ...]]] = {}

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def on_step(self, facts: StepFacts) -> None:  # pragma: no cover - default
        return None

    def finish(self) -> None:
        return None


# OWASP Top 10 for Agentic Applications (ASI) and MITRE ATLAS technique ids per category.
TAGS: dict[Category, tuple[str, ...]] = {
    Category.PERMISSION_ESCALATION: ("OWASP-ASI03", "AML.T0053"),
    Category.UNUSUAL_SEQUENCE: ("OWASP-ASI10",),
    Category.EXCESSIVE_RETRIES: ("OWASP-ASI08",),
    Category.DATA_EXFILTRATION: ("OWASP-ASI02", "AML.T0025", "AML.T0057"),
    Category.POLICY_VIOLATION: ("OWASP-ASI02",),
    Category.UNTRUSTED_INSTRUCTION: ("OWASP-ASI01", "AML.T0051.001"),
    Category.TAINTED_ACTION: ("OWASP-ASI01", "OWASP-ASI02", "AML.T0051.001"),
    Category.MISSING_TELEMETRY: ("OWASP-ASI09",),
    Category.BEHAVIOURAL_CORRELATION: ("OWASP-ASI10",),
    Category.ATTESTATION: ("OWASP-ASI04",),
}
