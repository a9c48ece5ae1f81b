"""Watching live runs: events in, per-step records and findings out, as they happen.

The :class:`Watcher` folds events with the one fold (:mod:`sentrail.engine.fold`: the
same detectors as ``trace analyze``) and hands every run start, step and run end to its
pipeline, whose view turns them into records (:mod:`sentrail.runtime.watch_records`).
Input is hostile: every line or message is decoded with the located, bounded decoders of
:mod:`sentrail.model.decode`; a bad one becomes a :class:`WatchProblem` record and the watch
goes on.

Lines are framed by :class:`~sentrail.runtime.framing.DocumentFramer`, so NDJSON events
(one per line) and whole trace documents (pretty-printed over many lines, e.g.
``cat run.json | ...``) both work; a trace document is replayed as the events a live
producer would have sent.

A run still open when the watch ends is written as a *partial* trace document
(``"status": "partial"``) by :func:`save_partial`; it is a valid trace that
``trace analyze`` reads (and flags ``missing_telemetry.run_incomplete``).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from sentrail.engine.engine import Engine
from sentrail.engine.fold import Fold, FoldStep, OutOfOrder, RunFolder
from sentrail.errors import InputError, SentrailError
from sentrail.model.decode import decode_event, decode_run
from sentrail.model.events import Event, RunCompleted, RunStarted, StepEvent, events_of
from sentrail.model.finding import Severity
from sentrail.model.status import PARTIAL
from sentrail.runtime.compose import watch_pipeline
from sentrail.runtime.framing import DocumentFramer
from sentrail.runtime.pipeline import Pipeline, RunUpdate
from sentrail.runtime.watch_records import RecordSink, WatchProblem

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_MAX_REMEMBERED = 100_000  # run ids remembered as filtered out / reported as orphans


class _Probe(msgspec.Struct):
    type: str | None = None


class _RawStep(msgspec.Struct):
    step: msgspec.Raw


_PROBE = msgspec.json.Decoder(_Probe)
_RAW_STEP = msgspec.json.Decoder(_RawStep)


@dataclass
class WatchedRun:
    """A run being watched: its folder, and what is needed to save it as a trace."""

    header: dict[str, Any]  # the run_started fields as sent (no type, event_id)
    agent_id: str
    folder: RunFolder
    steps: list[bytes] = field(default_factory=list)  # each step's JSON as received

    @property
    def run_id(self) -> str:
        return str(self.header["run_id"])


@dataclass
class WatchStats:
    events: int = 0
    invalid: int = 0
    duplicates: int = 0
    orphans: int = 0
    filtered: int = 0
    runs_completed: int = 0


def agent_matcher(pattern: str | None) -> Callable[[str], bool]:
    """A glob on agent ids; a pattern without glob characters also matches as a prefix."""
    if not pattern:
        return lambda _: True
    if not any(c in pattern for c in "*?["):
        pattern += "*"
    return lambda agent: fnmatch.fnmatchcase(agent, pattern)


class Watcher:
    """Folds what it is fed; ``sink`` gets the records (through ``pipeline``, by default
    the watch view of :func:`~sentrail.runtime.compose.watch_pipeline`) and problems."""

    def __init__(
        self,
        engine: Engine,
        sink: RecordSink,
        *,
        agent: str | None = None,
        run_id: str | None = None,
        min_severity: Severity = Severity.INFO,
        pipeline: Pipeline | None = None,
    ) -> None:
        self.engine = engine
        self.sink = sink
        self.pipeline = pipeline or watch_pipeline(sink, min_severity)
        self.agent_ok = agent_matcher(agent)
        self.run_filter = run_id
        self.fold = Fold(engine)
        self.runs: dict[str, WatchedRun] = {}
        self.stats = WatchStats()
        self._ignored: dict[str, None] = {}
        self._orphans: dict[str, None] = {}
        self._framers: dict[str, DocumentFramer] = {}

    # -- input ---------------------------------------------------------------------------
    def feed_line(self, line: bytes, source: str) -> None:
        """One line of an NDJSON stream (or of a multi-line trace document)."""
        framer = self._framers.setdefault(source, DocumentFramer())
        done = framer.feed(line)
        if done is not None:
            lineno, doc = done
            where = f"{source}:line {lineno}"
            if isinstance(doc, InputError):
                self._problem(where, doc)
            else:
                self.feed_document(doc, where)

    def end_of_input(self, source: str) -> None:
        framer = self._framers.pop(source, None)
        left = framer.end() if framer is not None else None
        if left is not None:
            self._problem(f"{source}:line {left[0]}", left[1])

    def feed_document(self, data: bytes, where: str) -> None:
        """One whole document: an event, or a trace (replayed as its events)."""
        try:
            probe = _PROBE.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            probe = _Probe(type="?")  # let the event decoder say what is wrong
        try:
            if probe.type is None:
                for ev in events_of(decode_run(data)):
                    self.feed_event(ev, None)
            else:
                self.feed_event(decode_event(data), data)
        except SentrailError as exc:
            self._problem(where, exc)
        except OSError:
            raise  # the output went away: the caller ends the watch
        except Exception as exc:  # a bug must not end a live watch; it is reported
            self._problem(where, InputError(f"internal error: {type(exc).__name__}: {exc}"))

    def feed_event(self, ev: Event, raw: bytes | None) -> None:
        """One decoded event; ``raw`` (its JSON line) keeps unknown fields in partial saves."""
        run_id = ev.run_id
        if isinstance(ev, RunStarted):
            if self._filtered_out(ev):
                return
            self._ignored.pop(run_id, None)
        elif run_id not in self.runs:
            self._unknown_run(run_id)
            return
        try:
            step = self.fold.feed(ev)
        except OutOfOrder:  # run_started twice
            self.stats.duplicates += 1
            return
        if step.kind == "duplicate":
            self.stats.duplicates += 1
            return
        self.stats.events += 1
        if isinstance(ev, RunStarted):
            self.runs[run_id] = WatchedRun(_fields(ev, raw), ev.agent_id, self.fold.runs[run_id])
        watched = self.runs[run_id]
        if isinstance(ev, StepEvent):
            watched.steps.append(_step_json(ev, raw))
        if step.result is not None:
            del self.runs[run_id]
            self.stats.runs_completed += isinstance(ev, RunCompleted)
        self._emit(watched, step)

    def close_open_runs(self) -> list[WatchedRun]:
        """End of input: close every open run as ``partial`` (end-of-run checks run).

        Returns the runs closed, so the caller can save them."""
        open_runs = list(self.runs.values())
        for watched in open_runs:
            del self.runs[watched.run_id]
            self._emit(watched, self.fold.close(watched.run_id, PARTIAL))
        return open_runs

    # -- helpers ---------------------------------------------------------------------------
    def _emit(self, watched: WatchedRun, step: FoldStep) -> None:
        self.pipeline.emit([RunUpdate("", "", watched.folder.run, step)])

    def _filtered_out(self, ev: RunStarted) -> bool:
        if (self.run_filter is not None and ev.run_id != self.run_filter) or not self.agent_ok(
            ev.agent_id
        ):
            self.stats.filtered += 1
            self._remember(self._ignored, ev.run_id)
            return True
        return False

    def _unknown_run(self, run_id: str) -> None:
        if run_id in self._ignored or (self.run_filter is not None and run_id != self.run_filter):
            self.stats.filtered += 1
            return
        self.stats.orphans += 1
        if run_id not in self._orphans:
            self._remember(self._orphans, run_id)
            self.sink(
                WatchProblem(
                    f"run {run_id}",
                    "events arrived before its run_started (joined mid-run?); ignored",
                    "orphan",
                )
            )

    def _problem(self, where: str, exc: SentrailError) -> None:
        self.stats.invalid += 1
        message = f"{exc.location}: {exc.message}" if exc.location else exc.message
        self.sink(WatchProblem(where, message))

    @staticmethod
    def _remember(table: dict[str, None], run_id: str) -> None:
        table[run_id] = None
        if len(table) > _MAX_REMEMBERED:
            del table[next(iter(table))]


def _fields(ev: RunStarted, raw: bytes | None) -> dict[str, Any]:
    """The run_started fields as sent (unknown ones too), for a partial save."""
    fields: dict[str, Any] | None = None
    if raw is not None:
        try:
            decoded = msgspec.json.decode(raw)
            fields = decoded if isinstance(decoded, dict) else None
        except msgspec.DecodeError:
            fields = None
    if fields is None:
        fields = msgspec.to_builtins(ev)
    for key in ("type", "event_id", "steps", "completed_at"):
        fields.pop(key, None)
    return fields


def _step_json(ev: StepEvent, raw: bytes | None) -> bytes:
    if raw is not None:
        try:
            return bytes(_RAW_STEP.decode(raw).step)
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
    return msgspec.json.encode(ev.step)


# -- partial traces ------------------------------------------------------------------------
def partial_document(live: WatchedRun) -> bytes:
    """The steps seen so far as a trace document with ``"status": "partial"``."""
    doc = {**live.header, "status": PARTIAL, "steps": [msgspec.Raw(s) for s in live.steps]}
    return msgspec.json.format(msgspec.json.encode(doc), indent=2) + b"\n"


def partial_name(run_id: str, when: dt.datetime) -> str:
    safe = _UNSAFE_NAME.sub("_", run_id)[:80].lstrip(".") or "run"
    return f"{safe}-partial-{when.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) with mode 0700."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(d, 0o700)
    return path


def save_partial(live: WatchedRun, directory: Path, when: dt.datetime) -> Path:
    """Write ``live`` under ``directory`` (0700) as a new 0600 file; never overwrites."""
    private_dir(directory)
    data = partial_document(live)
    stem = partial_name(live.run_id, when)
    tmp = directory / f".{stem}.{os.getpid()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        for n in range(1, 1000):
            target = directory / (f"{stem}.json" if n == 1 else f"{stem}-{n}.json")
            try:
                os.link(tmp, target)
            except FileExistsError:
                continue
            return target
        raise InputError("too many partial traces with the same name", str(directory))
    finally:
        tmp.unlink(missing_ok=True)
