"""From findings to a verdict and a 0-100 risk score with the contributions that explain it."""

from __future__ import annotations

from collections import defaultdict

from sentrail.model.finding import Finding, RiskContribution, Severity, Verdict

POINTS = {Severity.CRITICAL: 45, Severity.WARNING: 15, Severity.INFO: 2}


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
