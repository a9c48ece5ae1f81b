"""From findings to a verdict, a 0-100 risk score with the contributions that explain it,
and the outcome a decision point's findings control gives a call (:func:`call_outcome`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sentrail.model.finding import Category, Finding, RiskContribution, Severity, Verdict

POINTS = {Severity.CRITICAL: 45, Severity.WARNING: 15, Severity.INFO: 2}
# Warnings of these categories send a call to approval; others only annotate it.
GATING = frozenset(
    {
        Category.POLICY_VIOLATION,
        Category.TAINTED_ACTION,
        Category.DATA_EXFILTRATION,
        Category.PERMISSION_ESCALATION,
        Category.EXCESSIVE_RETRIES,
        Category.UNTRUSTED_INSTRUCTION,
        Category.BEHAVIOURAL_CORRELATION,
    }
)
DENY, APPROVAL_REQUIRED, ALLOW = "deny", "approval_required", "allow"


def gates(finding: Finding) -> str:
    """What one finding of a call makes the decision point's findings control do:
    ``deny`` (critical), ``approval_required`` (a warning of a :data:`GATING` category),
    else ``allow`` (it only annotates). A missing-telemetry finding never gates: a call
    not yet made has no result or timing to judge."""
    if finding.category is Category.MISSING_TELEMETRY:
        return ALLOW
    if finding.severity is Severity.CRITICAL:
        return DENY
    if finding.severity is Severity.WARNING and finding.category in GATING:
        return APPROVAL_REQUIRED
    return ALLOW


def call_outcome(findings: Iterable[Finding]) -> str:
    """The strictest :func:`gates` of a call's findings (``allow`` when there are none)."""
    outcomes = {gates(f) for f in findings}
    return (
        DENY if DENY in outcomes else APPROVAL_REQUIRED if APPROVAL_REQUIRED in outcomes else ALLOW
    )


def verdict_of(findings: list[Finding]) -> Verdict:
    worst = max((f.severity for f in findings), key=lambda s: s.rank, default=None)
    if worst is Severity.CRITICAL:
        return Verdict.UNAUTHORIZED
    if worst is Severity.WARNING:
        return Verdict.SUSPICIOUS
    return Verdict.ALLOWED


def risk_of(findings: list[Finding]) -> tuple[int, list[RiskContribution]]:
    """Per category, the worst finding counts in full and each further one a third as much,
    up to twice the worst (repetition adds evidence, but ten retries are not ten times the
    risk, and no number of warnings adds up to a critical); the total is capped at 100."""
    by_cat: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        by_cat[f.category.value].append(f)
    contributions: list[RiskContribution] = []
    for cat, group in by_cat.items():
        pts = sorted((POINTS[f.severity] for f in group), reverse=True)
        total = min(2 * pts[0], pts[0] + sum(p // 3 for p in pts[1:]))
        counts: dict[str, int] = defaultdict(int)
        for f in group:
            counts[f.severity.label] += 1
        detail = ", ".join(f"{n} {sev}" for sev, n in sorted(counts.items()))
        contributions.append(RiskContribution(reason=f"{cat} ({detail})", points=total))
    contributions.sort(key=lambda c: (-c.points, c.reason))
    return min(100, sum(c.points for c in contributions)), contributions
