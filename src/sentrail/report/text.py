"""The text report for one run, shaped like the sample in DESIGN.md."""

from __future__ import annotations

from collections.abc import Iterable

from sentrail.forensics.explain import Explanation, by_finding, explain
from sentrail.model.finding import Category, Finding, RunResult, Severity, Verdict
from sentrail.model.judgement import JudgeAnswer, judged_verdict
from sentrail.report.escape import safe_text

_LABEL = {Severity.CRITICAL: "CRIT", Severity.WARNING: "WARN", Severity.INFO: "INFO"}
_COLOUR = {"CRIT": "31;1", "FAIL": "31;1", "WARN": "33", "INFO": "36", "PASS": "32"}

_ADVICE = {
    Category.TAINTED_ACTION: "contain the agent: an action was driven by untrusted content",
    Category.DATA_EXFILTRATION: "investigate possible data exfiltration",
    Category.UNTRUSTED_INSTRUCTION: "review tool results carrying instructions",
    Category.POLICY_VIOLATION: "review policy violations",
    Category.PERMISSION_ESCALATION: "review escalation approvals",
    Category.BEHAVIOURAL_CORRELATION: "review the correlated behaviour",
    Category.EXCESSIVE_RETRIES: "check the retried tool (outage or probing)",
    Category.UNUSUAL_SEQUENCE: "compare with the agent's usual behaviour",
    Category.MISSING_TELEMETRY: "fix the agent's telemetry",
    Category.ATTESTATION: "check the agent's attestation",
}


def _badge(label: str, colour: bool) -> str:
    return f"\x1b[{_COLOUR[label]}m[{label}]\x1b[0m" if colour else f"[{label}]"


def _join(items: Iterable[str]) -> str:
    text = ", ".join(safe_text(i, limit=120) for i in items)
    return text or "(none)"


def summary_line(result: RunResult) -> str:
    crit = sum(f.severity is Severity.CRITICAL for f in result.findings)
    warn = sum(f.severity is Severity.WARNING for f in result.findings)
    info = sum(f.severity is Severity.INFO for f in result.findings)
    counts = f"{warn} warning{'s' * (warn != 1)}, {crit} critical"
    if info:
        counts += f", {info} info"
    top = [f for f in result.findings if f.severity is not Severity.INFO]
    if not top:
        return f"Summary: {counts} — no action needed"
    worst = max(top, key=lambda f: (f.severity.rank, -list(_ADVICE).index(f.category)))
    return f"Summary: {counts} — {_ADVICE[worst.category]}"


def _why(f: Finding, why: dict[str, Explanation], chains: bool) -> list[str]:
    e = why.get(f.id)
    if e is None:
        return []
    if not chains:
        return [f"      because {safe_text(e.because)}"]
    return [f"      {safe_text(line, limit=1000)}" for line in e.chain]


def render_run(
    result: RunResult,
    *,
    colour: bool = False,
    policy_path: str | None = None,
    policy_sha256: str | None = None,
    chains: bool = False,
) -> str:
    """The report; under each finding, why it was raised (``chains``: the full chain)."""
    why = by_finding(explain(None, result))
    lines = [
        f"Run Trace Analysis: {safe_text(result.run_id, limit=200)}",
        f"Agent: {safe_text(result.agent_id, limit=200)}",
    ]
    duration = f"{result.duration_s:.2f}s" if result.duration_s is not None else "unknown"
    lines.append(f"Duration: {duration} ({result.steps} step{'s' * (result.steps != 1)})")
    lines.append(f"Status: {safe_text(result.status or 'unknown', limit=80)}")
    lines.append(f"Verdict: {result.verdict.value} (risk score {result.risk_score}/100)")
    lines.append("Permissions:")
    lines.append(f"  Baseline:  {_join(result.permissions_baseline)}")
    lines.append(f"  Used:      {_join(result.permissions_used)}")
    lines.append(f"  Escalated: {_join(result.permissions_escalated)}")
    lines.append("Anomalies:")
    anomalies = [f for f in result.findings if f.category is not Category.POLICY_VIOLATION]
    if not anomalies:
        # "(none)" alone, above a policy violation, reads as "nothing was found".
        violated = len(result.findings) > 0
        lines.append("  (none; the policy violations are listed below)" if violated else "  (none)")
    for f in anomalies:
        where = f"Step {f.step_index}" if f.step_index is not None else "Run"
        lines.append(f"  {_badge(_LABEL[f.severity], colour)} {where}: {safe_text(f.message)}")
        lines.extend(_why(f, why, chains))
    lines.append(f"Behavioural Policy: {safe_text(result.policy_name or 'built-in defaults')}")
    for check in result.policy_checks:
        lines.append(f"  {_badge(check.status, colour)} {safe_text(check.text)}")
    for f in (f for f in result.findings if f.category is Category.POLICY_VIOLATION):
        where = f"Step {f.step_index}" if f.step_index is not None else "Run"
        lines.append(f"  {_badge(_LABEL[f.severity], colour)} {where}: {safe_text(f.message)}")
        lines.extend(_why(f, why, chains))
    for f in result.suppressed:
        by = f.evidence.get("suppressed_by", {})
        lines.append(
            f"  [SUPPRESSED] Step {f.step_index}: {safe_text(f.message)} "
            f"(exception owner {safe_text(by.get('owner', '?'))}, expires {by.get('expires', '?')})"
        )
    if result.risk_contributions:
        parts = ", ".join(f"{c.reason} +{c.points}" for c in result.risk_contributions)
        lines.append(f"Risk: {result.risk_score}/100 from {parts}")
    lines.append(summary_line(result))
    if policy_path:
        lines.append(f"Policy file: {safe_text(policy_path)} (sha256 {policy_sha256})")
    return "\n".join(lines) + "\n"


def render_not_asked(result: RunResult) -> str:
    """The line for ``--judge`` on a run the judge is not asked about, so that its silence
    is not taken for a failure: only ambiguous runs are asked (docs/detectors.md)."""
    why = (
        "the rules already judged it unauthorized"
        if result.verdict is Verdict.UNAUTHORIZED
        else "no warning or critical finding"
    )
    return (
        f"Model opinion: not asked ({why}; the judge is asked only about suspicious runs "
        "and allowed ones with a warning)\n"
    )


def render_judgement(result: RunResult, answer: JudgeAnswer) -> str:
    """One line, apart from the report: a model's opinion, escaped like any trace string
    (the model read hostile text and may repeat it). The verdict above it is unchanged."""
    if answer.error is not None:
        said = f"unsure ({safe_text(answer.error, limit=200)})"
    else:
        said = answer.verdict.value
        if answer.rationale:
            said += f": {safe_text(answer.rationale, limit=300)}"
    raised = judged_verdict(result.verdict, answer)
    note = f"; would raise the verdict to {raised.value}" if raised is not result.verdict else ""
    cached = ", cached" if answer.cached else ""
    return (
        f"Model opinion (not a finding; {safe_text(answer.model, limit=80)}, prompt sha256 "
        f"{answer.prompt_sha256[:12]}{cached}{note}): {said}\n"
    )
