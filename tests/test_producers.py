"""Every producer folds with the one fold, so every producer judges a run as ``trace analyze``
judges the trace it folded (issue 11): batch analysis of the document, an NDJSON file,
``trace watch``, a stream worker on the memory bus (with its store), HTTP ingest (whole
traces and event streams), and the decision point asked about each call."""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings

from sentrail.bus.memory import MemoryBus
from sentrail.detect.registry import DETECTORS, rule_declared
from sentrail.enforce.model import DecisionRequest
from sentrail.enforce.pdp import DecisionPoint
from sentrail.engine.engine import Engine
from sentrail.model.decode import decode_run
from sentrail.model.events import events_of
from sentrail.model.finding import RunResult
from sentrail.model.trace import Run
from sentrail.policy.compiled import Policy
from sentrail.policy.load import load_policy, parse_policy
from sentrail.runtime.batch import analyze_bytes, analyze_stream
from sentrail.runtime.compose import listener_pipeline
from sentrail.runtime.ingest import Ingestor
from sentrail.runtime.pipeline import RunUpdate
from sentrail.runtime.stored import fold_stored
from sentrail.runtime.watch import Watcher
from sentrail.runtime.watch_records import RunClosed, WatchRecord
from sentrail.runtime.worker import Worker
from sentrail.store.sqlite import SqliteStore
from tests.conftest import EXAMPLES
from tests.store.conftest import SIGNER
from tests.strategies import traces

Judgement = tuple[list[tuple[str, str, str, int | None]], str, int]


def judgement(r: RunResult) -> Judgement:
    found = sorted((f.id, f.rule, f.severity.value, f.step_index) for f in r.findings)
    return found, r.verdict.value, r.risk_score


def ndjson(run: Run) -> bytes:
    """The run's events as a producer sends them: each with its event id (``sentrail emit``
    numbers them), so two identical steps are two events, not one sent twice."""
    out = b""
    for i, e in enumerate(events_of(run)):
        e.event_id = f"{run.run_id}/{i}"
        out += msgspec.json.encode(e) + b"\n"
    return out


def engine() -> Engine:
    return Engine(Policy(load_policy(EXAMPLES / "policy.yaml")))


@pytest.fixture(scope="module")
def store() -> Iterator[SqliteStore]:
    with tempfile.TemporaryDirectory() as d:
        s = SqliteStore(Path(d) / "producers.db", SIGNER)
        s.migrate()
        yield s
        s.close()


# -- the producers -----------------------------------------------------------------------------
def by_batch(eng: Engine, raw: bytes) -> RunResult:
    (a,) = analyze_bytes(eng, "run.json", raw)
    assert a.result is not None, a.error
    return a.result


def by_ndjson(eng: Engine, run: Run) -> RunResult:
    (a,) = analyze_stream(eng, ndjson(run), "run.ndjson")
    assert a.result is not None, a.error
    return a.result


def by_watch(eng: Engine, run: Run) -> RunResult:
    seen: list[WatchRecord] = []
    w = Watcher(eng, seen.append)
    for line in ndjson(run).splitlines(keepends=True):
        w.feed_line(line, "stdin")
    (closed,) = [r for r in seen if isinstance(r, RunClosed)]
    return closed.result


def by_worker(eng: Engine, run: Run, store: SqliteStore) -> tuple[RunResult, Run]:
    tenant = f"w-{uuid.uuid4().hex[:12]}"
    bus = MemoryBus()
    results: list[RunResult] = []
    notified: list[str] = []

    def listen(u: RunUpdate) -> None:
        notified.extend(f.id for f in u.findings)
        if u.result is not None:
            results.append(u.result)

    worker = Worker(bus, eng, tenant, store=store, pipeline=listener_pipeline(listen), batch=3)

    async def go() -> None:
        for i, ev in enumerate(events_of(run)):
            await bus.publish(tenant, run.agent_id, f"e{i}", msgspec.json.encode(ev))
        consumer = await bus.consumer(tenant, worker.durable)
        while msgs := await consumer.fetch(worker.batch, 0.01):
            worker.process(msgs)
            await consumer.ack(msgs)

    asyncio.run(go())
    (result,) = results
    assert sorted(notified) == sorted(f.id for f in result.findings)  # each once
    stored = fold_stored(eng, store.run_events(tenant, "default", run.run_id))
    assert stored.folder is not None and stored.folder.result is not None
    assert judgement(stored.folder.result) == judgement(result)  # restoring is the same fold
    return result, stored.folder.run


def by_ingest(eng: Engine, raw: bytes, run: Run, store: SqliteStore) -> list[RunResult]:
    tenant = f"i-{uuid.uuid4().hex[:12]}"
    ingestor = Ingestor(store, eng)
    whole = ingestor.ingest_trace(tenant, "app", raw).result
    streamed = ingestor.ingest_events(f"{tenant}-s", "app", ndjson(run))
    (end,) = [u.result for u in streamed.updates if u.result is not None]
    stored = store.get_result(f"{tenant}-s", "app", run.run_id)
    assert stored is not None
    return [whole, end, msgspec.json.decode(stored, type=RunResult)]


# -- the property ------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=traces())
def test_every_producer_judges_a_run_as_trace_analyze_judges_its_folded_trace(
    doc: dict[str, Any], store: SqliteStore
) -> None:
    raw = json.dumps(doc).encode()
    eng = engine()
    run = decode_run(raw)
    expected = judgement(eng.analyze(run))
    assert judgement(by_batch(eng, raw)) == expected
    assert judgement(by_ndjson(eng, run)) == expected
    assert judgement(by_watch(eng, run)) == expected
    worker, folded = by_worker(eng, run, store)
    assert judgement(worker) == expected
    assert judgement(eng.analyze(folded)) == expected  # the trace the worker folded
    for result in by_ingest(eng, raw, run, store):
        assert judgement(result) == expected


MONITOR = b"""
default_profile:
  id: "*"
  enforcement: {mode: monitor, approval_for: []}
"""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces())
def test_a_decision_point_judges_the_calls_it_was_asked_as_trace_analyze_judges_its_run(
    doc: dict[str, Any],
) -> None:
    """Where it applies: a monitoring decision point (every call allowed, so nothing is
    decided after the fact) asked about each call of a run. A result observed after its
    call is, by design, seen both at the call and as a step of its own, which a trace
    (one step, one result) cannot say; those are compared through the fold directly."""
    eng = Engine(Policy(parse_policy(MONITOR)))
    pdp = DecisionPoint(eng, SIGNER)
    run = decode_run(json.dumps(doc).encode())
    for s in run.steps:
        if s.tool_call is None:
            continue
        pdp.decide(
            DecisionRequest(
                tool=s.tool_call.tool,
                parameters=s.tool_call.parameters,
                agent_id=run.agent_id,
                run_id=run.run_id,
                permissions=list(s.permissions_used),
                action=s.action,
                reasoning=s.reasoning,
                resource=s.resource,
                environment=s.environment,
                approval_id=s.approval_id,
                trigger=run.trigger,
            )
        )
    state = pdp._runs.get(("default", run.run_id))
    if state is None:
        return  # no call was asked about
    folded = msgspec.json.decode(msgspec.json.encode(state.folder.run), type=Run)
    live = state.folder.close().result
    assert live is not None
    assert judgement(live) == judgement(eng.analyze(folded))


# -- the registry ------------------------------------------------------------------------------
def test_every_finding_of_the_examples_and_goldens_is_declared_by_its_detector() -> None:
    """Rule ids, categories and severities are data on the detectors: a finding whose rule
    no detector declares, or with another category or severity, is a registry bug."""
    goldens = Path(__file__).parent / "golden"
    docs = [p for p in sorted((EXAMPLES / "traces").glob("*.json")) if p.name != "truncated.json"]
    docs += sorted(goldens.glob("*/*.json"))
    seen = 0
    eng = engine()
    for path in docs:
        try:
            run = decode_run(path.read_bytes())
        except Exception:
            continue  # not a trace (a baseline or a policy next to the goldens)
        for f in eng.analyze(run).findings:
            declared = rule_declared(f.rule)
            assert declared is not None, f"{path.name}: {f.rule} is declared by no detector"
            _, category, severities = declared
            assert f.category is category, f"{path.name}: {f.rule}"
            assert f.severity in severities, f"{path.name}: {f.rule} {f.severity}"
            seen += 1
    assert seen > 50
    assert list(DETECTORS)[-1] == "behavioural_correlation"  # reads the others' findings
