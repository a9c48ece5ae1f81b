"""Stream workers: streaming equals batch, resume after a worker dies, idle runs, partitions."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings

from sentrail.bus.memory import MemoryBus
from sentrail.engine.engine import Engine
from sentrail.model.decode import decode_run
from sentrail.model.events import events_of
from sentrail.model.finding import Finding, RunResult
from sentrail.runtime.compose import listener_pipeline
from sentrail.runtime.ingest import event_kind as ev_kind
from sentrail.runtime.pipeline import RunUpdate
from sentrail.runtime.worker import Worker, partition_of
from sentrail.store.base import NewEvent
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
                await consumer.ack(msgs)
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

    def on_update(u: RunUpdate) -> None:
        if u.result is not None:
            results[u.run_id] = u.result

    worker = Worker(bus, engine, TENANT, pipeline=listener_pipeline(on_update))
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

    def on_update(u: RunUpdate) -> None:
        seen.extend(u.findings)
        if u.result is not None:
            results.append(u.result)

    worker = Worker(bus, engine, TENANT, pipeline=listener_pipeline(on_update))
    drain(worker, bus)
    batch = engine.analyze(decode_run(data))
    (streamed,) = results
    assert ids(streamed.findings) == ids(batch.findings)
    assert ids(seen) == ids(batch.findings)  # every finding emitted once, as it fired


class Killed(Exception):
    """Stands for kill -9 at a fault point: the process's memory is gone, nothing after
    the point happens (no notification, no acknowledgement)."""


def kill_at(point: str, n: int) -> Any:
    seen = [0]

    def fault(at: str) -> None:
        if at == point:
            seen[0] += 1
            if seen[0] == n:
                raise Killed(point)

    return fault


def drain_until_killed(worker: Worker, bus: MemoryBus) -> None:
    """Like ``drain``, with the worker's own fault points: "fetched" before processing."""

    async def go() -> None:
        consumer = await bus.consumer(TENANT, worker.durable)
        while msgs := await consumer.fetch(worker.batch, 0.05):
            worker.fault("fetched")
            worker.process(msgs)
            await consumer.ack(msgs)

    with pytest.raises(Killed):
        asyncio.run(go())


@pytest.mark.parametrize("point", ["fetched", "committed"])
@pytest.mark.parametrize("nth", [3, 6])
def test_a_worker_killed_after_a_fetch_or_its_commit_is_replaced_with_no_lost_or_doubled_finding(
    tmp_path: Path, point: str, nth: int
) -> None:
    docs = example_runs()
    engine = Engine()
    expected = sorted(f.id for d in docs for f in engine.analyze(decode_run(d)).findings)
    bus = MemoryBus()
    total = publish_all(bus, docs)
    emitted: list[str] = []
    store = SqliteStore(tmp_path / "s.db", SIGNER)
    store.migrate()

    def sink(u: RunUpdate) -> None:
        emitted.extend(f.id for f in u.findings)

    first = Worker(
        bus,
        engine,
        TENANT,
        store=store,
        pipeline=listener_pipeline(sink),
        batch=7,
        fault=kill_at(point, nth),
    )
    drain_until_killed(first, bus)
    # A replacement (a new process: no memory) gets what was not acknowledged, first.
    second = Worker(bus, engine, TENANT, store=store, pipeline=listener_pipeline(sink), batch=5)
    second.recover()
    drain(second, bus)
    # The killed batch comes again first: as duplicates when it was stored.
    assert second.stats.duplicates == (7 if point == "committed" else 0)
    assert sorted(emitted) == expected  # every finding notified once, after it was stored
    with records(store) as rtx:
        stored = sorted(
            fid for d in docs for fid in rtx.finding_ids(TENANT, "default", decode_run(d).run_id)
        )
        listed = {r.run_id for r in rtx.list_runs(TENANT, "default", _all(), 100)}
    assert stored == expected
    assert listed == {decode_run(d).run_id for d in docs}
    assert len(store.leaf_hashes(TENANT)) == total  # every event stored once
    store.close()


def test_findings_notified_before_a_kill_are_notified_again_only_for_unacknowledged_events(
    tmp_path: Path,
) -> None:
    """Killed after notifying but before acknowledging: at least once. What comes again
    is exactly what was not acknowledged, so only those events' findings repeat."""
    docs = example_runs()
    engine = Engine()
    expected = sorted(f.id for d in docs for f in engine.analyze(decode_run(d)).findings)
    bus = MemoryBus()
    total = publish_all(bus, docs)
    emitted: list[str] = []
    store = SqliteStore(tmp_path / "s.db", SIGNER)
    store.migrate()

    def sink(u: RunUpdate) -> None:
        emitted.extend(f.id for f in u.findings)

    sizes = [len(events_of(decode_run(d))) for d in docs]
    acked = sum(sizes[:2]) + sizes[2] // 2
    cut = sum(sizes[:5]) + sizes[5] // 2
    first = Worker(bus, engine, TENANT, store=store, pipeline=listener_pipeline(sink), batch=7)
    drain(first, bus, limit=cut, ack=False)
    asyncio.run(_ack_first(bus, first.durable, acked))
    once = set(emitted)
    second = Worker(bus, engine, TENANT, store=store, pipeline=listener_pipeline(sink), batch=5)
    drain(second, bus)
    assert second.stats.duplicates == cut - acked
    assert sorted(set(emitted)) == expected  # none lost
    again = [f for f in emitted if emitted.count(f) > 1]
    assert again and set(again) <= once  # repeats only of what was notified, unacknowledged
    assert len(store.leaf_hashes(TENANT)) == total
    store.close()


async def _ack_first(bus: MemoryBus, durable: str, n: int) -> None:
    consumer = await bus.consumer(TENANT, durable)
    msgs = await consumer.fetch(n, 0.1)
    await consumer.ack(msgs)


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
            pipeline=listener_pipeline(
                lambda u, k=k: done[k].append(u.run_id) if u.result is not None else None  # type: ignore[misc]
            ),
        )
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


def test_a_starting_worker_refolds_runs_that_were_stored_but_never_indexed(
    tmp_path: Path,
) -> None:
    """What the cumulative-acknowledgement defect left behind: runs in the log with no
    index row. A starting worker folds them again, indexes the completed ones, stores and
    notifies their findings, and holds the open ones so the idle timeout closes them."""
    store = SqliteStore(tmp_path / "s.db", SIGNER)
    store.migrate()
    docs = example_runs()
    done, open_ = decode_run(docs[0]), decode_run(docs[1])
    for run, events in ((done, events_of(done)), (open_, events_of(open_)[:-1])):
        store.append(
            [
                NewEvent(
                    TENANT,
                    "default",
                    run.run_id,
                    f"{run.run_id}/{i}",
                    ev_kind(ev),
                    msgspec.json.encode(ev),
                )
                for i, ev in enumerate(events)
            ]
        )
    engine = Engine()
    notified: list[str] = []
    now = [1000.0]
    worker = Worker(
        MemoryBus(),
        engine,
        TENANT,
        store=store,
        pipeline=listener_pipeline(lambda u: notified.extend(f.id for f in u.findings)),
        idle_timeout=60,
        clock=lambda: now[0],
    )
    assert worker.recover() == 2
    expected_done = sorted(f.id for f in engine.analyze(done).findings)
    with records(store) as rtx:
        row = rtx.get_run(TENANT, "default", done.run_id)
        assert row is not None and row.status != "running"
        assert sorted(rtx.finding_ids(TENANT, "default", done.run_id)) == expected_done
        assert rtx.get_run(TENANT, "default", open_.run_id) is None  # still open
    assert set(expected_done) <= set(notified)
    assert list(worker.runs) == [open_.run_id]
    now[0] += 61
    assert worker.close_idle() == 1
    with records(store) as rtx:
        row = rtx.get_run(TENANT, "default", open_.run_id)
    assert row is not None and row.status == "incomplete"
    assert worker.recover() == 0  # nothing left behind
    store.close()


def test_recovery_checks_the_index_of_the_workers_own_app(tmp_path: Path) -> None:
    """Events and index rows are keyed by (tenant, app, run): a run of the worker's app
    that is in the log without an index row there is folded again, even when another app
    indexed a run with the same id; another app's unindexed run is not this worker's."""
    store = SqliteStore(tmp_path / "s.db", SIGNER)
    store.migrate()
    run = decode_run(example_runs()[0])

    def append(app: str) -> None:
        store.append(
            [
                NewEvent(
                    TENANT,
                    app,
                    run.run_id,
                    f"{run.run_id}/{i}",
                    ev_kind(ev),
                    msgspec.json.encode(ev),
                )
                for i, ev in enumerate(events_of(run))
            ]
        )

    append("other")
    Worker(MemoryBus(), Engine(), TENANT, store=store, app_id="other").recover()  # indexed there
    append("mine")
    mine = Worker(MemoryBus(), Engine(), TENANT, store=store, app_id="mine")
    assert mine.recover() == 1
    with records(store) as rtx:
        row = rtx.get_run(TENANT, "mine", run.run_id)
        assert row is not None and row.status != "running"
    assert mine.recover() == 0
    append("third")  # stored for an app this worker does not serve
    assert mine.recover() == 0
    store.close()


def test_a_finding_is_stored_before_any_notifier_sees_it(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db", SIGNER)
    store.migrate()
    bus = MemoryBus()
    publish_all(bus, example_runs())
    checked: list[str] = []

    def notifier(u: RunUpdate) -> None:
        if not u.findings:
            return
        with records(store) as rtx:
            stored = rtx.finding_ids(TENANT, "default", u.run_id)
        for f in u.findings:
            assert f.id in stored, f"{f.id} notified before it was stored"
            checked.append(f.id)

    worker = Worker(bus, Engine(), TENANT, store=store, pipeline=listener_pipeline(notifier))
    drain(worker, bus)
    assert checked
    store.close()


def test_when_the_evidence_cannot_be_written_nothing_is_notified_or_acknowledged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentrail.runtime.store_writer import StoreWriter
    from sentrail.store.base import StoreError

    store = SqliteStore(tmp_path / "s.db", SIGNER)
    store.migrate()
    bus = MemoryBus()
    total = publish_all(bus, example_runs())
    notified: list[RunUpdate] = []
    worker = Worker(bus, Engine(), TENANT, store=store, pipeline=listener_pipeline(notified.append))

    def broken(*args: object, **kw: object) -> None:
        raise StoreError("disk full (injected)")

    monkeypatch.setattr(StoreWriter, "write", broken)
    with pytest.raises(StoreError):
        drain(worker, bus)
    assert notified == [] and store.leaf_hashes(TENANT) == []  # events went with the rows
    monkeypatch.undo()
    again = Worker(bus, Engine(), TENANT, store=store, pipeline=listener_pipeline(notified.append))
    assert drain(again, bus) == total  # nothing was acknowledged: it all comes again
    assert any(u.findings for u in notified)
    store.close()


def test_the_worker_pipeline_stores_then_alerts_prints_and_forwards_each_run(
    tmp_path: Path,
) -> None:
    import io

    from sentrail.alerts.policy import parse_alert_policy
    from sentrail.alerts.router import AlertRouter
    from sentrail.alerts.sinks import MemorySink
    from sentrail.model.finding import Severity
    from sentrail.runtime.compose import worker_pipeline
    from sentrail.siem.formats import ExportFormat
    from sentrail.siem.forward import Forwarder, StreamSink

    store = SqliteStore(tmp_path / "s.db", SIGNER)
    store.migrate()
    bus = MemoryBus()
    docs = example_runs()
    publish_all(bus, docs)
    sink = MemorySink()
    router = AlertRouter(parse_alert_policy(b"version: 1\n"), [sink])
    printed, siem = io.StringIO(), io.BytesIO()
    pipeline = worker_pipeline(
        store,
        router=router,
        print_from=Severity.CRITICAL,
        out=printed,
        siem=Forwarder(ExportFormat.ocsf, StreamSink(siem)),
    )
    worker = Worker(bus, Engine(), TENANT, store=store, pipeline=pipeline)
    drain(worker, bus)
    assert router.wait_idle(10)
    pipeline.shutdown()
    critical = [f for d in docs for f in Engine().analyze(decode_run(d)).findings]
    critical = [f for f in critical if f.severity is Severity.CRITICAL]
    lines = printed.getvalue().splitlines()
    assert sorted(line.rsplit("(", 1)[1].rstrip(")") for line in lines) == sorted(
        f.id for f in critical
    )
    assert sink.messages  # the critical ones paged
    records = [json.loads(line) for line in siem.getvalue().splitlines()]
    finding_ids = {r.get("finding_info", {}).get("uid") for r in records}
    assert {f.id for f in critical} <= finding_ids
    store.close()
