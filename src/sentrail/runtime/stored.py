"""A stored run, folded: its events as the log holds them, through the one fold.

This is how every reader of the log gets a run back — HTTP ingest when a run completes,
a stream worker restoring a run its predecessor had open, the worker's start-up pass
over runs that were stored but never indexed, replay, ``log verify --deep``, and the
readers that only want the document — the API's and the dashboard's run pages,
forensics (:func:`document_of`: no detectors). The events are folded exactly as a live
producer's are; nothing is exported here (whoever calls decides what to do with the
:class:`FoldStep` of each event). What the fold left out is reported with where it is
(:class:`LeftOut`): each reader decides what it means to it.

The log holds a run as stream events (``run_started``, ``step``, ``run_completed``: one
NDJSON line each, exact bytes) or as one ``trace`` event (a whole document, folded as the
events a live producer would have sent). The first ``run_started`` is folded first, so a
run whose steps were stored before its start is not lost; then every event in log order.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable

from sentrail.engine.engine import Engine
from sentrail.engine.fold import FoldStep, OutOfOrder, RunFolder, header_of
from sentrail.errors import InputError, SentrailError
from sentrail.model.decode import decode_event, decode_run
from sentrail.model.events import Event, RunCompleted, RunStarted, events_of
from sentrail.store.base import StoredEvent

STREAM_KINDS = frozenset({"run_started", "step", "run_completed"})
RUN_KINDS = STREAM_KINDS | {"trace"}


@dataclasses.dataclass(frozen=True)
class LeftOut:
    """A stored event the fold left out, and why: its payload no longer decodes (hostile,
    or from another version), or it does not fit the run (a step after the run ended).
    Readers differ in what they do with it — a page skips it, ``log verify --deep``
    names it — so it carries where it is in the log and the located error."""

    seq: int
    event_id: str
    error: SentrailError
    undecodable: bool

    def __str__(self) -> str:
        return f"event {self.event_id} (seq {self.seq}): {self.error}"


@dataclasses.dataclass
class StoredRun:
    """A run folded from the log: the folder (None without a start), what each stored
    event raised (by its log event id), the run's traceHash — the SHA-256 of its
    ``run_started`` line, or of its trace document — which stored event carried each
    step (``steps_at``: step index -> seq) and the events left out."""

    folder: RunFolder | None
    raised: dict[str, FoldStep] = dataclasses.field(default_factory=dict)
    trace_hash: str = ""
    completed: bool = False
    left_out: list[LeftOut] = dataclasses.field(default_factory=list)
    agent_id: str = ""
    steps_at: dict[int, int] = dataclasses.field(default_factory=dict)

    @property
    def undecodable(self) -> list[LeftOut]:
        return [x for x in self.left_out if x.undecodable]


def _decoded(stored: Iterable[StoredEvent], out: StoredRun) -> list[tuple[StoredEvent, Event]]:
    events: list[tuple[StoredEvent, Event]] = []
    for e in stored:
        if e.payload is None or e.kind not in RUN_KINDS:
            continue
        try:
            if e.kind == "trace":
                if not out.trace_hash:
                    out.trace_hash = hashlib.sha256(e.payload).hexdigest()
                events.extend((e, ev) for ev in events_of(decode_run(e.payload)))
                continue
            ev = decode_event(e.payload)
        except SentrailError as exc:
            out.left_out.append(LeftOut(e.seq, e.event_id, exc, True))
            continue
        if isinstance(ev, RunStarted) and not out.trace_hash:
            out.trace_hash = hashlib.sha256(e.payload).hexdigest()
        events.append((e, ev))
    return events


def fold_stored(engine: Engine, stored: Iterable[StoredEvent]) -> StoredRun:
    """Fold one run's stored events (see the module docstring)."""
    out = StoredRun(None)
    events = _decoded(stored, out)
    first = next((i for i, (_, ev) in enumerate(events) if isinstance(ev, RunStarted)), None)
    if first is None:
        return out
    start_row, start = events.pop(first)
    assert isinstance(start, RunStarted)
    folder = out.folder = engine.start(header_of(start))
    folder.remember(start.event_id)
    out.agent_id = start.agent_id
    out.raised[start_row.event_id] = FoldStep(folder.run_id, "started")
    for row, ev in events:
        if isinstance(ev, RunStarted) or folder.closed:
            continue  # a second start, or anything after the end: kept in the log, not folded
        try:
            step = folder.feed(ev)
        except (OutOfOrder, InputError) as exc:
            out.left_out.append(LeftOut(row.seq, row.event_id, exc, False))
            continue
        if isinstance(ev, RunCompleted):
            out.completed = True
        if step.step is not None and step.kind == "step":
            out.steps_at.setdefault(step.step.step_index, row.seq)
        previous = out.raised.get(row.event_id)
        if previous is not None:  # one trace event raised the findings of all its steps
            step = FoldStep(
                step.run_id, step.kind, previous.findings + step.findings, step.result, step.step
            )
        out.raised[row.event_id] = step
    return out


def document_of(stored: Iterable[StoredEvent]) -> StoredRun:
    """The run the stored events describe, folded with no detector: for a reader that
    wants the trace document (``.folder.run``), not a judgement."""
    return fold_stored(Engine(detectors=()), stored)
