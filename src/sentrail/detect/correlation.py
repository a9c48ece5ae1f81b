"""behavioural_correlation: patterns that only show when steps are read together.

Runs after every other detector, so it sees their findings for the current step in
``ctx.findings``; ``ctx.history`` holds the earlier steps. Each finding cites the steps it
joins (``evidence.steps``).

- ``repeated_denials``: ``DENIAL_BURST`` denied writes within ``DENIAL_WINDOW_S`` seconds
  (or within ``DENIAL_WINDOW_STEPS`` steps when timestamps are missing) — warning.
- ``escalation_after_denial``: a (non-approved) permission escalation within
  ``ESCALATION_AFTER`` steps of a denied step — critical.
- ``denied_rerouted``: a denied write, then a successful write by a different tool whose
  parameters name the same target (resource, host, table, path, …) — critical.
- ``failure_cascade``: after a denied step, failing steps keep coming (a run that flails
  against, or around, the refusal): ``CASCADE_WARN`` failures on at least two tools is a
  warning, ``CASCADE_CRITICAL`` on at least three tools critical. The cascade ends after
  ``CASCADE_GAP`` steps in a row that did not fail; it is reported at most twice.
- ``low_confidence_action``: a high-risk action (sensitive write or worse) right after a step
  whose confidence is below ``LOW_CONFIDENCE`` — warning.

A write following an untrusted instruction is the taint detector's finding, not this one's.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sentrail.detect.base import Detector, RunContext, StepFacts
from sentrail.model.finding import Category, Finding, Severity
from sentrail.policy.bundle import RiskClass

DENIAL_BURST = 3
DENIAL_WINDOW_S = 60.0
DENIAL_WINDOW_STEPS = 5
ESCALATION_AFTER = 3
LOW_CONFIDENCE = 0.5
CASCADE_WARN = 3
CASCADE_CRITICAL = 6
CASCADE_GAP = 3
# Parameters naming the thing acted on (not its container: "database", "project", "account"
# are shared by unrelated calls).
TARGET_KEYS = frozenset(
    {
        *("resource", "target", "host", "hostname", "server", "instance", "instance_id"),
        *("table", "collection", "index", "path", "file", "filename", "filepath"),
        *("file_path", "dir", "directory", "bucket", "key", "url", "repo", "repository"),
        *("branch", "user", "username", "user_name", "role", "role_name", "group"),
        *("group_id", "service", "queue", "topic", "arn", "resource_id", "vm", "volume"),
        *("secret", "secret_name"),
    }
)
_MAX_TARGET_LEN = 1024
_MAX_TARGETS = 10_000
_HIGH_RANK = RiskClass.SENSITIVE_WRITE.rank
_CAT = Category.BEHAVIOURAL_CORRELATION


class _Cascade:
    __slots__ = ("denied", "failures", "quiet", "reported", "tools")

    def __init__(self, denied: StepFacts) -> None:
        self.denied = denied
        self.failures: list[int] = []
        self.tools: dict[str, None] = {}
        self.quiet = 0
        self.reported: Severity | None = None


def targets_of(facts: StepFacts) -> list[tuple[str, str]]:
    """(parameter name, normalised value) for the parameters that name what a call acts on."""
    out: list[tuple[str, str]] = []
    for k, v in facts.params.items():
        if isinstance(v, str) and k.lower() in TARGET_KEYS and 0 < len(v) <= _MAX_TARGET_LEN:
            out.append((k, v.strip().lower()))
    res = facts.step.resource
    if res and len(res) <= _MAX_TARGET_LEN:
        out.append(("resource", res.strip().lower()))
    return [(k, v) for k, v in out if v]


class BehaviouralCorrelation(Detector):
    name = "behavioural_correlation"
    category = Category.BEHAVIOURAL_CORRELATION
    rules: ClassVar[dict[str, tuple[Severity, ...]]] = {
        "behavioural_correlation.low_confidence_action": (Severity.WARNING,),
        "behavioural_correlation.repeated_denials": (Severity.WARNING,),
        "behavioural_correlation.denied_rerouted": (Severity.CRITICAL,),
        "behavioural_correlation.escalation_after_denial": (Severity.CRITICAL,),
        "behavioural_correlation.failure_cascade": (Severity.WARNING, Severity.CRITICAL),
    }

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self._ordinal = 0
        self._ordinals: dict[int, int] = {}  # step_index -> arrival ordinal (last wins)
        self._denials: list[tuple[int, StepFacts]] = []  # (ordinal, facts), recent only
        self._current: StepFacts | None = None
        self._denial_reported = False
        # target value -> (denied step, its arrival ordinal, parameter name)
        self._denied_targets: dict[str, tuple[StepFacts, int, str]] = {}
        self._findings_seen = 0
        self._previous: StepFacts | None = None
        self._escalations_done: set[int] = set()  # ordinals of denials already joined
        self._cascade: _Cascade | None = None

    def on_step(self, facts: StepFacts) -> None:
        self._ordinal += 1
        ordinal = self._ordinal
        self._ordinals[facts.index] = ordinal
        self._current = facts
        if len(self.ctx.findings) > self._findings_seen:
            self._scan_findings()
        if self._cascade is not None or facts.denied:
            self._cascade_step(facts)
        if facts.denied:
            if facts.is_write:
                self._on_denied_write(ordinal, facts)
        elif self._denied_targets and facts.is_write and not facts.failed:
            self._check_reroute(facts)
        risk = facts.risk
        prev = self._previous
        if (
            risk is not None
            and risk.rank >= _HIGH_RANK
            and prev is not None
            and prev.step.confidence is not None
            and prev.step.confidence < LOW_CONFIDENCE
        ):
            self._emit(
                "low_confidence_action",
                Severity.WARNING,
                facts,
                f"High-risk action after low confidence — {risk.value.replace('_', ' ')} "
                f"{facts.tool} right after step {prev.index} (confidence "
                f"{prev.step.confidence:.2f})",
                {
                    "steps": [prev.index, facts.index],
                    "tool": facts.tool,
                    "risk": risk.value,
                    "confidence": prev.step.confidence,
                },
            )
        self._previous = facts

    def finish(self) -> None:
        if len(self.ctx.findings) > self._findings_seen:
            self._scan_findings()

    def _emit(
        self,
        rule: str,
        severity: Severity,
        facts: StepFacts,
        message: str,
        evidence: dict[str, Any],
        key: str | None = None,
    ) -> None:
        key = f"#{self._ordinal}" if key is None else key  # unique if a step_index repeats
        self.ctx.emit(
            f"behavioural_correlation.{rule}", _CAT, severity, facts, message, evidence, key=key
        )

    # -- denials -------------------------------------------------------------------------

    def _cascade_step(self, facts: StepFacts) -> None:
        cascade = self._cascade
        if cascade is None:
            self._cascade = _Cascade(facts)
            return
        if not facts.failed:
            cascade.quiet += 1
            if cascade.quiet >= CASCADE_GAP:
                self._cascade = None
            return
        cascade.quiet = 0
        if len(cascade.failures) < 100:
            cascade.failures.append(facts.index)
        if facts.tool and len(cascade.tools) < 20:
            cascade.tools[facts.tool] = None
        count, tools = len(cascade.failures), len(cascade.tools)
        severity: Severity | None = None
        if count >= CASCADE_CRITICAL and tools >= 3:
            severity = Severity.CRITICAL
        elif count >= CASCADE_WARN and tools >= 2:
            severity = Severity.WARNING
        if severity is None or (
            cascade.reported is not None and severity.rank <= cascade.reported.rank
        ):
            return
        cascade.reported = severity
        denied = cascade.denied
        self._emit(
            "failure_cascade",
            severity,
            facts,
            f"Failure cascade — {denied.tool} was denied at step {denied.index}, then {count} "
            f"failing steps on {tools} tools ({', '.join(list(cascade.tools)[:5])})",
            {
                "steps": [denied.index, *cascade.failures[:20]],
                "denied_tool": denied.tool,
                "failures": count,
                "tools": list(cascade.tools),
            },
            key=f"cascade#{denied.index}\x00{severity.value}",
        )

    def _on_denied_write(self, ordinal: int, facts: StepFacts) -> None:
        window = self._denials
        window.append((ordinal, facts))
        while len(window) > 1 and not self._close(window[0][1], facts):
            window.pop(0)
        if len(window) > 100:
            del window[:-100]
        if len(window) < DENIAL_BURST:
            self._denial_reported = False
        elif not self._denial_reported:
            self._denial_reported = True
            steps = [f.index for _, f in window]
            tools = ", ".join(dict.fromkeys(str(f.tool) for _, f in window))
            self._emit(
                "repeated_denials",
                Severity.WARNING,
                facts,
                f"Repeated denials — {len(window)} denied writes in steps "
                f"{steps[0]}–{steps[-1]} ({tools})",
                {"steps": steps, "tools": [f.tool for _, f in window], "count": len(window)},
            )
        if len(self._denied_targets) < _MAX_TARGETS:
            for key, value in targets_of(facts):
                self._denied_targets.setdefault(value, (facts, ordinal, key))

    @staticmethod
    def _close(first: StepFacts, last: StepFacts) -> bool:
        t0, t1 = first.time, last.time
        if t0 is not None and t1 is not None:
            return abs((t1 - t0).total_seconds()) <= DENIAL_WINDOW_S
        return last.index - first.index <= DENIAL_WINDOW_STEPS

    def _check_reroute(self, facts: StepFacts) -> None:
        for key, value in targets_of(facts):
            hit = self._denied_targets.get(value)
            if hit is None:
                continue
            denied, denied_ordinal, denied_key = hit
            if denied.tool == facts.tool:
                continue
            self._emit(
                "denied_rerouted",
                Severity.CRITICAL,
                facts,
                f"Denied action rerouted — {denied.tool} was denied at step {denied.index}, "
                f"then {facts.tool} acted on the same {key} {value!r}",
                {
                    "steps": [denied.index, facts.index],
                    "denied_tool": denied.tool,
                    "tool": facts.tool,
                    "target": value,
                    "denied_parameter": denied_key,
                    "parameter": key,
                },
                key=f"denial#{denied_ordinal}",
            )
            return

    # -- findings of other detectors ------------------------------------------------------

    def _scan_findings(self) -> None:
        findings = self.ctx.findings
        start, self._findings_seen = self._findings_seen, len(findings)
        for finding in findings[start:]:
            if (
                finding.category is Category.PERMISSION_ESCALATION
                and finding.severity is not Severity.INFO
                and finding.step_index is not None
            ):
                self._escalation(finding)

    def _escalation(self, finding: Finding) -> None:
        step = finding.step_index
        if step is None:
            return
        ordinal = self._ordinals.get(step)
        if ordinal is None:
            return
        history = self.ctx.history  # every step before the current one, in arrival order
        facts = history[ordinal - 1] if ordinal <= len(history) else self._current
        denied: StepFacts | None = None
        for o in range(ordinal - 1, max(0, ordinal - 1 - ESCALATION_AFTER), -1):
            if o <= len(history) and history[o - 1].denied:
                denied = history[o - 1]
                break
        if denied is None or facts is None or facts.denied or o in self._escalations_done:
            return
        self._escalations_done.add(o)  # one finding per denial
        perm = finding.evidence.get("permission")
        self._emit(
            "escalation_after_denial",
            Severity.CRITICAL,
            facts,
            f"Escalation after denial — step {denied.index} ({denied.tool}) was denied, then "
            f"step {step} used {perm or 'a permission'} outside the baseline grant",
            {
                "steps": [denied.index, step],
                "denied_tool": denied.tool,
                "tool": facts.tool,
                "permission": perm,
                "escalation_finding": finding.id,
            },
            key=f"denial#{o}",
        )
