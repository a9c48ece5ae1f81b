"""The behavioural-policy lines of a report: one [PASS]/[WARN]/[FAIL] per check."""

from __future__ import annotations

from sentrail.model.finding import Category, Finding, PolicyCheck, Severity
from sentrail.policy.compiled import Policy, Profile

# The dangerous-actions rule pack: on a call (``policy.dangerous.<id>``) and in the agent's
# own output (``policy.dangerous_output.<id>``).
_DANGEROUS = ("policy.dangerous.", "policy.dangerous_output.")


def _status(findings: list[Finding]) -> str:
    """PASS when nothing fired, else by the worst finding: FAIL, WARN or INFO."""
    if not findings:
        return "PASS"
    worst = max(f.severity.rank for f in findings)
    return {3: "FAIL", 2: "WARN"}.get(worst, "INFO")


def policy_checks(policy: Policy, profile: Profile, findings: list[Finding]) -> list[PolicyCheck]:
    checks: list[PolicyCheck] = []
    by_rule: dict[str, list[Finding]] = {}
    for f in findings:
        by_rule.setdefault(f.rule, []).append(f)

    rule_hits = [f for f in findings if f.rule.startswith("policy.rule.")]
    dangerous = [f for f in findings if f.rule.startswith(_DANGEROUS)]
    if not rule_hits and not dangerous:
        checks.append(PolicyCheck("PASS", "No prohibited actions detected"))
    for compiled in policy.rules:
        hits = by_rule.get(f"policy.rule.{compiled.rule.id}", [])
        if hits:
            steps = ", ".join(str(f.step_index) for f in hits)
            label = compiled.rule.description or compiled.rule.id
            checks.append(PolicyCheck(_status(hits), f"{compiled.rule.id}: {label} (step {steps})"))

    if dangerous:
        by_pattern: dict[str, list[Finding]] = {}
        for f in dangerous:
            by_pattern.setdefault(f.rule.split(".", 2)[2], []).append(f)
        parts = []
        for pid, hits in by_pattern.items():
            at = sorted({f.step_index for f in hits if f.step_index is not None})
            parts.append(f"{pid} (step {', '.join(map(str, at))})" if at else pid)
        checks.append(PolicyCheck(_status(dangerous), f"Dangerous actions: {'; '.join(parts)}"))

    unapproved = by_rule.get("policy.unapproved_tool", [])
    if profile.approved_tools is None:
        checks.append(PolicyCheck("PASS", "No approved-tool list for this agent (not checked)"))
    elif unapproved:
        tools = sorted({str(f.evidence.get("tool")) for f in unapproved})
        checks.append(PolicyCheck("WARN", f"Tools outside the approved list: {', '.join(tools)}"))
    else:
        checks.append(PolicyCheck("PASS", "All tool calls within approved tool list"))

    env_hits = by_rule.get("policy.environment", [])
    if env_hits:
        envs = sorted({str(f.evidence.get("environment")) for f in env_hits})
        checks.append(PolicyCheck("WARN", f"Actions in unapproved environments: {', '.join(envs)}"))

    escalations = [f for f in findings if f.category is Category.PERMISSION_ESCALATION]
    unapproved_esc = [f for f in escalations if f.severity is not Severity.INFO]
    if unapproved_esc:
        checks.append(
            PolicyCheck(
                _status(unapproved_esc), "Escalated permissions require manual approval audit"
            )
        )
    elif escalations:
        checks.append(PolicyCheck("PASS", "Escalated permissions carry approval ids"))
    return checks
