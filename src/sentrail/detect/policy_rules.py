"""policy_violation: the approved tool list, approved environments and CEL behavioural rules.

A call is judged whether or not it succeeded: attempting a prohibited action is the finding.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sentrail.detect.base import Detector, RunContext, StepFacts
from sentrail.model.finding import Category, Severity
from sentrail.policy.rules import RulePlan, StepVariables

MAX_VALUE_CHARS = 200
MAX_VALUE_ITEMS = 20


def bounded_values(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of ``value`` cut to a few items per level and characters per string:
    evidence of what a rule read, never a copy of a whole payload."""
    if isinstance(value, str):
        return value[:MAX_VALUE_CHARS]
    if isinstance(value, bool | int | float) or value is None:
        return value
    if depth >= 3:
        return "…"
    if isinstance(value, dict):
        items = list(value.items())[:MAX_VALUE_ITEMS]
        return {str(k)[:MAX_VALUE_CHARS]: bounded_values(v, depth + 1) for k, v in items}
    if isinstance(value, list | tuple):
        return [bounded_values(v, depth + 1) for v in value[:MAX_VALUE_ITEMS]]
    return str(value)[:MAX_VALUE_CHARS]


class PolicyRules(Detector):
    name = "policy_violation"
    category = Category.POLICY_VIOLATION
    rules: ClassVar[dict[str, tuple[Severity, ...]]] = {
        "policy.unapproved_tool": (Severity.WARNING,),
        "policy.environment": (Severity.WARNING,),
        "policy.rule.*": (Severity.INFO, Severity.WARNING, Severity.CRITICAL),
    }

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self._plans: dict[str, RulePlan] = {}

    def on_step(self, facts: StepFacts) -> None:
        tool = facts.tool
        if tool is None:
            return
        ctx = self.ctx
        profile = ctx.profile
        approved = profile.approved_tools
        if approved is not None and tool not in approved:
            ctx.emit(
                "policy.unapproved_tool",
                Category.POLICY_VIOLATION,
                Severity.WARNING,
                facts,
                f"Tool {tool} is not on the approved tool list of {profile.name}",
                {"tool": tool, "profile": profile.profile.id, "status": facts.status},
            )
        envs = profile.environments
        if envs is not None and facts.environment and facts.environment not in envs:
            ctx.emit(
                "policy.environment",
                Category.POLICY_VIOLATION,
                Severity.WARNING,
                facts,
                f"{tool} ran in environment {facts.environment}, outside {', '.join(sorted(envs))}",
                {"tool": tool, "environment": facts.environment},
            )
        plan = self._plans.get(tool)
        if plan is not None and not plan.rules:
            return  # no rule can hold for this tool in this run: no variables built
        variables = _FactsVariables(ctx, facts)
        if plan is None:  # the agent is fixed for the run: filter once per tool
            run = variables.value("run")
            plan = ctx.policy.rule_plan(tool, ctx.header.agent_id, run, variables)
            self._plans[tool] = plan
        for compiled in plan.matching(variables):
            rule = compiled.rule
            ctx.emit(
                f"policy.rule.{rule.id}",
                Category.POLICY_VIOLATION,
                compiled.severity,
                facts,
                f"Policy rule {rule.id} — {rule.description or rule.condition} ({tool})",
                {
                    "rule_id": rule.id,
                    "condition": rule.condition,
                    "tool": tool,
                    "status": facts.status,
                    # The values the condition read, as it read them: what matched.
                    "values": bounded_values(variables.context(compiled.signature)),
                },
                tags=list(rule.tags) or None,
            )


class _FactsVariables(StepVariables):
    """The CEL variables of one step, built from its facts and the run's context when a
    rule reads them (no closure per variable and step)."""

    __slots__ = ("_ctx", "_facts")

    def __init__(self, ctx: RunContext, facts: StepFacts) -> None:
        super().__init__()
        self._ctx = ctx
        self._facts = facts

    def build(self, name: str) -> Any:
        facts = self._facts
        ctx = self._ctx
        if name == "params":
            return facts.params
        if name == "tool":
            risk = facts.risk
            tool = facts.tool or ""
            approved = ctx.profile.approved_tools
            return {
                "name": tool,
                "risk": risk.value if risk else "",
                "verb": facts.verb,
                "approved": approved is None or tool in approved,
                "registered": facts.registered,
            }
        if name == "step":
            step = facts.step
            return {
                "index": facts.index,
                "action": step.action or "",
                "environment": facts.environment or "",
                "resource": step.resource or "",
                "permissions": tuple(facts.permissions),
                "status": facts.status,
                "approval_id": step.approval_id or "",
                "has_approval": facts.has_approval,
                "confidence": 1.0 if step.confidence is None else float(step.confidence),
                "has_reasoning": bool(step.reasoning and step.reasoning.strip()),
            }
        if name == "run":
            h = ctx.header
            return {
                "run_id": h.run_id,
                "agent_id": h.agent_id,
                "agent_type": h.agent_type or "",
                "tenant_id": h.tenant_id or "",
                "trigger": h.trigger or "",
                "environment": h.environment or "",
                "runtime_mode": h.runtime_mode or "",
            }
        if name == "history":
            return {
                "calls": ctx.calls,
                "writes": ctx.writes,
                "failures": ctx.failures,
                "denied": ctx.denied_count,
                "injection_seen": bool(ctx.injections),
            }
        raise KeyError(name)
