"""Ingest: store what was received in the tamper-evident log, analyse it, index the result.

Two inputs, one pipeline (used by ``sentrail ingest`` and by the HTTP service):

- a whole trace document: stored as ONE log event of kind ``trace`` whose payload is the
  exact bytes received (after gzip decompression, if any); its ``traceHash`` is the
  SHA-256 of those bytes;
- an NDJSON event stream (docs/trace-format.md): each line is one log event whose payload
  is the exact line without its terminator (``\\n`` or ``\\r\\n``); kinds ``run_started``,
  ``step``, ``run_completed``. A run that arrives as events has as ``traceHash`` the
  SHA-256 of its ``run_started`` line.

Everything is validated before anything is written: a stream with one bad line stores
nothing and names the line. Everything is the app's: runs, events and index rows are
keyed by (tenant, app, run). Events are idempotent by (app, event id) (an event without
one gets ``<run_id>/<kind>/<first 32 hex of the SHA-256 of its bytes>``); an id reused
with other bytes is an ``EventConflict``. The events and the index
rows they lead to (run, steps, findings, result) commit in one transaction, so nothing is
ever half-written; a run's rows are rewritten whenever its trace or its ``run_completed``
arrives again, which keeps them current with the engine.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Sequence

import msgspec

from sentrail.detect.base import parse_time
from sentrail.engine.engine import Engine
from sentrail.errors import InputError, SentrailError
from sentrail.forensics.stored import index_values
from sentrail.model.decode import decode_event, decode_run
from sentrail.model.events import Event, RunCompleted, RunStarted, fold_run
from sentrail.model.finding import Finding, RunResult, Severity
from sentrail.model.trace import Run
from sentrail.store.base import Appended, NewEvent
from sentrail.store.core import LogStore, Tx
from sentrail.store.records import FindingRow, RecordTx, RunRow, StepRow, records
from sentrail.store.sql import SqlTx

MAX_LINE_ERRORS = 20
_BLOCKED = frozenset({"blocked", "denied"})
_PENDING = frozenset({"pending_approval", "awaiting_approval"})
_STREAM_KINDS = frozenset({"run_started", "step", "run_completed"})
_KINDS: dict[type, str] = {RunStarted: "run_started", RunCompleted: "run_completed"}


class InvalidLines(InputError):
    """Some lines of an event stream are not valid events; ``errors`` names each."""

    def __init__(self, errors: list[tuple[str, str]], where: str) -> None:
        shown = "; ".join(f"{loc}: {msg}" for loc, msg in errors[:MAX_LINE_ERRORS])
        more = len(errors) - MAX_LINE_ERRORS
        super().__init__(
            f"{len(errors)} invalid line(s), nothing stored: {shown}"
            + (f"; and {more} more" if more > 0 else ""),
            where,
        )
        self.errors = errors[:MAX_LINE_ERRORS]


class ToIndex(msgspec.Struct, frozen=True):
    """A run to index: ``status`` empty means derived from the run."""

    run: Run
    result: RunResult | None
    trace_hash: str
    status: str = ""


class TraceIngested(msgspec.Struct, frozen=True):
    trace_hash: str
    run_id: str
    ack: Appended
    row: RunRow
    result: RunResult
    run: Run


class EventsIngested(msgspec.Struct, frozen=True):
    acks: list[Appended]
    completed_runs: list[str]


def event_kind(event: Event) -> str:
    return _KINDS.get(type(event), "step")


def event_id_of(event: Event, line: bytes) -> str:
    kind = event_kind(event)
    return event.event_id or f"{event.run_id}/{kind}/{hashlib.sha256(line).hexdigest()[:32]}"


def step_rows(run: Run) -> list[StepRow]:
    """One index row per step index. A repeated index is legal input (reported as missing
    telemetry, the trace kept whole in the log); its last step stands for it here."""
    by_index = {
        s.step_index: StepRow(
            idx=s.step_index,
            action=s.action or "",
            tool=s.tool_call.tool if s.tool_call else None,
            status=s.result.status if s.result else None,
            ts=s.timestamp,
            permissions=list(s.permissions_used),
        )
        for s in run.steps
    }
    return list(by_index.values())


def run_status(run: Run, findings: Sequence[Finding]) -> tuple[str, str | None]:
    """``executed`` | ``blocked`` | ``pending_approval``, and what blocked it."""
    for step in run.steps:
        status = (step.result.status or "").lower() if step.result else ""
        if status in _BLOCKED:
            rules = [f.rule for f in findings if f.step_index == step.step_index]
            tool = step.tool_call.tool if step.tool_call else step.action or "step"
            return "blocked", rules[0] if rules else f"step {step.step_index}: {tool} {status}"
    if (run.status or "").lower() in _BLOCKED:
        return "blocked", f"run status {run.status}"
    last = run.steps[-1].result if run.steps else None
    if (run.status or "").lower() in _PENDING or (
        last is not None and (last.status or "").lower() in _PENDING
    ):
        return "pending_approval", None
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


def _epoch(text: str | None, default: float) -> float:
    when = parse_time(text)
    return when.timestamp() if when is not None else default


class Ingestor:
    """Stores, analyses and indexes runs of one store with one engine."""

    def __init__(
        self,
        store: LogStore,
        engine: Engine,
        *,
        policy_sha256: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.engine = engine
        self.policy_sha256 = policy_sha256
        self.clock = clock
        self._apps: set[tuple[str, str]] = set()  # tenants and apps known to exist

    # -- whole traces ---------------------------------------------------------------------
    def ingest_trace(self, tenant: str, app: str, data: bytes) -> TraceIngested:
        """Store, analyse and index one trace document (InputError if it is not one)."""
        run = decode_run(data)
        result = self.engine.analyze(run)
        trace_hash = hashlib.sha256(data).hexdigest()
        event_id = f"{run.run_id}/trace/{trace_hash[:32]}"
        event = NewEvent(tenant, app, run.run_id, event_id, "trace", data)
        rows: list[RunRow] = []

        def index(tx: Tx, acks: list[Appended]) -> None:
            item = ToIndex(run, result, trace_hash)
            rows.extend(self._write_index(RecordTx(_sql(tx)), tenant, app, [item]))

        (ack,) = self.store.append([event], also=index)  # the event and its rows, or neither
        return TraceIngested(trace_hash, run.run_id, ack, rows[0], result, run)

    # -- event streams --------------------------------------------------------------------
    def parse_events(
        self, tenant: str, app: str, data: bytes, where: str = "body"
    ) -> list[NewEvent]:
        """Every line as a log event; one InputError naming up to 20 bad lines otherwise."""
        out: list[NewEvent] = []
        errors: list[tuple[str, str]] = []
        for lineno, raw in enumerate(data.split(b"\n"), start=1):
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line.strip():
                continue
            try:
                event = decode_event(line)
            except SentrailError as exc:
                loc = f"{where}: line {lineno}" + (f": {exc.location}" if exc.location else "")
                errors.append((loc, exc.message))
                continue
            out.append(
                NewEvent(
                    tenant, app, event.run_id, event_id_of(event, line), event_kind(event), line
                )
            )
        if errors:
            raise InvalidLines(errors, where)
        if not out:
            raise InputError("no events (expected NDJSON, one event per line)", where)
        return out

    def ingest_events(self, tenant: str, app: str, data: bytes) -> EventsIngested:
        """Store a batch of NDJSON events; index runs that started or completed in it."""
        events = self.parse_events(tenant, app, data)
        started = {e.run_id for e in events if e.kind == "run_started"}
        completed = list(dict.fromkeys(e.run_id for e in events if e.kind == "run_completed"))

        def index(tx: Tx, acks: list[Appended]) -> None:
            rtx = RecordTx(_sql(tx))
            items = []
            for run_id in completed:  # analysed whole, from the log as it now stands
                decoded, trace_hash = _stored_events(tx, tenant, app, run_id)
                run = fold_run(decoded)
                if run is not None:
                    items.append(ToIndex(run, self.engine.analyze(run), trace_hash))
            for run_id in started.difference(completed):
                decoded, trace_hash = _stored_events(tx, tenant, app, run_id)
                run = fold_run(decoded)
                if run is not None and rtx.get_run(tenant, app, run_id) is None:
                    items.append(ToIndex(run, None, trace_hash, "running"))
            self._write_index(rtx, tenant, app, items)

        acks = self.store.append(events, also=index)  # events and index rows together
        return EventsIngested(acks, completed)

    # -- the index rows -------------------------------------------------------------------
    def index_run(
        self,
        tenant: str,
        app: str,
        run: Run,
        result: RunResult | None,
        trace_hash: str,
        status: str,
    ) -> RunRow:
        """Write a run's index rows (run, steps, findings, result) in one transaction.

        ``status`` empty: derived from the run (:func:`run_status`). A redacted run keeps
        its scrubbed rows: a re-sent copy of its trace (a duplicate in the log) must not
        write the erased values back."""
        (row,) = self.index_runs(tenant, app, [ToIndex(run, result, trace_hash, status)])
        return row

    def index_runs(self, tenant: str, app: str, items: Sequence[ToIndex]) -> list[RunRow]:
        """:meth:`index_run` for many runs in one transaction (a stream worker's batch)."""
        with records(self.store, write=True) as rtx:
            return self._write_index(rtx, tenant, app, items)

    def _write_index(
        self, rtx: RecordTx, tenant: str, app: str, items: Sequence[ToIndex]
    ) -> list[RunRow]:
        """Write the index rows of ``items`` in the caller's transaction; a redacted run
        keeps its scrubbed rows."""
        now = self.clock()
        keys = rtx.tx.run_keys(tenant, list(dict.fromkeys((app, i.run.run_id) for i in items)))
        erased = {r for (_, r), k in keys.items() if k.erased}
        if (tenant, app) not in self._apps:
            rtx.ensure_app(tenant, app, now)
        out: list[RunRow] = []
        for item in items:
            run, result = item.run, item.result
            if run.run_id in erased:
                kept = rtx.get_run(tenant, app, run.run_id)
                if kept is not None:
                    out.append(kept)
                    continue
            row = self._run_row(tenant, app, item, now)
            findings = result.findings if result is not None else []
            rtx.put_run(row, step_rows(run))
            index_values(rtx.tx, tenant, app, run, row.trace_hash, row.started_at, now)
            rtx.put_findings(finding_rows(tenant, app, run.run_id, findings, now))
            if result is not None:
                rtx.tx.put_result(tenant, app, run.run_id, msgspec.json.encode(result))
            out.append(row)
        self._apps.add((tenant, app))
        return out

    def _run_row(self, tenant: str, app: str, item: ToIndex, now: float) -> RunRow:
        run, result, status = item.run, item.result, item.status
        findings = result.findings if result is not None else []
        blocked_by = None
        if not status:
            status, blocked_by = run_status(run, findings)
        counts = {s.value: 0 for s in Severity}
        for f in findings:
            counts[f.severity.value] += 1
        duration = result.duration_s if result is not None else None
        return RunRow(
            tenant_id=tenant,
            run_id=run.run_id,
            app_id=app,
            trace_hash=item.trace_hash or hashlib.sha256(run.run_id.encode()).hexdigest(),
            agent_id=run.agent_id,
            status=status,
            verdict=result.verdict.value if result is not None else "allowed",
            risk_score=result.risk_score if result is not None else 0,
            blocked_by=blocked_by,
            duration_ms=None if duration is None else round(duration * 1000),
            started_at=_epoch(run.started_at, now),
            updated_at=now,
            steps=len(run.steps),
            findings=len(findings),
            counts=counts,
            policy_sha256=self.policy_sha256,
        )


def _sql(tx: Tx) -> SqlTx:
    if not isinstance(tx, SqlTx):  # pragma: no cover - every backend is SQL
        raise SentrailError("this store has no record tables")
    return tx


def _stored_events(tx: Tx, tenant: str, app: str, run_id: str) -> tuple[list[Event], str]:
    """A streamed run's stored events (in this transaction) and its traceHash: the SHA-256
    of its ``run_started`` line."""
    decoded: list[Event] = []
    first = ""
    for stored in tx.run_events(tenant, app, run_id):
        if stored.payload is None or stored.kind not in _STREAM_KINDS:
            continue
        if stored.kind == "run_started" and not first:
            first = hashlib.sha256(stored.payload).hexdigest()
        decoded.append(decode_event(stored.payload))
    return decoded, first
