"""permission_escalation: every permission used outside the agent's boundary, per step."""

from __future__ import annotations

from typing import ClassVar

from sentrail.detect.base import Detector, StepFacts
from sentrail.model.finding import Category, Severity
from sentrail.policy.bundle import RiskClass
from sentrail.policy.risk import infer_risk

_HIGH = (RiskClass.DESTRUCTIVE, RiskClass.PRIVILEGED_ADMIN)
_PERM_RISK: dict[str, RiskClass] = {}


def permission_risk(permission: str) -> RiskClass:
    risk = _PERM_RISK.get(permission)
    if risk is None:
        risk = infer_risk(permission.replace(":", " ").replace("*", "all"))
        if len(_PERM_RISK) < 10_000:
            _PERM_RISK[permission] = risk
    return risk


class PermissionEscalation(Detector):
    """The boundary is the policy profile's ``permission_boundary`` or, without one, the
    trace's ``permissions_summary.granted`` minus ``escalated``. A streamed run whose
    boundary arrives only with ``run_completed`` is judged then."""

    name = "permission_escalation"
    category = Category.PERMISSION_ESCALATION
    rules: ClassVar[dict[str, tuple[Severity, ...]]] = {
        "permission_escalation.outside_boundary": (
            Severity.INFO,
            Severity.WARNING,
            Severity.CRITICAL,
        ),
    }

    def __init__(self, ctx: object) -> None:
        super().__init__(ctx)  # type: ignore[arg-type]
        self._pending: list[StepFacts] = []

    def on_step(self, facts: StepFacts) -> None:
        if not facts.permissions:
            return
        if self.ctx.boundary is None:
            self._pending.append(facts)
            return
        self._judge(facts)

    def finish(self) -> None:
        if self.ctx.boundary is not None:
            for facts in self._pending:
                self._judge(facts)
        self._pending.clear()

    def _judge(self, facts: StepFacts) -> None:
        ctx = self.ctx
        boundary = ctx.boundary
        assert boundary is not None
        denied = ctx.denied_permissions
        for perm in dict.fromkeys(facts.permissions):
            was_denied = perm in denied
            if perm in boundary and not was_denied:
                continue
            risk = permission_risk(perm)
            if facts.has_approval and not was_denied:
                severity, why = Severity.INFO, f" (approved: {facts.step.approval_id})"
            elif was_denied:
                severity, why = Severity.CRITICAL, " (listed as denied)"
            elif risk in _HIGH:
                severity, why = Severity.CRITICAL, f" ({risk.value.replace('_', ' ')} permission)"
            else:
                severity, why = Severity.WARNING, ""
            source = "trace grant" if ctx.boundary_from_summary else "policy boundary"
            ctx.emit(
                "permission_escalation.outside_boundary",
                Category.PERMISSION_ESCALATION,
                severity,
                facts,
                f"Permission escalation — {perm} not in baseline grant{why}",
                {
                    "permission": perm,
                    "tool": facts.tool,
                    "boundary_source": source,
                    "permission_risk": risk.value,
                    "denied": was_denied,
                    "approval_id": facts.step.approval_id,
                },
                key=perm,
            )
