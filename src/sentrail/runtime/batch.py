"""Analysing many traces: one process or a pool, results streamed in input order.

Nothing holds all traces: each worker reads, analyses and returns one file at a time, and
results come back msgspec-encoded (cheap to pass between processes). A trace document and
an NDJSON event file are both folded by :mod:`sentrail.engine.fold`, like every producer.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable, Iterator

import msgspec

from sentrail.engine.config import EngineConfig
from sentrail.engine.engine import Engine
from sentrail.engine.fold import Fold, OutOfOrder
from sentrail.errors import InputError, SentrailError
from sentrail.model.decode import decode_run
from sentrail.model.finding import RunResult
from sentrail.model.judgement import JudgeQuestion, is_ambiguous
from sentrail.model.trace import Run
from sentrail.runtime.judge import question_for
from sentrail.runtime.sources import (
    is_event_stream_name,
    iter_events,
    looks_like_event_stream,
    read_document,
)


class Analysis(msgspec.Struct):
    """The analysis of one run, or why a file (or an event line) could not be analysed.

    ``question``: what a semantic judge would be asked about the run, when questions were
    asked for and the run is ambiguous (:func:`~sentrail.model.judgement.is_ambiguous`).
    Workers build it (they hold the run); the judge is asked once, in the parent."""

    path: str
    result: RunResult | None = None
    error: str | None = None
    question: JudgeQuestion | None = None


def _analysed(path: str, run: Run, result: RunResult, questions: bool) -> Analysis:
    asks = questions and is_ambiguous(result)
    return Analysis(path, result=result, question=question_for(run, result) if asks else None)


def analyze_bytes(
    engine: Engine, path: str, data: bytes, *, questions: bool = False
) -> list[Analysis]:
    """One document (a trace) or one NDJSON stream (any number of runs)."""
    if is_event_stream_name(path) or looks_like_event_stream(data):
        return list(analyze_stream(engine, data, path, questions=questions))
    try:
        run = decode_run(data)
    except SentrailError as exc:
        return [Analysis(path, error=str(exc))]
    return [_analysed(path, run, engine.analyze(run), questions)]


def analyze_path(engine: Engine, path: str, *, questions: bool = False) -> list[Analysis]:
    try:
        data = read_document(path)
    except SentrailError as exc:
        return [Analysis(path, error=exc.message)]
    try:
        return analyze_bytes(engine, path, data, questions=questions)
    except Exception as exc:  # a bug must not end a batch of thousands; it is reported
        return [Analysis(path, error=f"internal error: {type(exc).__name__}: {exc}")]


def analyze_stream(
    engine: Engine, data: bytes, where: str, *, questions: bool = False
) -> Iterator[Analysis]:
    """The runs of an NDJSON event stream, folded; a bad line or an event that does not
    fit its run is reported and the rest goes on. Runs the stream leaves open are closed
    at its end."""
    fold = Fold(engine)
    for item in iter_events(data, where):
        if isinstance(item, InputError):
            yield Analysis(where, error=str(item))
            continue
        folder = fold.runs.get(item.run_id)
        try:
            step = fold.feed(item)
        except OutOfOrder as exc:
            yield Analysis(where, error=str(exc.at(where)))
            continue
        if step.result is not None:
            assert folder is not None
            yield _analysed(where, folder.run, step.result, questions)
    open_runs = list(fold.runs.values())
    for folder, step in zip(open_runs, fold.close_all(), strict=True):
        assert step.result is not None
        yield _analysed(where, folder.run, step.result, questions)


_worker_engine: Engine | None = None
_worker_questions = False
_encode = msgspec.msgpack.Encoder().encode
_decode_analyses = msgspec.msgpack.Decoder(list[Analysis]).decode


def _init_worker(config: EngineConfig, questions: bool) -> None:
    global _worker_engine, _worker_questions
    _worker_engine = config.build()
    _worker_questions = questions


def _work(path: str) -> bytes:
    assert _worker_engine is not None
    return _encode(analyze_path(_worker_engine, path, questions=_worker_questions))


def run_batch(
    paths: Iterable[str], config: EngineConfig, jobs: int = 1, *, questions: bool = False
) -> Iterator[Analysis]:
    """Analyse ``paths`` in order; ``jobs`` > 1 uses that many worker processes.
    ``questions``: build the judge's question for each ambiguous run."""
    if jobs <= 1:
        engine = config.build()
        for path in paths:
            yield from analyze_path(engine, path, questions=questions)
        return
    ctx = multiprocessing.get_context("forkserver")
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(config, questions)) as pool:
        for blob in pool.imap(_work, paths, chunksize=16):
            yield from _decode_analyses(blob)
