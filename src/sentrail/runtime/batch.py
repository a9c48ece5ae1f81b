"""Analysing many traces: one process or a pool, results streamed in input order.

Nothing holds all traces: each worker reads, analyses and returns one file at a time, and
results come back msgspec-encoded (cheap to pass between processes).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec

from sentrail.engine.engine import Engine, RunSession
from sentrail.errors import InputError, SentrailError
from sentrail.model.baseline import BASELINE_FORMAT, Baselines
from sentrail.model.decode import decode_run
from sentrail.model.events import RunCompleted, RunStarted
from sentrail.model.finding import RunResult
from sentrail.model.trace import RunHeader
from sentrail.policy.compiled import Policy
from sentrail.policy.load import load_policy
from sentrail.runtime.sources import (
    is_event_stream_name,
    iter_events,
    looks_like_event_stream,
    read_document,
)


class Outcome(msgspec.Struct):
    """The analysis of one run, or why a file (or an event line) could not be analysed."""

    path: str
    result: RunResult | None = None
    error: str | None = None


class EngineConfig(msgspec.Struct, frozen=True):
    policy_path: str | None = None
    baseline_path: str | None = None
    today: dt.date | None = None

    def build(self) -> Engine:
        policy = Policy(load_policy(self.policy_path)) if self.policy_path else Policy()
        baselines = load_baselines(self.baseline_path) if self.baseline_path else None
        return Engine(policy, baselines, today=self.today)


def load_baselines(path: str) -> Baselines:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read baselines: {exc.strerror}", path) from None
    try:
        baselines = msgspec.json.decode(data, type=Baselines)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InputError(f"not a sentrail baselines file: {exc}", path) from None
    if baselines.format != BASELINE_FORMAT:
        raise InputError(f"baselines format {baselines.format!r} is not {BASELINE_FORMAT!r}", path)
    return baselines


def analyze_bytes(engine: Engine, path: str, data: bytes) -> list[Outcome]:
    """One document (a trace) or one NDJSON stream (any number of runs)."""
    if is_event_stream_name(path) or looks_like_event_stream(data):
        return list(replay_stream(engine, data, path))
    try:
        run = decode_run(data)
    except SentrailError as exc:
        return [Outcome(path, error=str(exc))]
    return [Outcome(path, result=engine.analyze(run))]


def analyze_path(engine: Engine, path: str) -> list[Outcome]:
    try:
        data = read_document(path)
    except SentrailError as exc:
        return [Outcome(path, error=exc.message)]
    try:
        return analyze_bytes(engine, path, data)
    except Exception as exc:  # a bug must not end a batch of thousands; it is reported
        return [Outcome(path, error=f"internal error: {type(exc).__name__}: {exc}")]


def replay_stream(engine: Engine, data: bytes, where: str) -> Iterator[Outcome]:
    """Fold an NDJSON event stream; a bad line is reported and the rest goes on."""
    sessions: dict[str, RunSession] = {}
    for item in iter_events(data, where):
        if isinstance(item, InputError):
            yield Outcome(where, error=str(item))
            continue
        run_id = item.run_id
        if isinstance(item, RunStarted):
            if run_id in sessions:
                yield Outcome(where, error=f"{where}: run {run_id}: run_started twice")
                continue
            header = msgspec.convert(msgspec.to_builtins(item), RunHeader)
            sessions[run_id] = engine.start(header)
            continue
        session = sessions.get(run_id)
        if session is None:
            yield Outcome(where, error=f"{where}: run {run_id}: event before run_started")
            continue
        if isinstance(item, RunCompleted):
            del sessions[run_id]
            session.complete(item)
            yield Outcome(where, result=session.finish())
        else:
            session.on_step(item.step)
    for session in sessions.values():  # the stream ended before these runs completed
        yield Outcome(where, result=session.finish())


_worker_engine: Engine | None = None
_encode = msgspec.msgpack.Encoder().encode
_decode_outcomes = msgspec.msgpack.Decoder(list[Outcome]).decode


def _init_worker(config: EngineConfig) -> None:
    global _worker_engine
    _worker_engine = config.build()


def _work(path: str) -> bytes:
    assert _worker_engine is not None
    return _encode(analyze_path(_worker_engine, path))


def run_batch(paths: Iterable[str], config: EngineConfig, jobs: int = 1) -> Iterator[Outcome]:
    """Analyse ``paths`` in order; ``jobs`` > 1 uses that many worker processes."""
    if jobs <= 1:
        engine = config.build()
        for path in paths:
            yield from analyze_path(engine, path)
        return
    ctx = multiprocessing.get_context("forkserver")
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(config,)) as pool:
        for blob in pool.imap(_work, paths, chunksize=16):
            yield from _decode_outcomes(blob)
