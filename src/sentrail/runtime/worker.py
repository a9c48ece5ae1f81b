"""Stream workers: analyse live step events as they arrive on the bus.

A worker owns partition ``k`` of ``n`` of a tenant's stream: the runs of the agents whose
``crc32(agent_id) % n == k``. All of one run's events are therefore handled by one worker,
in stream order. Each worker reads the whole tenant stream through its own durable
consumer and skips other partitions' events (NATS 2.9 has no server-side partitioning);
``sentrail worker --partition k --partitions n`` runs one.

For each batch of events (``process``):

1. a run seen for the first time by this worker process is restored from the store: its
   stored events are replayed through a fresh session (this is how a replaced worker
   resumes a run its predecessor was in the middle of);
2. the batch's events of this partition are appended to the evidence store (one durable
   transaction, idempotent by event id); duplicates are not analysed again;
3. new events go through the same detectors as ``trace analyze``, incrementally; new
   findings are upserted by their deterministic id (so a replay never doubles one) and
   handed to ``on_finding``; a ``run_completed`` closes and indexes the run;
4. the batch is acknowledged on the bus, after the store has it.

A run with no event for ``idle_timeout`` seconds is closed with status ``incomplete``
(the telemetry detector flags it). Without a store (``store=None``), steps 1, 2 and
the indexing are skipped: the worker only analyses (``trace watch``, benchmarks).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgspec

from sentrail.bus.base import Bus, BusError, BusMessage, Consumer
from sentrail.engine.engine import Engine, RunSession
from sentrail.errors import SentrailError
from sentrail.model.decode import decode_event
from sentrail.model.events import Event, RunCompleted, RunStarted, StepEvent
from sentrail.model.finding import Finding, RunResult
from sentrail.model.trace import Run, RunHeader
from sentrail.runtime.ingest import Ingestor, ToIndex, event_kind, finding_rows
from sentrail.store.base import NewEvent
from sentrail.store.core import LogStore
from sentrail.store.records import records

log = logging.getLogger("sentrail.worker")
FindingSink = Callable[[str, str, Finding, BusMessage | None], None]
STREAM_KINDS = ("run_started", "step", "run_completed")


def partition_of(agent_id: str, partitions: int) -> int:
    return zlib.crc32(agent_id.encode()) % partitions


@dataclass
class LiveRun:
    session: RunSession
    header: RunHeader
    steps: list[object] = field(default_factory=list)
    trace_hash: str = ""
    last_seen: float = 0.0
    emitted: set[str] = field(default_factory=set)


@dataclass
class WorkerStats:
    events: int = 0
    skipped_other_partitions: int = 0
    duplicates: int = 0
    invalid: int = 0
    findings: int = 0
    runs_completed: int = 0
    runs_incomplete: int = 0
    runs_restored: int = 0
    bus_errors: int = 0


class Worker:
    def __init__(
        self,
        bus: Bus,
        engine: Engine,
        tenant: str,
        *,
        store: LogStore | None = None,
        app_id: str = "default",
        partition: int = 0,
        partitions: int = 1,
        idle_timeout: float = 300.0,
        on_finding: FindingSink | None = None,
        on_result: Callable[[str, RunResult], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        batch: int = 256,
    ) -> None:
        if not 0 <= partition < partitions:
            raise ValueError(f"partition {partition} is outside 0..{partitions - 1}")
        self.bus = bus
        self.engine = engine
        self.tenant = tenant
        self.store = store
        self.app_id = app_id
        self.partition = partition
        self.partitions = partitions
        self.idle_timeout = idle_timeout
        self.on_finding = on_finding or (lambda *_: None)
        self.on_result = on_result or (lambda *_: None)
        self.clock = clock
        self.batch = batch
        self.durable = f"worker-p{partition}-of-{partitions}"
        self.runs: dict[str, LiveRun] = {}
        self.stats = WorkerStats()
        self.ingestor = Ingestor(store, engine) if store is not None else None
        self._consumer: Consumer | None = None
        self._to_index: list[ToIndex] = []

    # -- the loop ------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, poll: float = 0.5) -> None:
        """Fetch and process until ``stop`` is set; then close idle runs and return."""
        self._consumer = await self.bus.consumer(self.tenant, self.durable)
        try:
            while not stop.is_set():
                try:
                    msgs = await self._consumer.fetch(self.batch, poll)
                    if msgs:
                        self.process(msgs)
                        await self._consumer.ack_through(msgs[-1])
                except BusError as exc:
                    # The bus is away (a NATS restart): what was not acknowledged comes
                    # again, and the store's dedup by event id keeps it from counting twice.
                    self.stats.bus_errors += 1
                    log.warning("bus error, retrying: %s", exc.message)
                    await asyncio.sleep(min(poll, 0.5))
                self.close_idle()
        finally:
            await self._consumer.close()

    def mine(self, msg: BusMessage) -> bool:
        return partition_of(msg.agent_id, self.partitions) == self.partition

    # -- one batch -----------------------------------------------------------------------
    def process(self, msgs: Iterable[BusMessage]) -> None:
        decoded: list[tuple[BusMessage, Event]] = []
        for msg in msgs:
            if not self.mine(msg):
                self.stats.skipped_other_partitions += 1
                continue
            try:
                decoded.append((msg, decode_event(msg.data)))
            except SentrailError:
                self.stats.invalid += 1
        if not decoded:
            return
        unseen = list(dict.fromkeys(ev.run_id for _, ev in decoded if ev.run_id not in self.runs))
        if unseen and self.store is not None:
            for run_id in self.store.stored_runs(self.tenant, self.app_id, unseen):
                self._restore(run_id)  # a run this process has not seen, begun before
        fresh = [True] * len(decoded)
        if self.store is not None:
            acks = self.store.append(
                [
                    NewEvent(
                        self.tenant, self.app_id, ev.run_id, m.event_id, event_kind(ev), m.data
                    )
                    for m, ev in decoded
                ],
                on_conflict="report",  # an id reused with other bytes: counted, not stored
            )
            fresh = [not (a.duplicate or a.conflict) for a in acks]
            self.stats.invalid += sum(a.conflict for a in acks)
        new_findings: list[tuple[str, Finding]] = []
        for (msg, ev), is_new in zip(decoded, fresh, strict=True):
            if not is_new:
                self.stats.duplicates += 1
                continue
            self.stats.events += 1
            new_findings.extend(self._feed(msg, ev))
        self._store_findings(new_findings)
        self._flush_index()

    def _feed(self, msg: BusMessage | None, ev: Event) -> list[tuple[str, Finding]]:
        now = self.clock()
        live = self.runs.get(ev.run_id)
        out: list[tuple[str, Finding]] = []
        if isinstance(ev, RunStarted):
            if live is not None:
                return out  # a second run_started is ignored
            header = msgspec.convert(msgspec.to_builtins(ev), RunHeader)
            trace_hash = hashlib.sha256(msg.data).hexdigest() if msg is not None else ""
            self.runs[ev.run_id] = LiveRun(
                self.engine.start(header), header, trace_hash=trace_hash, last_seen=now
            )
            return out
        if live is None:
            self.stats.invalid += 1  # a step or completion of a run never started
            return out
        live.last_seen = now
        if isinstance(ev, StepEvent):
            live.steps.append(ev.step)
            for f in live.session.on_step(ev.step):
                out.append(self._emit(live, f, msg))
        elif isinstance(ev, RunCompleted):
            live.session.complete(ev)
            out.extend(self._close(live, msg, ""))
        return out

    def _emit(self, live: LiveRun, f: Finding, msg: BusMessage | None) -> tuple[str, Finding]:
        live.emitted.add(f.id)
        self.stats.findings += 1
        self.on_finding(self.tenant, live.header.run_id, f, msg)
        return live.header.run_id, f

    def _close(
        self, live: LiveRun, msg: BusMessage | None, status: str
    ) -> list[tuple[str, Finding]]:
        result = live.session.finish()
        out = [self._emit(live, f, msg) for f in result.findings if f.id not in live.emitted]
        run_id = live.header.run_id
        del self.runs[run_id]
        if status:
            self.stats.runs_incomplete += 1
        else:
            self.stats.runs_completed += 1
        self.on_result(self.tenant, result)
        if self.ingestor is not None:  # indexed with the batch (one transaction)
            header = live.session.header
            run = msgspec.convert(
                {**msgspec.to_builtins(header), "steps": msgspec.to_builtins(live.steps)}, Run
            )
            self._to_index.append(ToIndex(run, result, live.trace_hash, status))
        return out

    def _flush_index(self) -> None:
        if self.ingestor is not None and self._to_index:
            items, self._to_index = self._to_index, []
            self.ingestor.index_runs(self.tenant, self.app_id, items)

    def close_idle(self) -> int:
        """Close runs idle for longer than ``idle_timeout`` as ``incomplete``."""
        now = self.clock()
        idle = [r for r in self.runs.values() if now - r.last_seen > self.idle_timeout]
        findings: list[tuple[str, Finding]] = []
        for live in idle:
            live.session.complete(RunCompleted(run_id=live.header.run_id, status="incomplete"))
            findings.extend(self._close(live, None, "incomplete"))
        self._store_findings(findings)
        self._flush_index()
        return len(idle)

    # -- durable state ---------------------------------------------------------------------
    def _restore(self, run_id: str) -> None:
        """Rebuild a run's session from its stored events (a resumed or replayed run)."""
        if self.store is None:
            return
        stored = [
            e
            for e in self.store.run_events(self.tenant, self.app_id, run_id)
            if e.payload is not None and e.kind in STREAM_KINDS
        ]
        if not stored:
            return
        replayed: list[tuple[str, Finding]] = []
        closed = False
        for e in stored:
            assert e.payload is not None
            try:
                ev = decode_event(e.payload)
            except SentrailError:
                continue
            if isinstance(ev, RunCompleted):
                closed = True
            replayed.extend(self._feed_silently(e.payload, ev))
        with records(self.store) as rtx:
            known = rtx.finding_ids(self.tenant, self.app_id, run_id)
        # Findings of events that were stored but not yet analysed when the previous
        # worker stopped: new, so they are emitted now (once: their ids are stored next).
        unseen = [(r, f) for r, f in replayed if f.id not in known]
        for r, f in unseen:
            self.stats.findings += 1
            self.on_finding(self.tenant, r, f, None)
        self._store_findings(unseen)
        if not closed:
            self.stats.runs_restored += 1

    def _feed_silently(self, data: bytes, ev: Event) -> list[tuple[str, Finding]]:
        """Replay one stored event: state only, no callbacks, no statistics."""
        sinks = self.on_finding, self.on_result
        stats = copy.copy(self.stats)
        self.on_finding, self.on_result = (lambda *_: None), (lambda *_: None)
        try:
            return self._feed(BusMessage(self.tenant, "", "", data, 0), ev)
        finally:
            self.on_finding, self.on_result = sinks
            self.stats = stats

    def _store_findings(self, found: list[tuple[str, Finding]]) -> None:
        if self.store is None or not found:
            return
        now = time.time()
        by_run: dict[str, list[Finding]] = {}
        for run_id, f in found:
            by_run.setdefault(run_id, []).append(f)
        for run_id in self.store.erased_runs(self.tenant, self.app_id, list(by_run)):
            del by_run[run_id]  # a redacted run keeps its scrubbed findings
        with records(self.store, write=True) as rtx:
            for run_id, batch in by_run.items():
                rtx.put_findings(finding_rows(self.tenant, self.app_id, run_id, batch, now))
