"""Watching live runs: events in, per-step records and findings out, as they happen.

The :class:`Watcher` keeps one :class:`~sentrail.engine.engine.RunSession` per run (the
same detectors as ``trace analyze``) and hands a record to its sink for every run start,
step and run end. Input is hostile: every line or message is decoded with the located,
bounded decoders of :mod:`sentrail.model.decode`; a bad one becomes a :class:`Problem`
record and the watch goes on.

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

from sentrail.engine.engine import Engine, RunSession
from sentrail.errors import InputError, SentrailError
from sentrail.model.decode import decode_event, decode_run
from sentrail.model.events import Event, RunCompleted, RunStarted, StepEvent, events_of
from sentrail.model.finding import Category, Finding, RunResult, Severity
from sentrail.model.trace import RunHeader, Step
from sentrail.runtime.framing import DocumentFramer

PARTIAL = "partial"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_MAX_REMEMBERED = 100_000  # run ids remembered as filtered out / reported as orphans


class _Probe(msgspec.Struct):
    type: str | None = None


class _RawStep(msgspec.Struct):
    step: msgspec.Raw


_PROBE = msgspec.json.Decoder(_Probe)
_RAW_STEP = msgspec.json.Decoder(_RawStep)


# -- records handed to the sink --------------------------------------------------------
@dataclass(frozen=True)
class RunOpened:
    run_id: str
    agent_id: str
    header: RunHeader


@dataclass(frozen=True)
class StepSeen:
    run_id: str
    agent_id: str
    step: Step
    findings: list[Finding]  # new findings at or above the minimum severity
    escalated: bool


@dataclass(frozen=True)
class RunClosed:
    run_id: str
    agent_id: str
    result: RunResult
    findings: list[Finding]  # findings of the end-of-run checks, filtered like StepSeen's
    completed: bool  # False: the input ended first (closed as partial)


@dataclass(frozen=True)
class Problem:
    where: str
    message: str
    kind: str = "invalid"  # invalid | orphan


WatchRecord = RunOpened | StepSeen | RunClosed | Problem
Sink = Callable[[WatchRecord], None]


@dataclass
class LiveRun:
    """A run being watched: its session and what is needed to save it as a trace."""

    header: dict[str, Any]  # the run_started fields as sent (no type, event_id)
    agent_id: str
    session: RunSession
    steps: list[bytes] = field(default_factory=list)  # each step's JSON as received
    event_ids: set[str] = field(default_factory=set)

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
    def __init__(
        self,
        engine: Engine,
        sink: Sink,
        *,
        agent: str | None = None,
        run_id: str | None = None,
        min_severity: Severity = Severity.INFO,
    ) -> None:
        self.engine = engine
        self.sink = sink
        self.agent_ok = agent_matcher(agent)
        self.run_filter = run_id
        self.min_rank = min_severity.rank
        self.runs: dict[str, LiveRun] = {}
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
            if run_id in self.runs:
                self._count_duplicate(self.runs[run_id], ev.event_id, first=True)
                return
            self._start(ev, raw)
            return
        live = self.runs.get(run_id)
        if live is None:
            self._unknown_run(run_id)
            return
        if self._count_duplicate(live, ev.event_id):
            return
        self.stats.events += 1
        if isinstance(ev, StepEvent):
            self._step(live, ev, raw)
        elif isinstance(ev, RunCompleted):
            live.session.complete(ev)
            self._close(live, completed=True)

    # -- per event -------------------------------------------------------------------------
    def _start(self, ev: RunStarted, raw: bytes | None) -> None:
        run_id = ev.run_id
        if (self.run_filter is not None and run_id != self.run_filter) or not self.agent_ok(
            ev.agent_id
        ):
            self.stats.filtered += 1
            self._remember(self._ignored, run_id)
            return
        self._ignored.pop(run_id, None)
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
        header = msgspec.convert(msgspec.to_builtins(ev), RunHeader)
        live = LiveRun(fields, ev.agent_id, self.engine.start(header))
        if ev.event_id:
            live.event_ids.add(ev.event_id)
        self.runs[run_id] = live
        self.stats.events += 1
        self.sink(RunOpened(run_id, ev.agent_id, header))

    def _step(self, live: LiveRun, ev: StepEvent, raw: bytes | None) -> None:
        step_json = None
        if raw is not None:
            try:
                step_json = bytes(_RAW_STEP.decode(raw).step)
            except (msgspec.DecodeError, msgspec.ValidationError):
                step_json = None
        live.steps.append(step_json or msgspec.json.encode(ev.step))
        found = live.session.on_step(ev.step)
        summary = live.session.header.permissions_summary
        escalated = any(
            f.category is Category.PERMISSION_ESCALATION and f.step_index == ev.step.step_index
            for f in found
        ) or bool(summary and set(summary.escalated).intersection(ev.step.permissions_used))
        self.sink(StepSeen(live.run_id, live.agent_id, ev.step, self._shown(found), escalated))

    def _close(self, live: LiveRun, *, completed: bool) -> None:
        before = {f.id for f in live.session.ctx.findings}
        result = live.session.finish()
        new = [f for f in result.findings if f.id not in before]
        del self.runs[live.run_id]
        if completed:
            self.stats.runs_completed += 1
        self.sink(RunClosed(live.run_id, live.agent_id, result, self._shown(new), completed))

    def close_open_runs(self) -> list[LiveRun]:
        """End of input: close every open run as ``partial`` (end-of-run checks run).

        Returns the runs closed, so the caller can save them."""
        open_runs = list(self.runs.values())
        for live in open_runs:
            live.session.complete(RunCompleted(run_id=live.run_id, status=PARTIAL))
            self._close(live, completed=False)
        return open_runs

    # -- helpers ---------------------------------------------------------------------------
    def _shown(self, found: list[Finding]) -> list[Finding]:
        return [f for f in found if f.severity.rank >= self.min_rank]

    def _count_duplicate(self, live: LiveRun, event_id: str | None, first: bool = False) -> bool:
        if first or (event_id and event_id in live.event_ids):
            self.stats.duplicates += 1
            return True
        if event_id:
            live.event_ids.add(event_id)
        return False

    def _unknown_run(self, run_id: str) -> None:
        if run_id in self._ignored or (self.run_filter is not None and run_id != self.run_filter):
            self.stats.filtered += 1
            return
        self.stats.orphans += 1
        if run_id not in self._orphans:
            self._remember(self._orphans, run_id)
            self.sink(
                Problem(
                    f"run {run_id}",
                    "events arrived before its run_started (joined mid-run?); ignored",
                    "orphan",
                )
            )

    def _problem(self, where: str, exc: SentrailError) -> None:
        self.stats.invalid += 1
        message = f"{exc.location}: {exc.message}" if exc.location else exc.message
        self.sink(Problem(where, message))

    @staticmethod
    def _remember(table: dict[str, None], run_id: str) -> None:
        table[run_id] = None
        if len(table) > _MAX_REMEMBERED:
            del table[next(iter(table))]


# -- partial traces ------------------------------------------------------------------------
def partial_document(live: LiveRun) -> bytes:
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


def save_partial(live: LiveRun, directory: Path, when: dt.datetime) -> Path:
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
