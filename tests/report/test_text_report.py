"""The text report's sections say what they hold."""

from __future__ import annotations

from sentrail.model.finding import Category, Finding, RunResult, Severity, Verdict
from sentrail.report.text import render_run


def _result(*findings: Finding) -> RunResult:
    return RunResult("run-1", "bot", Verdict.ALLOWED, 0, list(findings), steps=1)


def _lines_after(report: str, heading: str) -> list[str]:
    lines = report.splitlines()
    return lines[lines.index(heading) + 1 :]


def test_no_anomaly_above_a_policy_violation_points_to_it() -> None:
    violation = Finding(
        "f1", "policy.unapproved_tool", Category.POLICY_VIOLATION, Severity.WARNING, 0, "x"
    )
    report = render_run(_result(violation))
    assert _lines_after(report, "Anomalies:")[0] == (
        "  (none; the policy violations are listed below)"
    )
    assert "[WARN] Step 0: x" in report.split("Behavioural Policy")[1]


def test_a_run_with_no_finding_says_none() -> None:
    assert _lines_after(render_run(_result()), "Anomalies:")[0] == "  (none)"
