"""An alert: a finding with the context a responder needs, made inert and bounded.

Every string that came from a trace is escaped (``safe_text``) and secrets in the evidence
are masked before the alert exists, so no sink can leak or render them by mistake.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import quote

import msgspec

from sentrail.alerts.policy import Tier
from sentrail.alerts.redact import excerpt, mask_text
from sentrail.model.finding import Category, Finding, Severity
from sentrail.model.trace import RunHeader, Step
from sentrail.report.escape import safe_text

CONTAINMENT: dict[Category, str] = {
    Category.PERMISSION_ESCALATION: (
        "Revoke the escalated permissions from the agent's credentials and audit the approval "
        "trail; hold its write access until reviewed."
    ),
    Category.UNUSUAL_SEQUENCE: (
        "Compare the run with the agent's baseline; pause the agent if the sequence is not an "
        "expected change."
    ),
    Category.EXCESSIVE_RETRIES: (
        "Throttle or pause the agent; check the target for lock-outs or load caused by the retries."
    ),
    Category.DATA_EXFILTRATION: (
        "Block the destination at the egress proxy, rotate every credential the run read, and "
        "export the run's evidence bundle."
    ),
    Category.POLICY_VIOLATION: (
        "Pause the agent and roll back the action where possible; confirm whether an approval "
        "or exception should have applied."
    ),
    Category.UNTRUSTED_INSTRUCTION: (
        "Treat the tool result's source as compromised: quarantine the content, pause runs that "
        "read it, and check later actions for its influence."
    ),
    Category.TAINTED_ACTION: (
        "Hold or reverse the action whose parameters came from untrusted content; verify the "
        "recipient or target out of band."
    ),
    Category.MISSING_TELEMETRY: (
        "Check the agent's instrumentation; treat unlogged writes as unverified until "
        "reconciled with the target system."
    ),
    Category.BEHAVIOURAL_CORRELATION: (
        "Suspend the agent: the combined steps look like deliberate boundary probing. Review "
        "its other runs in the same window."
    ),
    Category.ATTESTATION: (
        "Stop the agent until its image, model and policy bundle match the attested versions."
    ),
}

_RESOURCE_KEYS = ("resource", "target", "destination", "destination_host", "host", "table")


class StepSummary(msgspec.Struct, frozen=True, omit_defaults=True):
    step_index: int
    action: str | None = None
    tool: str | None = None
    status: str | None = None


class Alert(msgspec.Struct, frozen=True, omit_defaults=True):
    """One alert. ``dedup_key`` is stable for rule + run + resource (PagerDuty's dedup_key)."""

    id: str
    dedup_key: str
    tier: Tier
    severity: Severity
    category: Category
    rule: str
    message: str
    agent_id: str
    run_id: str
    created_at: str
    link: str
    containment: str
    evidence_excerpt: str
    step_index: int | None = None
    tool: str | None = None
    resource: str | None = None
    tenant_id: str | None = None
    environment: str | None = None
    recent_steps: list[StepSummary] = msgspec.field(default_factory=list)
    tags: list[str] = msgspec.field(default_factory=list)

    def title(self) -> str:
        where = f" step {self.step_index}" if self.step_index is not None else ""
        sev = self.severity.value.upper()
        return f"[{sev}] {self.rule} — {self.agent_id} run {self.run_id}{where}"


class Digest(msgspec.Struct, frozen=True):
    """Alerts held through quiet hours or of the ``digest`` tier, sent as one message."""

    id: str
    created_at: str
    alerts: list[Alert]
    total: int  # alerts collected; ``alerts`` may hold fewer (the digest's own bound)


class AlertAction(msgspec.Struct, frozen=True):
    """A follow-up on an alert already sent (PagerDuty acknowledge / resolve)."""

    dedup_key: str
    action: Literal["acknowledge", "resolve"]


Message = Alert | Digest | AlertAction


def iso(now: float) -> str:
    return (
        dt.datetime.fromtimestamp(now, dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def step_at(steps: Sequence[Step], index: int | None) -> Step | None:
    if index is None:
        return None
    for s in steps:
        if s.step_index == index:
            return s
    return None


def resource_of(finding: Finding, step: Step | None) -> str:
    """What the finding is about, for dedup: a target named in the evidence, the step's
    ``resource``, or the tool."""
    for key in _RESOURCE_KEYS:
        value = finding.evidence.get(key)
        if isinstance(value, str) and value:
            return value
    if step is not None and step.resource:
        return step.resource
    tool = finding.evidence.get("tool")
    if isinstance(tool, str) and tool:
        return tool
    if step is not None and step.tool_call is not None:
        return step.tool_call.tool
    return ""


def dedup_key_of(rule: str, run_id: str, resource: str) -> str:
    digest = hashlib.sha256(f"{rule}\x00{run_id}\x00{resource}".encode()).hexdigest()
    return f"sentrail-{digest[:40]}"


def run_link(base_url: str, app: str, trace_hash: str) -> str:
    return (
        f"{base_url.rstrip('/')}/v1/apps/{quote(app, safe='')}/traces/{quote(trace_hash, safe='')}"
    )


def recent_steps(steps: Sequence[Step], upto: int | None, n: int) -> list[StepSummary]:
    """The last ``n`` steps up to and including step ``upto`` (the run's last ``n`` when None)."""
    if n <= 0:
        return []
    chosen = [s for s in steps if upto is None or s.step_index <= upto][-n:]
    return [
        StepSummary(
            step_index=s.step_index,
            action=_short(s.action, 80),
            tool=_short(s.tool_call.tool if s.tool_call else None, 80),
            status=_short(s.result.status if s.result else None, 40),
        )
        for s in chosen
    ]


def _short(value: Any, limit: int) -> str | None:
    return None if value is None else safe_text(mask_text(str(value)), limit=limit)


def build_alert(
    finding: Finding,
    run: RunHeader,
    steps: Sequence[Step] = (),
    *,
    tier: Tier,
    now: float,
    base_url: str = "http://localhost:8080",
    app: str = "default",
    trace_hash: str | None = None,
    recent: int = 5,
    evidence_limit: int = 500,
) -> Alert:
    """The alert for ``finding`` in ``run`` (``steps``: the run's steps seen so far).

    ``trace_hash`` is the SHA-256 of the stored trace; without it, the SHA-256 of the run id
    (what the service indexes a run by when it has no trace document).
    """
    step = step_at(steps, finding.step_index)
    resource = resource_of(finding, step)
    th = trace_hash or hashlib.sha256(run.run_id.encode()).hexdigest()
    tool = finding.evidence.get("tool")
    if not isinstance(tool, str):
        tool = step.tool_call.tool if step is not None and step.tool_call is not None else None
    environment = (step.environment if step is not None else None) or run.environment
    return Alert(
        id=f"A-{hashlib.sha256(f'{finding.id}{now}'.encode()).hexdigest()[:16]}",
        dedup_key=dedup_key_of(finding.rule, run.run_id, resource),
        tier=tier,
        severity=finding.severity,
        category=finding.category,
        rule=safe_text(finding.rule, limit=200),
        message=safe_text(mask_text(finding.message), limit=500),
        agent_id=safe_text(run.agent_id, limit=200),
        run_id=safe_text(run.run_id, limit=200),
        created_at=iso(now),
        link=run_link(base_url, app, th),
        containment=CONTAINMENT.get(finding.category, "Review the run."),
        evidence_excerpt=excerpt(finding.evidence, evidence_limit),
        step_index=finding.step_index,
        tool=_short(tool, 200),
        resource=_short(resource, 300) or None,
        tenant_id=_short(run.tenant_id, 200),
        environment=_short(environment, 80),
        recent_steps=recent_steps(steps, finding.step_index, recent),
        tags=[safe_text(t, limit=80) for t in finding.tags[:20]],
    )


def with_tier(alert: Alert, tier: Tier) -> Alert:
    return msgspec.structs.replace(alert, tier=tier)
