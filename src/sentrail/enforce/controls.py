"""The controls of the decision point, one method each (see :mod:`sentrail.enforce.pdp`).

Each adds what it finds to a :class:`Ruling`; the strictest outcome wins.
"""

from __future__ import annotations

import collections

from sentrail.enforce.model import Control, DecisionRequest, Outcome
from sentrail.enforce.state import Containment
from sentrail.engine.fold import RunFolder
from sentrail.engine.scoring import GATING
from sentrail.model.finding import Category, Finding, Severity
from sentrail.policy.bundle import Enforcement, RiskClass
from sentrail.policy.compiled import Profile
from sentrail.policy.match import GlobSet

STRICTNESS = {Outcome.ALLOW: 0, Outcome.APPROVAL_REQUIRED: 1, Outcome.DENY: 2}


class Ruling:
    """The decision being made: the strictest outcome so far, with what decided it."""

    __slots__ = ("control", "obligations", "outcome", "reasons", "rules")

    def __init__(self) -> None:
        self.outcome = Outcome.ALLOW
        self.control = Control.POLICY
        self.reasons: list[str] = []
        self.rules: list[str] = []
        self.obligations: list[str] = []

    def add(self, outcome: Outcome, control: Control, reason: str, rule: str = "") -> None:
        if STRICTNESS[outcome] > STRICTNESS[self.outcome]:
            self.outcome, self.control = outcome, control
            self.reasons.insert(0, reason)
        else:
            self.reasons.append(reason)
        if rule:
            self.rules.append(rule)


class RunState:
    """What the decision point keeps per run: the run's fold, cost, blocked tools."""

    __slots__ = ("blocked", "cost", "folder")

    def __init__(self, folder: RunFolder) -> None:
        self.folder = folder
        self.cost = 0.0
        self.blocked: dict[str, str] = {}  # tool -> the retry storm that stopped it


class Controls:
    """The controls as methods of the decision point (a mixin of ``DecisionPoint``)."""

    containment: Containment
    _minute: dict[tuple[str, str, str], collections.deque[float]]

    def _containment(
        self,
        v: Ruling,
        tenant: str,
        app: str,
        agent: str,
        run_id: str,
        tool: str,
        read_only: bool,
    ) -> None:
        c = self.containment
        frozen = c.is_frozen(tenant, run_id, app)
        if frozen is not None:
            v.add(
                Outcome.DENY,
                Control.CONTAINMENT,
                f"run {run_id} is frozen by {frozen.by}: {frozen.reason}",
                "containment.frozen",
            )
        held = c.is_quarantined(tenant, agent) if agent else None
        if held is not None and not read_only:
            v.add(
                Outcome.DENY,
                Control.CONTAINMENT,
                f"agent {agent} is quarantined by {held.by}: {held.reason}",
                "containment.quarantine",
            )
        disabled = c.tool_disabled(tenant, agent, tool)
        if disabled is not None:
            v.add(
                Outcome.DENY,
                Control.CONTAINMENT,
                f"{tool} is disabled ({disabled})",
                "containment.disabled_tool",
            )

    def _capability(
        self,
        v: Ruling,
        profile: Profile,
        enf: Enforcement,
        req: DecisionRequest,
        risk: RiskClass,
        registered: bool,
        fallback: Outcome,
    ) -> None:
        approved = profile.approved_tools
        if approved is not None and req.tool not in approved:
            v.add(
                Outcome.DENY,
                Control.CAPABILITY,
                f"{req.tool} is not an approved tool of {profile.name}",
                "capability.unapproved",
            )
        elif not registered and approved is None and risk is not RiskClass.READ_ONLY:
            v.add(
                fallback,
                Control.CAPABILITY,
                f"{req.tool} is an unknown tool (not in the registry) and may write",
                "capability.unknown_tool",
            )
        scopes = enf.write_scopes
        outside = not req.resource or req.resource not in GlobSet(scopes or ())
        if scopes is not None and risk is not RiskClass.READ_ONLY and outside:
            v.add(
                Outcome.DENY,
                Control.CAPABILITY,
                f"write to {req.resource or 'an unnamed resource'} is outside the write scopes",
                "capability.write_scope",
            )

    def _boundary(
        self,
        v: Ruling,
        profile: Profile,
        enf: Enforcement,
        tenant: str,
        agent: str,
        permissions: list[str],
        now: float,
    ) -> None:
        revoked = self.containment.revoked_for(tenant, agent) if agent else None
        boundary = profile.boundary
        live = [g.permission for g in enf.grants if g.until.timestamp() > now]
        grants = GlobSet(live) if live else None
        for perm in permissions:
            if revoked is not None and perm in revoked:
                v.add(
                    Outcome.DENY,
                    Control.BOUNDARY,
                    f"the grant of {perm} was revoked",
                    "boundary.revoked",
                )
            elif (
                boundary is not None
                and perm not in boundary
                and (grants is None or perm not in grants)
            ):
                v.add(
                    Outcome(enf.on_escalation),
                    Control.BOUNDARY,
                    f"{perm} is outside the permission boundary of {profile.name}",
                    "boundary.escalation",
                )

    def _budget(
        self,
        v: Ruling,
        enf: Enforcement,
        state: RunState,
        tenant: str,
        app: str,
        agent: str,
        risk: RiskClass,
        cost: float,
        now: float,
    ) -> None:
        b = enf.budgets
        ctx = state.folder.ctx
        if b.calls_per_run is not None and ctx.calls >= b.calls_per_run:
            v.add(
                Outcome.DENY,
                Control.BUDGET,
                f"the run used its {b.calls_per_run} calls",
                "budget.calls_per_run",
            )
        if b.writes_per_run is not None and risk.is_write and ctx.writes >= b.writes_per_run:
            v.add(
                Outcome.DENY,
                Control.BUDGET,
                f"the run used its {b.writes_per_run} writes",
                "budget.writes_per_run",
            )
        if b.cost_per_run is not None and state.cost + cost > b.cost_per_run:
            v.add(
                Outcome.DENY,
                Control.BUDGET,
                f"the call would take the run past its cost budget {b.cost_per_run:g}",
                "budget.cost_per_run",
            )
        if b.calls_per_minute is not None:
            # Per app: another app's calls in an agent's name never use up this app's budget.
            window = self._minute.setdefault((tenant, app, agent), collections.deque())
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) >= b.calls_per_minute:
                v.add(
                    Outcome.DENY,
                    Control.BUDGET,
                    f"{agent} made {b.calls_per_minute} calls in the last minute",
                    "budget.calls_per_minute",
                )
            else:
                window.append(now)

    def _attestation(
        self, v: Ruling, enf: Enforcement, req: DecisionRequest, risk: RiskClass
    ) -> None:
        allowed = enf.attestation
        if allowed is None or risk.rank < RiskClass.SENSITIVE_WRITE.rank:
            return
        att = req.attestation
        checks = (
            ("image digest", allowed.image_digests, att.image_digest if att else None),
            ("model id", allowed.model_ids, att.model_id if att else None),
            (
                "policy bundle version",
                allowed.policy_versions,
                att.policy_bundle_version if att else None,
            ),
            (
                "tool registry version",
                allowed.tool_registry_versions,
                att.tool_registry_version if att else None,
            ),
        )
        for name, values, got in checks:
            if values is not None and got not in values:
                v.add(
                    Outcome.DENY,
                    Control.ATTESTATION,
                    f"{name} {got or '(none)'} is not attested for {risk.value} actions",
                    "attestation." + name.replace(" ", "_"),
                )

    def _finding(self, v: Ruling, f: Finding) -> None:
        if f.category is Category.MISSING_TELEMETRY:
            return  # a call not yet made has no result or timing to judge
        control = Control.POLICY if f.category is Category.POLICY_VIOLATION else Control.FINDINGS
        if f.severity is Severity.CRITICAL:
            v.add(Outcome.DENY, control, f.message, f.rule)
        elif f.severity is Severity.WARNING and f.category in GATING:
            v.add(Outcome.APPROVAL_REQUIRED, control, f.message, f.rule)
        else:
            v.obligations.append(f"review: {f.message}")
            v.rules.append(f.rule)
