"""What gets exported: one record per finding and one per tool call, with the run's context.

Records are built from an analysed run (``records_from_run``: tool calls and findings, in
step order) or from a JSON report (``records_from_report``: findings only, since a report
keeps no steps). Every trace-derived string is escaped (``safe_text``) and secrets in
evidence and parameters are masked here, so each format only has its own syntax to escape.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from sentrail.alerts.redact import bounded_json, mask_text
from sentrail.engine.scoring import verdict_of
from sentrail.model.finding import Finding, RunResult, Severity, Verdict
from sentrail.model.timestamps import parse_time
from sentrail.model.trace import Run, Step
from sentrail.report.escape import safe_text
from sentrail.report.json_report import REPORT_FORMAT, RunEntry

_TEXT = 1000
_SUCCESS = frozenset({"success", "succeeded", "ok", "completed", "done", "200"})
_FAILURE = frozenset({"error", "failure", "failed", "denied", "timeout", "rejected", "forbidden"})


class RunSummary(msgspec.Struct, frozen=True, omit_defaults=True):
    run_id: str
    agent_id: str
    tenant_id: str | None = None
    agent_type: str | None = None
    environment: str | None = None
    status: str | None = None
    verdict: str | None = None
    risk_score: int | None = None
    policy_version: str | None = None
    trace_hash: str | None = None


class FindingRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    time_ms: int
    run: RunSummary
    finding: Finding
    tool: str | None = None
    resource: str | None = None
    environment: str | None = None
    step_status: str | None = None


class ToolCallRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    """A tool call with the policy's verdict on its step (from the step's findings)."""

    time_ms: int
    run: RunSummary
    step_index: int
    tool: str
    verdict: Verdict
    action: str | None = None
    status: str | None = None
    duration_ms: int | None = None
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    permissions_used: list[str] = msgspec.field(default_factory=list)
    resource: str | None = None
    environment: str | None = None
    approval_id: str | None = None
    worst: Severity | None = None
    finding_ids: list[str] = msgspec.field(default_factory=list)
    rules: list[str] = msgspec.field(default_factory=list)


Record = FindingRecord | ToolCallRecord


def run_details(record: Record) -> dict[str, Any]:
    """The run's context as flat fields (``run_verdict``, ``run_risk_score`` for the run's)."""
    run = record.run
    out: dict[str, Any] = {"run_id": run.run_id, "agent_id": run.agent_id}
    for key in ("tenant_id", "agent_type", "environment", "verdict", "risk_score", "trace_hash"):
        value = getattr(run, key)
        if value is not None:
            out[f"run_{key}" if key in ("verdict", "risk_score") else key] = value
    return out


def text(value: object, limit: int = _TEXT) -> str:
    return safe_text(mask_text(str(value)), limit=limit)


def opt_text(value: object | None, limit: int = _TEXT) -> str | None:
    return None if value is None else text(value, limit)


def inert(value: Any, limit: int = _TEXT) -> Any:
    """A JSON-like value with every string (keys too) escaped and cut."""
    if isinstance(value, str):
        return safe_text(value, limit=limit)
    if isinstance(value, dict):
        return {safe_text(k, limit=200): inert(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [inert(v, limit) for v in value]
    return value


def parse_time_ms(value: str | None) -> int | None:
    """Milliseconds since the epoch from an ISO 8601 time (no zone means UTC), or None."""
    when = parse_time(value.strip() if value else None)
    return None if when is None else int(when.timestamp() * 1000)


def iso_ms(ms: int) -> str:
    when = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_kind(status: str | None) -> str:
    """``success``, ``failure`` or ``unknown`` for a tool result's status."""
    if status is None:
        return "unknown"
    low = status.strip().lower()
    if low in _SUCCESS:
        return "success"
    if low in _FAILURE:
        return "failure"
    return "unknown"


def worst_of(findings: Iterable[Finding]) -> Severity | None:
    return max((f.severity for f in findings), key=lambda s: s.rank, default=None)


def bounded_object(value: Any, limit: int = 4096) -> dict[str, Any]:
    """``value`` masked and escaped, always an object (``{"excerpt": …}`` when too large or
    not an object), so that SIEM field mappings see one type."""
    out = inert(bounded_json(value, limit))
    return out if isinstance(out, dict) else {"excerpt": out}


def clean_finding(f: Finding) -> Finding:
    return Finding(
        id=text(f.id, 100),
        rule=text(f.rule, 200),
        category=f.category,
        severity=f.severity,
        step_index=f.step_index,
        message=text(f.message),
        evidence=bounded_object(f.evidence),
        tags=[text(t, 80) for t in f.tags[:50]],
    )


def _context(run: Run, result: RunResult | None, trace_hash: str | None) -> RunSummary:
    return RunSummary(
        run_id=text(run.run_id, 200),
        agent_id=text(run.agent_id, 200),
        tenant_id=opt_text(run.tenant_id, 200),
        agent_type=opt_text(run.agent_type, 200),
        environment=opt_text(run.environment, 80),
        status=opt_text(run.status, 80),
        verdict=result.verdict.value if result else None,
        risk_score=result.risk_score if result else None,
        policy_version=opt_text(run.policy_version, 80),
        trace_hash=opt_text(trace_hash, 128),
    )


def records_from_run(
    run: Run,
    result: RunResult,
    *,
    fallback_ms: int,
    trace_hash: str | None = None,
) -> list[Record]:
    """Tool calls and findings in step order; run-level findings last. Times are the step's
    timestamp, else the run's end or start, else ``fallback_ms``."""
    ctx = _context(run, result, trace_hash)
    run_ms = parse_time_ms(run.completed_at) or parse_time_ms(run.started_at) or fallback_ms
    by_step: dict[int | None, list[Finding]] = {}
    for f in result.findings:
        by_step.setdefault(f.step_index, []).append(f)
    out: list[Record] = []
    seen: set[int] = set()
    for step in run.steps:
        ms = parse_time_ms(step.timestamp) or run_ms
        findings = by_step.get(step.step_index, []) if step.step_index not in seen else []
        seen.add(step.step_index)
        if step.tool_call is not None:
            out.append(_tool_call(step, ctx, ms, findings))
        out.extend(_finding(f, ctx, ms, step) for f in findings)
    for index, findings in by_step.items():
        if index is None or index not in seen:
            out.extend(_finding(f, ctx, run_ms, None) for f in findings)
    return out


def _tool_call(step: Step, ctx: RunSummary, ms: int, findings: list[Finding]) -> ToolCallRecord:
    assert step.tool_call is not None
    result = step.result
    return ToolCallRecord(
        time_ms=ms,
        run=ctx,
        step_index=step.step_index,
        tool=text(step.tool_call.tool, 200),
        verdict=verdict_of(list(findings)),
        action=opt_text(step.action, 200),
        status=opt_text(result.status if result else None, 80),
        duration_ms=int(step.duration_ms) if step.duration_ms is not None else None,
        parameters=bounded_object(step.tool_call.parameters),
        permissions_used=[text(p, 200) for p in step.permissions_used[:50]],
        resource=opt_text(step.resource, 300),
        environment=opt_text(step.environment, 80),
        approval_id=opt_text(step.approval_id, 200),
        worst=worst_of(findings),
        finding_ids=[text(f.id, 100) for f in findings],
        rules=sorted({text(f.rule, 200) for f in findings}),
    )


def _finding(f: Finding, ctx: RunSummary, ms: int, step: Step | None) -> FindingRecord:
    tool = f.evidence.get("tool")
    if not isinstance(tool, str):
        tool = step.tool_call.tool if step is not None and step.tool_call is not None else None
    resource = step.resource if step is not None else None
    for key in ("resource", "target", "destination"):
        value = f.evidence.get(key)
        if isinstance(value, str) and value:
            resource = value
            break
    return FindingRecord(
        time_ms=ms,
        run=ctx,
        finding=clean_finding(f),
        tool=opt_text(tool, 200),
        resource=opt_text(resource, 300),
        environment=opt_text(step.environment if step else None, 80) or ctx.environment,
        step_status=opt_text(step.result.status if step and step.result else None, 80),
    )


class _Report(msgspec.Struct):
    format: str
    runs: list[RunEntry]


def records_from_report(data: bytes, *, time_ms: int) -> Iterator[FindingRecord]:
    """The findings of a ``sentrail.report/1`` JSON report, all at ``time_ms`` (a report keeps
    no event times: the caller passes the report's own time)."""
    report = msgspec.json.decode(data, type=_Report)
    if report.format != REPORT_FORMAT:
        raise ValueError(f"report format {report.format!r} is not {REPORT_FORMAT!r}")
    for entry in report.runs:
        ctx = RunSummary(
            run_id=text(entry.run_id, 200),
            agent_id=text(entry.agent_id, 200),
            status=opt_text(entry.status, 80),
            verdict=text(entry.verdict, 40),
            risk_score=entry.risk_score,
        )
        for f in entry.findings:
            tool = f.evidence.get("tool")
            yield FindingRecord(
                time_ms=time_ms,
                run=ctx,
                finding=clean_finding(f),
                tool=text(tool, 200) if isinstance(tool, str) else None,
            )
