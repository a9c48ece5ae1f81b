"""Stop and restart the NATS server mid-stream: no step lost, none doubled.

A producer publishes (retrying with the same event id when the server is away) while a
worker consumes into a SQLite store; the server is stopped and started again in the
middle. Afterwards every event is stored exactly once, every run is analysed, and every
finding was emitted exactly once. Needs the local nats-server (JetStream, file storage
in /var/lib/nats-server) and the right to stop and start it; it fails, never skips.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from pathlib import Path

import msgspec

from sentrail.bus.base import BusError
from sentrail.bus.nats import NatsBus
from sentrail.engine.engine import Engine
from sentrail.engine.fold import fold_events
from sentrail.model.decode import decode_run
from sentrail.model.events import events_of
from sentrail.runtime.compose import listener_pipeline
from sentrail.runtime.pipeline import RunUpdate
from sentrail.runtime.worker import Worker
from sentrail.store.sqlite import SqliteStore
from tests.bus.conftest import NATS_URL
from tests.store.conftest import SIGNER

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "traces"
START = [
    "start-stop-daemon",
    "--start",
    "--oknodo",
    "--background",
    "--exec",
    "/usr/sbin/nats-server",
    "--",
    "-a",
    "127.0.0.1",
    "-p",
    "4222",
    "-js",
    "-sd",
    "/var/lib/nats-server",
    "-l",
    "/var/log/nats-server.log",
]
STOP = [
    "start-stop-daemon",
    "--stop",
    "--oknodo",
    "--retry",
    "10",
    "--exec",
    "/usr/sbin/nats-server",
]


def _events(copies: int) -> list[tuple[str, str, bytes]]:
    out = []
    docs = [p.read_bytes() for p in sorted(EXAMPLES.glob("*.json")) if p.name != "truncated.json"]
    for c in range(copies):
        for d in docs:
            run = decode_run(d)
            run.run_id = f"{run.run_id}-c{c}"
            for i, ev in enumerate(events_of(run)):
                ev.run_id = run.run_id  # type: ignore[misc]
                out.append((run.agent_id, f"{run.run_id}/{i}", msgspec.json.encode(ev)))
    return out


async def _publish(bus: NatsBus, tenant: str, events: list[tuple[str, str, bytes]]) -> int:
    retries = 0
    for agent, eid, data in events:
        while True:
            try:
                await bus.publish(tenant, agent, eid, data)
                break
            except BusError:
                retries += 1
                await asyncio.sleep(0.2)
    return retries


def _wait_nats(up: bool) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", 4222), timeout=1).close()
            if up:
                return
        except OSError:
            if not up:
                return
        time.sleep(0.1)
    raise AssertionError(f"nats-server did not come {'up' if up else 'down'}")


def test_restarting_nats_mid_stream_loses_and_doubles_nothing(tmp_path: Path) -> None:
    tenant = f"restart-{uuid.uuid4().hex[:10]}"
    events = _events(copies=6)
    engine = Engine()
    runs: dict[str, list[bytes]] = {}
    for _, eid, data in events:
        runs.setdefault(eid.rsplit("/", 1)[0], []).append(data)
    expected = _expected(engine, runs)
    store = SqliteStore(tmp_path / "s.db", SIGNER)
    store.migrate()
    emitted: list[str] = []

    def sink(u: RunUpdate) -> None:
        emitted.extend(f.id for f in u.findings)

    async def go() -> int:
        pub_bus = await NatsBus.connect(NATS_URL)
        sub_bus = await NatsBus.connect(NATS_URL)
        worker = Worker(
            sub_bus, engine, tenant, store=store, pipeline=listener_pipeline(sink), batch=64
        )
        stop = asyncio.Event()
        consumer_task = asyncio.create_task(worker.run(stop, poll=0.2))
        half = len(events) // 2
        retries = await _publish(pub_bus, tenant, events[:half])
        await asyncio.to_thread(subprocess.run, STOP, check=True)
        await asyncio.to_thread(_wait_nats, False)
        restart = asyncio.create_task(_restart_later())
        retries += await _publish(pub_bus, tenant, events[half:])
        await restart
        deadline = time.monotonic() + 60
        while worker.stats.events < len(events) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        stop.set()
        await consumer_task
        await pub_bus.delete_stream(tenant)
        await pub_bus.close()
        await sub_bus.close()
        return retries

    async def _restart_later() -> None:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(subprocess.run, START, check=True)
        await asyncio.to_thread(_wait_nats, True)

    before = _nats_pid()
    try:
        asyncio.run(go())
    finally:
        subprocess.run(START, check=True)
        _wait_nats(True)
    assert _nats_pid() != before  # the server really was restarted
    assert len(store.leaf_hashes(tenant)) == len(events)  # every event once
    assert sorted(emitted) == expected  # every finding once
    store.close()


def _nats_pid() -> str:
    return subprocess.run(["pidof", "nats-server"], capture_output=True, text=True).stdout.strip()


def _expected(engine: Engine, runs: dict[str, list[bytes]]) -> list[str]:
    from sentrail.model.decode import decode_event

    out = []
    for datas in runs.values():
        (result,) = fold_events(engine, [decode_event(d) for d in datas])
        out += [f.id for f in result.findings]
    return sorted(out)
