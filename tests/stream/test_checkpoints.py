"""Checkpoints on the 1-second clock, for the worker as for the service (issue 10, item 0):
what a process stored is covered when it stops, and a process that starts covers every
tenant a killed predecessor left ahead of its latest checkpoint."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import msgspec

from sentrail.bus.memory import MemoryBus
from sentrail.engine.engine import Engine
from sentrail.model.decode import decode_run
from sentrail.model.events import events_of
from sentrail.runtime.worker import Worker
from sentrail.store.base import NewEvent
from sentrail.store.checkpoint_timer import CheckpointTimer
from sentrail.store.sqlite import SqliteStore
from tests.conftest import EXAMPLES
from tests.store.conftest import SIGNER


def _store(tmp_path: Path) -> SqliteStore:
    store = SqliteStore(tmp_path / "s.db", SIGNER, checkpoint_every=10_000)
    store.migrate()
    return store


def test_a_starting_timer_checkpoints_every_tenant_whose_log_is_ahead(tmp_path: Path) -> None:
    store = _store(tmp_path)
    for tenant in ("quiet", "busy"):
        store.append(
            [NewEvent(tenant, "app", "r", f"{tenant}-{i}", "note", b"x") for i in range(5)]
        )
    store.checkpoint("busy")
    store.append([NewEvent("busy", "app", "r", "busy-late", "note", b"y")])
    assert store.latest_checkpoint("quiet") is None  # a killed process signed nothing
    timer = CheckpointTimer(store, interval=60)
    timer.start()  # a restarted service or worker
    try:
        for tenant in ("quiet", "busy"):
            latest = store.latest_checkpoint(tenant)
            assert latest is not None and latest.size == len(store.leaf_hashes(tenant))
    finally:
        timer.stop()
        store.close()


def test_what_a_worker_stored_is_covered_by_a_checkpoint_when_it_stops(tmp_path: Path) -> None:
    store = _store(tmp_path)
    timer = CheckpointTimer(store, interval=60)  # only the stop's tick signs here
    bus = MemoryBus()
    run = decode_run((EXAMPLES / "traces" / "prod-delete.json").read_bytes())
    worker = Worker(bus, Engine(), "acme", store=store, on_stored=timer.touch)

    async def go() -> None:
        for i, ev in enumerate(events_of(run)):
            await bus.publish("acme", run.agent_id, f"e{i}", msgspec.json.encode(ev))
        consumer = await bus.consumer("acme", worker.durable)
        msgs = await consumer.fetch(100, 0.1)
        worker.process(msgs)
        await consumer.ack(msgs)

    timer.start()
    asyncio.run(go())
    assert store.latest_checkpoint("acme") is None  # within the second: not yet
    timer.stop()
    latest = store.latest_checkpoint("acme")
    assert latest is not None and latest.size == len(events_of(run))
    store.close()


def test_a_store_has_one_checkpoint_timer_whoever_starts_it(tmp_path: Path) -> None:
    """The service, the worker and automatic signing share the store's one timer: a
    process that serves (and so signs automatically) runs one checkpoint thread."""
    from sentrail.service.app import create_app

    def timers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "checkpoints"}

    before = timers()  # another test's timer may still be on its way out
    store = _store(tmp_path)
    auto = store.sign_automatically(60)
    assert auto is not None and auto is store.checkpoint_timer()
    app = create_app(store, Engine(), SIGNER)
    assert app.state.services.timer is auto
    auto.start()  # the service's start: a catch-up, no second thread
    assert len(timers() - before) == 1
    store.close()
    assert not auto.running


def test_signing_automatically_never_signs_a_tail_it_did_not_write(tmp_path: Path) -> None:
    """A command that opens the store with the key (``log verify`` among them) must not
    sign the tail another process left uncovered: that is what verification looks for.
    Only a serving process's start catches up."""
    first = _store(tmp_path)
    first.append([NewEvent("t", "app", "r", f"e{i}", "note", b"x") for i in range(3)])
    # a killed process: no last tick (the first store is never closed)
    second = SqliteStore(tmp_path / "s.db", SIGNER, checkpoint_every=10_000)
    timer = second.sign_automatically(60)
    assert timer is not None
    assert second.latest_checkpoint("t") is None
    timer.tick()  # what a tick signs: this process's appends only
    assert second.latest_checkpoint("t") is None
    timer.start()  # a service or worker starting
    latest = second.latest_checkpoint("t")
    assert latest is not None and latest.size == 3
    second.close()
