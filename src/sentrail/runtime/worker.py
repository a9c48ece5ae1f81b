"""Stream workers: fold live step events as they arrive on the bus, durably.

A worker owns partition ``k`` of ``n`` of a tenant's stream: the runs of the agents whose
``crc32(agent_id) % n == k``. All of one run's events are therefore handled by one worker,
in stream order. Each worker reads the whole tenant stream through its own durable
consumer and skips other partitions' events (NATS 2.9 has no server-side partitioning);
``sentrail worker --partition k --partitions n`` runs one.

A worker serves one app of its tenant (``app_id``): it stores events under that app and
every run, restore and index row it handles is the app's — (tenant, app, run) is a run.

On start (:meth:`Worker.recover`): every run of this app and partition that the log holds
and the app's index does not (never indexed, or still ``running`` although the log has its
``run_completed``) is folded again from the log, indexed, and its findings that were never
stored are stored and then notified; runs still open are held again, so that the idle
timeout closes them. The bus consumer then resumes at the first message this partition's
durable has not acknowledged (:mod:`sentrail.bus`).

For each batch of events (:meth:`Worker.process`):

1. a run seen for the first time by this process is restored from the store: its stored
   events are folded, with nothing exported (this is how a replacement resumes a run its
   predecessor had open), remembering what each stored event raised;
2. in ONE store transaction: the batch's events of this partition are appended
   (idempotent by the app's event id; an id the app holds with other bytes is counted as
   invalid and neither stored nor folded), the new ones are folded, and their findings (and
   the index rows of the runs they closed) are written — the evidence path, all or nothing;
3. only then the updates go to the pipeline's notifiers (alerts, the printer, a SIEM):
   new findings, and — for a message delivered again (``delivered`` > 1) because it was
   stored but never acknowledged — the findings its event raised, since whether they
   were notified before the previous worker stopped is unknown (at least once; within
   one process, once);
4. the caller acknowledges the batch on the bus: exactly what was stored and notified.

A run with no event for ``idle_timeout`` seconds is closed with status ``incomplete``
(the telemetry detector flags it). Without a store (``store=None``) the worker only folds
and notifies (``trace watch``, benchmarks).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import logging
import time
import zlib
from collections.abc import Callable, Iterable

from sentrail.bus.base import Bus, BusError, BusMessage, Consumer
from sentrail.engine.engine import Engine
from sentrail.engine.fold import Fold, FoldStep, OutOfOrder, RunFolder
from sentrail.errors import SentrailError
from sentrail.model.decode import decode_event
from sentrail.model.events import Event, RunStarted
from sentrail.model.finding import Finding
from sentrail.model.status import INCOMPLETE
from sentrail.runtime.ingest import event_kind
from sentrail.runtime.pipeline import Pipeline, RunUpdate
from sentrail.runtime.recovery import stale_runs
from sentrail.runtime.store_writer import StoreWriter
from sentrail.runtime.stored import StoredRun, fold_stored
from sentrail.store.base import Appended, NewEvent
from sentrail.store.core import LogStore, Tx
from sentrail.store.records import RecordTx, records
from sentrail.store.sql import SqlTx

log = logging.getLogger("sentrail.worker")
MAX_REMEMBERED = 200_000  # finding ids notified by this process (a bound)


def partition_of(agent_id: str, partitions: int) -> int:
    return zlib.crc32(agent_id.encode()) % partitions


@dataclasses.dataclass
class HeldRun:
    """A run this worker holds open (or restored for this batch): its folder, its
    traceHash, when it was last heard of, and — restored from the store — what each
    stored event raised (by event id), to notify again if the event comes again."""

    folder: RunFolder
    trace_hash: str
    last_seen: float
    raised: dict[str, FoldStep] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class WorkerStats:
    events: int = 0
    skipped_other_partitions: int = 0
    duplicates: int = 0
    invalid: int = 0
    findings: int = 0
    runs_completed: int = 0
    runs_incomplete: int = 0
    runs_restored: int = 0
    runs_recovered: int = 0
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
        pipeline: Pipeline | None = None,
        clock: Callable[[], float] = time.monotonic,
        batch: int = 256,
        on_stored: Callable[[str], None] | None = None,
        fault: Callable[[str], None] | None = None,
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
        self.pipeline = pipeline or Pipeline()
        self.clock = clock
        self.batch = batch
        self.on_stored = on_stored or (lambda tenant: None)
        self.fault = fault or (lambda point: None)
        self.durable = f"worker-p{partition}-of-{partitions}"
        self.fold = Fold(engine)
        self.runs: dict[str, HeldRun] = {}
        self.stats = WorkerStats()
        self.writer: StoreWriter | None = None
        if store is not None:
            evidence = self.pipeline.evidence
            if evidence is None:
                evidence = self.pipeline.evidence = StoreWriter(store)
            if not isinstance(evidence, StoreWriter):
                raise ValueError("a worker with a store writes its evidence with a StoreWriter")
            self.writer = evidence
        self._notified: collections.OrderedDict[str, None] = collections.OrderedDict()

    # -- the loop ------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, poll: float = 0.5) -> None:
        """Recover, then fetch and process until ``stop`` is set; then return."""
        self.recover()
        consumer: Consumer = await self.bus.consumer(self.tenant, self.durable)
        try:
            while not stop.is_set():
                try:
                    msgs = await consumer.fetch(self.batch, poll)
                    if msgs:
                        self.fault("fetched")
                        self.process(msgs)
                        await consumer.ack(msgs)  # exactly what this process stored
                except BusError as exc:
                    # The bus is away (a NATS restart): what was not acknowledged comes
                    # again, and the store's dedup by event id keeps it from counting twice.
                    self.stats.bus_errors += 1
                    log.warning("bus error, retrying: %s", exc.message)
                    await asyncio.sleep(min(poll, 0.5))
                self.close_idle()
        finally:
            await consumer.close()

    def mine(self, agent_id: str) -> bool:
        return partition_of(agent_id, self.partitions) == self.partition

    # -- one batch -----------------------------------------------------------------------
    def process(self, msgs: Iterable[BusMessage]) -> None:
        decoded: list[tuple[BusMessage, Event]] = []
        for msg in msgs:
            if not self.mine(msg.agent_id):
                self.stats.skipped_other_partitions += 1
                continue
            try:
                decoded.append((msg, decode_event(msg.data)))
            except SentrailError:
                self.stats.invalid += 1
        if not decoded:
            return
        updates: list[RunUpdate] = []
        if self.store is None:
            updates = self._fold_batch(decoded, None)
        else:
            unseen = list(dict.fromkeys(e.run_id for _, e in decoded if e.run_id not in self.runs))
            updates.extend(self._restore(unseen))
            writer, store = self.writer, self.store
            assert writer is not None

            def fold_and_write(tx: Tx, acks: list[Appended]) -> None:
                updates.extend(self._fold_batch(decoded, acks))
                writer.write(RecordTx(_sql(tx)), [u for u in updates if not u.replayed])

            store.append(
                [
                    NewEvent(
                        self.tenant, self.app_id, ev.run_id, m.event_id, event_kind(ev), m.data
                    )
                    for m, ev in decoded
                ],
                also=fold_and_write,
                on_conflict="report",  # an id reused with other bytes: counted, not stored
            )
            self.on_stored(self.tenant)
            self.fault("committed")
        self._notify(updates)
        for run_id in [r for r, held in self.runs.items() if held.folder.closed]:
            del self.runs[run_id]

    def _fold_batch(
        self, decoded: list[tuple[BusMessage, Event]], acks: list[Appended] | None
    ) -> list[RunUpdate]:
        out: list[RunUpdate] = []
        for i, (msg, ev) in enumerate(decoded):
            if acks is not None and acks[i].conflict:
                self.stats.invalid += 1  # another event's id: not stored, not folded
                continue
            if acks is not None and acks[i].duplicate:
                self.stats.duplicates += 1
                out.extend(self._again(msg, ev))
                continue
            self.stats.events += 1
            out.extend(self._feed(msg, ev))
        return out

    def _feed(self, msg: BusMessage, ev: Event) -> list[RunUpdate]:
        now = self.clock()
        try:
            step = self.fold.feed(ev)
        except OutOfOrder as exc:
            if exc.reason != "started_twice":  # a second run_started is ignored
                self.stats.invalid += 1  # a step or completion of a run never started
            return []
        if isinstance(ev, RunStarted):
            folder = self.fold.runs[ev.run_id]
            self.runs[ev.run_id] = HeldRun(folder, hashlib.sha256(msg.data).hexdigest(), now)
        held = self.runs[ev.run_id]
        held.last_seen = now
        if step.result is not None:
            self.stats.runs_completed += 1
        return [RunUpdate(self.tenant, self.app_id, held.folder.run, step, held.trace_hash)]

    def _again(self, msg: BusMessage, ev: Event) -> list[RunUpdate]:
        """An event stored before (by this process or a predecessor) and delivered again:
        what it raised, to the notifiers only (the evidence has it). A message delivered
        for the first time that repeats a stored event id (a publisher that retried after
        the bus's duplicate window) was notified when it was first stored: nothing."""
        if msg.delivered <= 1:
            return []
        held = self.runs.get(ev.run_id)
        raised = held.raised.get(msg.event_id) if held is not None else None
        if held is None or raised is None:
            return []
        held.last_seen = self.clock()
        step = dataclasses.replace(raised, findings=list(raised.findings))
        return [
            RunUpdate(
                self.tenant, self.app_id, held.folder.run, step, held.trace_hash, replayed=True
            )
        ]

    def _notify(self, updates: list[RunUpdate]) -> None:
        """To the notifiers, each finding once per process (an event delivered twice to
        this process raises nothing new)."""
        out: list[RunUpdate] = []
        for u in updates:
            todo = [f for f in u.findings if f.id not in self._notified]
            if not todo and u.result is None and u.findings:
                continue
            for f in todo:
                self._notified[f.id] = None
            while len(self._notified) > MAX_REMEMBERED:
                self._notified.popitem(last=False)
            self.stats.findings += len(todo)
            out.append(u if len(todo) == len(u.findings) else _with_findings(u, todo))
        self.pipeline.emit(out, stored=self.store is not None)

    # -- runs that end without run_completed -------------------------------------------------
    def close_idle(self) -> int:
        """Close runs idle for longer than ``idle_timeout`` as ``incomplete``."""
        now = self.clock()
        idle = [r for r, held in self.runs.items() if now - held.last_seen > self.idle_timeout]
        updates: list[RunUpdate] = []
        for run_id in idle:
            held = self.runs.pop(run_id)
            step = self.fold.close(run_id, INCOMPLETE)
            self.stats.runs_incomplete += 1
            updates.append(
                RunUpdate(
                    self.tenant, self.app_id, held.folder.run, step, held.trace_hash, INCOMPLETE
                )
            )
        if updates:
            if self.writer is not None:
                self.writer.export(updates)
            self._notify(updates)
        return len(idle)

    # -- durable state ---------------------------------------------------------------------
    def _restore(self, run_ids: list[str]) -> list[RunUpdate]:
        """Rebuild runs of this batch that this process has not seen from their stored
        events; returns the updates of findings the log implies and the store lacks."""
        if self.store is None or not run_ids:
            return []
        out: list[RunUpdate] = []
        for run_id in sorted(self.store.stored_runs(self.tenant, self.app_id, run_ids)):
            stored = fold_stored(
                self.engine, self.store.run_events(self.tenant, self.app_id, run_id)
            )
            out.extend(self._hold(run_id, stored))
        return out

    def _hold(self, run_id: str, stored: StoredRun) -> list[RunUpdate]:
        folder = stored.folder
        if folder is None:
            return []
        held = HeldRun(folder, stored.trace_hash, self.clock(), stored.raised)
        self.runs[run_id] = held
        if not folder.closed:
            self.fold.runs[run_id] = folder
            self.stats.runs_restored += 1
        assert self.store is not None
        with records(self.store) as rtx:
            known = rtx.finding_ids(self.tenant, self.app_id, run_id)
        missing = [
            dataclasses.replace(s, findings=[f for f in s.findings if f.id not in known])
            for s in stored.raised.values()
        ]
        return [
            RunUpdate(self.tenant, self.app_id, folder.run, s, stored.trace_hash)
            for s in missing
            if s.findings
        ]

    def recover(self) -> int:
        """Re-fold, index and notify the runs of this partition that the log holds and the
        index does not (see the module docstring); returns how many."""
        if self.store is None or self.writer is None:
            return 0
        stale = stale_runs(self.store, self.tenant, self.app_id, self.mine)
        for run_id in stale:
            stored = fold_stored(
                self.engine, self.store.run_events(self.tenant, self.app_id, run_id)
            )
            updates = self._hold(run_id, stored)
            folder = stored.folder
            if folder is not None and folder.closed:
                end = next(s for s in stored.raised.values() if s.result is not None)
                end = dataclasses.replace(end, findings=[])  # its new ones are in `updates`
                updates.append(
                    RunUpdate(self.tenant, self.app_id, folder.run, end, stored.trace_hash)
                )
                del self.runs[run_id]
            self.writer.export(updates)
            self._notify(updates)
        self.stats.runs_recovered += len(stale)
        return len(stale)


def _with_findings(u: RunUpdate, findings: list[Finding]) -> RunUpdate:
    return dataclasses.replace(u, step=dataclasses.replace(u.step, findings=findings))


def _sql(tx: Tx) -> SqlTx:
    if not isinstance(tx, SqlTx):  # pragma: no cover - every backend is SQL
        raise SentrailError("this store has no record tables")
    return tx
