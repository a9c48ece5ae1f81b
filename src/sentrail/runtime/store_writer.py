"""The evidence exporter: findings and run index rows written to the store.

:class:`StoreWriter` is the pipeline's ``evidence`` exporter (:mod:`.pipeline`). For each
:class:`~sentrail.runtime.pipeline.RunUpdate` it stores the new findings (upserted by
their deterministic id: a finding stored twice is stored once, and keeps its triage
state); for an update that closed a run it writes the run's index rows — the run, its
steps, its rows of the value index (:func:`~sentrail.runtime.logged_runs.index_values`),
all its findings and its result. Everything is keyed by (tenant, app, run). ``export`` is
one transaction of its own; ``write`` works in the caller's (ingest commits the events and
their rows together).

A redacted run keeps its scrubbed rows: a re-sent copy of its events (a duplicate in
the log) must not write the erased values back.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Sequence

import msgspec

from sentrail.model.finding import Finding, RunResult, Severity
from sentrail.model.status import BLOCKED_STATUSES, PENDING_APPROVAL, PENDING_STATUSES
from sentrail.model.timestamps import epoch_of
from sentrail.model.trace import Run
from sentrail.runtime.logged_runs import index_values
from sentrail.runtime.pipeline import RunUpdate
from sentrail.store.core import LogStore
from sentrail.store.records import FindingRow, RecordTx, RunRow, StepRow, records


def step_rows(run: Run) -> list[StepRow]:
    """One row per step index: the first step that has it. A trace may repeat an index
    (the telemetry detector flags it); the index must still be written, or one hostile
    trace would fail its transaction for ever (a worker would stop on it each restart)."""
    rows: dict[int, StepRow] = {}
    for s in run.steps:
        rows.setdefault(
            s.step_index,
            StepRow(
                idx=s.step_index,
                action=s.action or "",
                tool=s.tool_call.tool if s.tool_call else None,
                status=s.result.status if s.result else None,
                ts=s.timestamp,
                permissions=list(s.permissions_used),
            ),
        )
    return list(rows.values())


def run_status(run: Run, findings: Sequence[Finding]) -> tuple[str, str | None]:
    """``executed`` | ``blocked`` | ``pending_approval``, and what blocked it."""
    for step in run.steps:
        status = (step.result.status or "").lower() if step.result else ""
        if status in BLOCKED_STATUSES:
            rules = [f.rule for f in findings if f.step_index == step.step_index]
            tool = step.tool_call.tool if step.tool_call else step.action or "step"
            return "blocked", rules[0] if rules else f"step {step.step_index}: {tool} {status}"
    if (run.status or "").lower() in BLOCKED_STATUSES:
        return "blocked", f"run status {run.status}"
    last = run.steps[-1].result if run.steps else None
    if (run.status or "").lower() in PENDING_STATUSES or (
        last is not None and (last.status or "").lower() in PENDING_STATUSES
    ):
        return PENDING_APPROVAL, None
    return "executed", None


def finding_rows(
    tenant: str, app: str, run_id: str, findings: Iterable[Finding], now: float
) -> list[FindingRow]:
    """Index rows of a run's findings (new, unresolved; the store keeps triage state)."""
    return [
        FindingRow(
            tenant_id=tenant,
            finding_id=f.id,
            app_id=app,
            run_id=run_id,
            category=f.category.value,
            severity=f.severity.value,
            severity_rank=f.severity.rank,
            rule_id=f.rule,
            step=f.step_index,
            resolved=False,
            resolved_at=None,
            resolved_by=None,
            created_at=now,
            body=msgspec.json.encode(f),
        )
        for f in findings
    ]


class StoreWriter:
    """Findings and run index rows of updates, to one store (see the module docstring)."""

    def __init__(
        self,
        store: LogStore,
        *,
        policy_sha256: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.policy_sha256 = policy_sha256
        self.clock = clock
        self._apps: set[tuple[str, str]] = set()  # tenants and apps known to exist

    # -- the exporter -------------------------------------------------------------------------
    def export(self, updates: Sequence[RunUpdate]) -> None:
        if not any(u.findings or u.result is not None for u in updates):
            return
        with records(self.store, write=True) as rtx:
            self.write(rtx, updates)

    def flush(self) -> None:
        return None

    def shutdown(self) -> None:
        return None

    # -- in the caller's transaction ------------------------------------------------------------
    def write(self, rtx: RecordTx, updates: Sequence[RunUpdate]) -> list[RunRow]:
        """Write ``updates`` in ``rtx``; returns the index rows of the runs they closed."""
        now = self.clock()
        wanted = [u for u in updates if u.findings or u.result is not None]
        if not wanted:
            return []
        erased: set[tuple[str, str, str]] = set()
        for tenant in dict.fromkeys(u.tenant for u in wanted):
            runs = list(dict.fromkeys((u.app, u.run_id) for u in wanted if u.tenant == tenant))
            keys = rtx.tx.run_keys(tenant, runs)
            erased.update((tenant, a, r) for (a, r), k in keys.items() if k.erased)
        rows: list[RunRow] = []
        for u in wanted:
            if (u.tenant, u.app, u.run_id) in erased:
                kept = rtx.get_run(u.tenant, u.app, u.run_id) if u.result is not None else None
                if kept is not None:
                    rows.append(kept)
                continue
            if u.result is not None:
                rows.append(self._index(rtx, u, now))
            elif u.findings:
                rtx.put_findings(finding_rows(u.tenant, u.app, u.run_id, u.findings, now))
        return rows

    def index_open(self, rtx: RecordTx, tenant: str, app: str, run: Run, trace_hash: str) -> None:
        """A ``running`` row for a run that started and has not ended (unless it has one)."""
        if rtx.get_run(tenant, app, run.run_id) is None:
            self._put(rtx, tenant, app, run, None, trace_hash, "running", self.clock())

    def _index(self, rtx: RecordTx, u: RunUpdate, now: float) -> RunRow:
        return self._put(rtx, u.tenant, u.app, u.run, u.result, u.trace_hash, u.index_status, now)

    def _put(
        self,
        rtx: RecordTx,
        tenant: str,
        app: str,
        run: Run,
        result: RunResult | None,
        trace_hash: str,
        status: str,
        now: float,
    ) -> RunRow:
        if (tenant, app) not in self._apps:
            rtx.ensure_app(tenant, app, now)
            self._apps.add((tenant, app))
        findings = result.findings if result is not None else []
        blocked_by = None
        if not status:
            status, blocked_by = run_status(run, findings)
        counts = {s.value: 0 for s in Severity}
        for f in findings:
            counts[f.severity.value] += 1
        duration = result.duration_s if result is not None else None
        row = RunRow(
            tenant_id=tenant,
            run_id=run.run_id,
            app_id=app,
            trace_hash=trace_hash or hashlib.sha256(run.run_id.encode()).hexdigest(),
            agent_id=run.agent_id,
            status=status,
            verdict=result.verdict.value if result is not None else "allowed",
            risk_score=result.risk_score if result is not None else 0,
            blocked_by=blocked_by,
            duration_ms=None if duration is None else round(duration * 1000),
            started_at=epoch_of(run.started_at, now),
            updated_at=now,
            steps=len(run.steps),
            findings=len(findings),
            counts=counts,
            policy_sha256=self.policy_sha256,
        )
        rtx.put_run(row, step_rows(run))
        index_values(rtx.tx, tenant, app, run, row.trace_hash, row.started_at, now)
        rtx.put_findings(finding_rows(tenant, app, run.run_id, findings, now))
        if result is not None:
            rtx.tx.put_result(tenant, app, run.run_id, msgspec.json.encode(result))
        return row
