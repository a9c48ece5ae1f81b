"""Ingest: store what was received in the tamper-evident log, fold it, index the result.

Two inputs, one path (used by ``sentrail ingest`` and by the HTTP service):

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
with other bytes is an ``EventConflict``. A run is folded by the one fold
(:mod:`sentrail.engine.fold`) — a completed run from the log as it stands, in the same
transaction — and the events and the index rows they lead to (run, steps, findings,
result, value index) commit together, so nothing is ever half-written; a run's rows are
rewritten whenever its trace or its ``run_completed`` arrives again, which keeps them
current with the engine.

The :class:`~sentrail.runtime.pipeline.RunUpdate` s of what was judged are returned, so
the caller hands them to the pipeline's notifiers (the evidence is already written):
only runs judged for the first time (a new trace, a new ``run_completed``) are notified.
"""

from __future__ import annotations

import hashlib

import msgspec

from sentrail.engine.engine import Engine
from sentrail.errors import InputError, SentrailError
from sentrail.model.decode import decode_event, decode_run
from sentrail.model.events import Event, RunCompleted, RunStarted, StepEvent
from sentrail.model.finding import RunResult
from sentrail.model.trace import Run
from sentrail.runtime.framing import ndjson_lines
from sentrail.runtime.pipeline import RunUpdate
from sentrail.runtime.store_writer import StoreWriter
from sentrail.runtime.stored import fold_stored
from sentrail.store.base import Appended, NewEvent
from sentrail.store.core import LogStore, Tx
from sentrail.store.records import RecordTx, RunRow
from sentrail.store.sql import SqlTx

MAX_LINE_ERRORS = 20
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


class TraceIngested(msgspec.Struct, frozen=True):
    trace_hash: str
    run_id: str
    ack: Appended
    row: RunRow
    result: RunResult
    run: Run
    updates: list[RunUpdate]  # to notify (empty for a duplicate)


class EventsIngested(msgspec.Struct, frozen=True):
    acks: list[Appended]
    completed_runs: list[str]
    updates: list[RunUpdate]  # of runs completed by a new run_completed, to notify


def event_kind(event: Event) -> str:
    return _KINDS.get(type(event), "step")


def event_id_of(event: Event, line: bytes) -> str:
    kind = event_kind(event)
    return event.event_id or f"{event.run_id}/{kind}/{hashlib.sha256(line).hexdigest()[:32]}"


class Ingestor:
    """Stores, folds and indexes runs of one store with one engine."""

    def __init__(
        self, store: LogStore, engine: Engine, *, writer: StoreWriter | None = None
    ) -> None:
        self.store = store
        self.engine = engine
        self.writer = writer or StoreWriter(store)

    # -- whole traces ---------------------------------------------------------------------
    def ingest_trace(self, tenant: str, app: str, data: bytes) -> TraceIngested:
        """Store, fold and index one trace document (InputError if it is not one)."""
        run = decode_run(data)
        trace_hash = hashlib.sha256(data).hexdigest()
        folder = self.engine.start(run.header())
        updates = [
            RunUpdate(tenant, app, folder.run, folder.feed(StepEvent(run_id=run.run_id, step=s)))
            for s in run.steps
        ]
        updates.append(RunUpdate(tenant, app, folder.run, folder.close(), trace_hash))
        result = folder.result
        assert result is not None
        event_id = f"{run.run_id}/trace/{trace_hash[:32]}"
        event = NewEvent(tenant, app, run.run_id, event_id, "trace", data)
        rows: list[RunRow] = []

        def index(tx: Tx, acks: list[Appended]) -> None:
            rows.extend(self.writer.write(RecordTx(_sql(tx)), updates))

        (ack,) = self.store.append([event], also=index)  # the event and its rows, or neither
        return TraceIngested(
            trace_hash, run.run_id, ack, rows[0], result, run, [] if ack.duplicate else updates
        )

    # -- event streams --------------------------------------------------------------------
    def parse_events(
        self, tenant: str, app: str, data: bytes, where: str = "body"
    ) -> list[NewEvent]:
        """Every line as a log event; one InputError naming up to 20 bad lines otherwise."""
        out: list[NewEvent] = []
        errors: list[tuple[str, str]] = []
        for lineno, line in ndjson_lines(data):
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
        notify: list[RunUpdate] = []

        def index(tx: Tx, acks: list[Appended]) -> None:
            rtx = RecordTx(_sql(tx))
            fresh = {
                e.run_id
                for e, a in zip(events, acks, strict=True)
                if e.kind == "run_completed" and not a.duplicate
            }
            judged: list[RunUpdate] = []
            for run_id in completed:  # folded whole, from the log as it now stands
                updates = self._fold_run(tx, tenant, app, run_id)
                judged.extend(updates)
                if run_id in fresh:
                    notify.extend(updates)
            self.writer.write(rtx, judged)
            for run_id in started.difference(completed):
                stored = fold_stored(self.engine, tx.run_events(tenant, app, run_id))
                if stored.folder is not None:
                    self.writer.index_open(rtx, tenant, app, stored.folder.run, stored.trace_hash)

        acks = self.store.append(events, also=index)  # events and index rows together
        return EventsIngested(acks, completed, notify)

    def _fold_run(self, tx: Tx, tenant: str, app: str, run_id: str) -> list[RunUpdate]:
        """The updates of a completed run folded from its stored events (in ``tx``)."""
        stored = fold_stored(self.engine, tx.run_events(tenant, app, run_id))
        folder = stored.folder
        if folder is None or not folder.closed:
            return []
        h = stored.trace_hash
        return [RunUpdate(tenant, app, folder.run, step, h) for step in stored.raised.values()]


def _sql(tx: Tx) -> SqlTx:
    if not isinstance(tx, SqlTx):  # pragma: no cover - every backend is SQL
        raise SentrailError("this store has no record tables")
    return tx
