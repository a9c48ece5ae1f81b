"""Stream workers: streaming equals batch, resume after a worker dies, idle runs, partitions."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings

from sentrail.bus.base import BusMessage
from sentrail.bus.memory import MemoryBus
from sentrail.engine.engine import Engine
from sentrail.model.decode import decode_run
from sentrail.model.events import events_of
from sentrail.model.finding import Finding, RunResult
from sentrail.runtime.worker import Worker, partition_of
from sentrail.store.records import records
from sentrail.store.sqlite import SqliteStore
from tests.store.conftest import SIGNER
from tests.strategies import traces

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "traces"
TENANT = "acme"


def example_runs() -> list[bytes]:
    return [p.read_bytes() for p in sorted(EXAMPLES.glob("*.json")) if p.name != "truncated.json"]


def publish_all(bus: MemoryBus, docs: list[bytes]) -> int:
    async def go() -> int:
        n = 0
        for doc in docs:
            run = decode_run(doc)
            for i, ev in enumerate(events_of(run)):
                await bus.publish(
                    TENANT, run.agent_id, f"{run.run_id}/{i}", msgspec.json.encode(ev)
                )
                n += 1
        return n

    return asyncio.run(go())


def drain(worker: Worker, bus: MemoryBus, *, limit: int | None = None, ack: bool = True) -> int:
    """Process what is on the bus (at most ``limit`` messages); returns how many."""

    async def go() -> int:
        consumer = await bus.consumer(TENANT, worker.durable)
        done = 0
        while limit is None or done < limit:
            want = worker.batch if limit is None else min(worker.batch, limit - done)
            msgs = await consumer.fetch(want, 0.05)
            if not msgs:
                break
            worker.process(msgs)
            if ack:
                await consumer.ack_through(msgs[-1])
            done += len(msgs)
        return done

    return asyncio.run(go())


def ids(findings: list[Finding]) -> list[tuple[str, str, int | None]]:
    return sorted((f.id, f.rule, f.step_index) for f in findings)


def test_streaming_every_example_equals_trace_analyze() -> None:
    bus = MemoryBus()
    docs = example_runs()
    publish_all(bus, docs)
    engine = Engine()
    results: dict[str, RunResult] = {}
    worker = Worker(bus, engine, TENANT, on_result=lambda t, r: results.__setitem__(r.run_id, r))
    drain(worker, bus)
    assert len(results) == len(docs)
    for doc in docs:
        run = decode_run(doc)
        batch = engine.analyze(run)
        streamed = results[run.run_id]
        assert ids(streamed.findings) == ids(batch.findings), run.run_id
        assert (streamed.verdict, streamed.risk_score) == (batch.verdict, batch.risk_score)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces())
def test_streaming_a_generated_trace_equals_trace_analyze(doc: dict[str, Any]) -> None:
    bus = MemoryBus()
    data = json.dumps(doc).encode()
    publish_all(bus, [data])
    engine = Engine()
    seen: list[Finding] = []
    results: list[RunResult] = []
    worker = Worker(
        bus,
        engine,
        TENANT,
        on_finding=lambda t, r, f, m: seen.append(f),
        on_result=lambda t, r: results.append(r),
    )
    drain(worker, bus)
    batch = engine.analyze(decode_run(data))
    (streamed,) = results
    assert ids(streamed.findings) == ids(batch.findings)
    assert ids(seen) == ids(batch.findings)  # every finding emitted once, as it fired


def test_a_replaced_worker_resumes_with_no_lost_or_doubled_finding(tmp_path: Path) -> None:
    docs = example_runs()
    engine = Engine()
    expected = sorted(f.id for d in docs for f in engine.analyze(decode_run(d)).findings)
    bus = MemoryBus()
    total = publish_all(bus, docs)
    emitted: list[str] = []
    store = SqliteStore(tmp_path / "s.db", SIGNER)
    store.migrate()

    def sink(t: str, r: str, f: Finding, m: BusMessage | None) -> None:
        emitted.append(f.id)

    # Both cuts fall in the middle of a run: worker 1 stores and analyses up to `cut`,
    # acknowledges only up to `acked`, and dies.
    sizes = [len(events_of(decode_run(d))) for d in docs]
    acked = sum(sizes[:2]) + sizes[2] // 2
    cut = sum(sizes[:5]) + sizes[5] // 2
    first = Worker(bus, engine, TENANT, store=store, on_finding=sink, batch=7)
    drain(first, bus, limit=cut, ack=False)
    asyncio.run(_ack_first(bus, first.durable, acked))
    # Worker 2 (a new process: no memory) gets the unacknowledged rest again.
    second = Worker(bus, engine, TENANT, store=store, on_finding=sink, batch=5)
    drain(second, bus)
    assert second.stats.duplicates > 0 and second.stats.runs_restored > 0
    assert sorted(emitted) == expected  # every finding once
    with records(store) as rtx:
        stored = sorted(
            fid for d in docs for fid in rtx.finding_ids(TENANT, "default", decode_run(d).run_id)
        )
        listed = {r.run_id for r in rtx.list_runs(TENANT, "default", _all(), 100)}
    assert stored == expected
    assert listed == {decode_run(d).run_id for d in docs}
    assert len(store.leaf_hashes(TENANT)) == total  # every event stored once
    store.close()


async def _ack_first(bus: MemoryBus, durable: str, n: int) -> None:
    consumer = await bus.consumer(TENANT, durable)
    msgs = await consumer.fetch(n, 0.1)
    await consumer.ack_through(msgs[-1])


def _all() -> Any:
    from sentrail.store.records import RunFilter

    return RunFilter()


def test_idle_runs_are_closed_as_incomplete(tmp_path: Path) -> None:
    doc = decode_run((EXAMPLES / "triage-restart.json").read_bytes())
    events = events_of(doc)[:-1]  # never completes
    bus = MemoryBus()

    async def pub() -> None:
        for i, ev in enumerate(events):
            await bus.publish(TENANT, doc.agent_id, f"e{i}", msgspec.json.encode(ev))

    asyncio.run(pub())
    now = [1000.0]
    store = SqliteStore(tmp_path / "s.db", SIGNER)
    store.migrate()
    worker = Worker(bus, Engine(), TENANT, store=store, idle_timeout=60, clock=lambda: now[0])
    drain(worker, bus)
    assert worker.close_idle() == 0
    now[0] += 61
    assert worker.close_idle() == 1 and not worker.runs
    with records(store) as rtx:
        row = rtx.get_run(TENANT, "default", doc.run_id)
        fids = rtx.list_findings(TENANT, "default", _findings(doc.run_id), 100)
    assert row is not None and row.status == "incomplete"
    assert "missing_telemetry.run_incomplete" in {f.rule_id for f in fids}
    store.close()


def _findings(run_id: str) -> Any:
    from sentrail.store.records import FindingFilter

    return FindingFilter(run_id=run_id)


def test_partitions_split_runs_between_workers() -> None:
    docs = example_runs()
    bus = MemoryBus()
    publish_all(bus, docs)
    engine = Engine()
    done: dict[int, list[str]] = {0: [], 1: []}
    workers = [
        Worker(
            bus,
            engine,
            TENANT,
            partition=k,
            partitions=2,
            on_result=lambda t, r, k=k: done[k].append(r.run_id),
        )  # type: ignore[misc]
        for k in (0, 1)
    ]
    for w in workers:
        drain(w, bus)
    assert not set(done[0]) & set(done[1])
    assert sorted(done[0] + done[1]) == sorted(decode_run(d).run_id for d in docs)
    for k, runs in done.items():
        for d in docs:
            run = decode_run(d)
            if run.run_id in runs:
                assert partition_of(run.agent_id, 2) == k
