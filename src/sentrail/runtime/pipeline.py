"""One findings pipeline: what a fold produces, handed to sinks — the evidence first.

The split is OpenTelemetry's (``SpanProcessor`` / ``SpanExporter``): producers (the
worker, HTTP ingest, ``trace watch``) fold events and hand each :class:`RunUpdate` to a
:class:`Pipeline`; a :class:`Processor` decides *when* updates reach its
:class:`Exporter` (:class:`SimpleProcessor`: at once, in the caller's thread;
:class:`BatchProcessor`: in batches, from a thread of its own); an exporter decides
*where* they go (the store, the alert router, a terminal, a SIEM). Which exporters a
command uses is decided once, in :mod:`sentrail.runtime.compose`.

The order is the evidence rule: the pipeline's ``evidence`` exporter (the store writer)
has an update before any processor sees it, and if the evidence cannot be written nothing
is alerted or printed (the error reaches the producer, which does not acknowledge its
input). A producer that wrote the evidence in its own transaction (ingest: events and
index rows commit together) says so with ``stored=True``.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections.abc import Sequence
from typing import Protocol

from sentrail.engine.fold import FoldStep
from sentrail.model.finding import Finding, RunResult
from sentrail.model.trace import Run

log = logging.getLogger("sentrail.pipeline")


@dataclasses.dataclass(frozen=True, slots=True)
class RunUpdate:
    """One :class:`FoldStep` with where it belongs.

    ``run`` is the folded run (its steps so far: the folder's own object, not a copy).
    ``index_status`` is how the run index shows a run this update closed: empty for
    derived from the run (executed, blocked, pending approval), else e.g. ``incomplete``.
    ``replayed``: the findings were raised when the event was first folded, by this
    process or a predecessor (a redelivered event): already stored, exported again only
    to the notifiers, because whether they were notified is unknown.
    """

    tenant: str
    app: str
    run: Run
    step: FoldStep
    trace_hash: str = ""
    index_status: str = ""
    replayed: bool = False

    @property
    def run_id(self) -> str:
        return self.step.run_id

    @property
    def findings(self) -> list[Finding]:
        return self.step.findings

    @property
    def result(self) -> RunResult | None:
        return self.step.result


class Exporter(Protocol):
    """Where updates go. ``export`` may be called from any one thread at a time."""

    def export(self, updates: Sequence[RunUpdate]) -> None: ...

    def flush(self) -> None: ...

    def shutdown(self) -> None: ...


class Processor(Protocol):
    """When updates reach an exporter."""

    def on_updates(self, updates: Sequence[RunUpdate]) -> None: ...

    def flush(self) -> None: ...

    def shutdown(self) -> None: ...


class SimpleProcessor:
    """Each batch of updates to the exporter at once, in the producer's thread (printers,
    and exporters that queue on their own, like the alert router)."""

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter

    def on_updates(self, updates: Sequence[RunUpdate]) -> None:
        self.exporter.export(updates)

    def flush(self) -> None:
        self.exporter.flush()

    def shutdown(self) -> None:
        self.exporter.shutdown()


class BatchProcessor:
    """Updates queued (bounded) and exported in batches by a thread of its own, so a slow
    exporter (a SIEM over HTTP) never holds up the producer. A full queue drops the update
    and counts it (``dropped``): notification is best effort, the evidence is not."""

    def __init__(
        self, exporter: Exporter, *, max_queue: int = 10_000, max_batch: int = 512
    ) -> None:
        self.exporter = exporter
        self.max_batch = max_batch
        self.dropped = 0
        self.failed = 0
        self._queue: queue.Queue[RunUpdate | None] = queue.Queue(maxsize=max_queue)
        self._idle = threading.Condition()
        self._pending = 0
        self._thread = threading.Thread(target=self._work, name="export", daemon=True)
        self._thread.start()

    def on_updates(self, updates: Sequence[RunUpdate]) -> None:
        for u in updates:
            with self._idle:
                self._pending += 1
            try:
                self._queue.put_nowait(u)
            except queue.Full:
                self.dropped += 1
                self._done(1)

    def _done(self, n: int) -> None:
        with self._idle:
            self._pending -= n
            self._idle.notify_all()

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(nxt)
            try:
                self.exporter.export(batch)
            except Exception as exc:
                self.failed += len(batch)
                log.error("an exporter failed (%s): %s", type(exc).__name__, exc)
            self._done(len(batch))

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything queued was exported (or ``timeout``), then flush."""
        with self._idle:
            self._idle.wait_for(lambda: self._pending <= 0, timeout)
        self.exporter.flush()

    def shutdown(self) -> None:
        self.flush()
        self._queue.put(None)
        self._thread.join(timeout=30.0)
        self.exporter.shutdown()


class Pipeline:
    """The evidence exporter first, then every processor (see the module docstring)."""

    def __init__(
        self, evidence: Exporter | None = None, processors: Sequence[Processor] = ()
    ) -> None:
        self.evidence = evidence
        self.processors = list(processors)

    def emit(self, updates: Sequence[RunUpdate], *, stored: bool = False) -> None:
        """Hand ``updates`` on: to the evidence exporter (unless the producer ``stored``
        them itself), and only then to the processors."""
        if not updates:
            return
        fresh = [u for u in updates if not u.replayed]
        if self.evidence is not None and not stored and fresh:
            self.evidence.export(fresh)
            self.evidence.flush()
        for p in self.processors:
            p.on_updates(updates)

    def flush(self) -> None:
        if self.evidence is not None:
            self.evidence.flush()
        for p in self.processors:
            p.flush()

    def shutdown(self) -> None:
        """Flush and stop every processor and exporter; the first error is raised last."""
        first: Exception | None = None
        parts: list[Processor | Exporter] = [*self.processors]
        if self.evidence is not None:
            parts.append(self.evidence)
        for part in parts:
            try:
                part.shutdown()
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first
