"""One contract for every bus backend (in-process and NATS JetStream)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sentrail.bus.base import BusError, BusMessage, subject_for, token, untoken
from tests.bus.conftest import BusFactory


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_publish_orders_and_dedups_by_event_id(make_bus: BusFactory, tenant: str) -> None:
    async def go() -> None:
        bus = await make_bus()
        seqs = [await bus.publish(tenant, "agent-1", f"e{i}", b"x%d" % i) for i in range(5)]
        assert [s for s, _ in seqs] == [1, 2, 3, 4, 5]
        assert not any(d for _, d in seqs)
        assert await bus.publish(tenant, "agent-1", "e2", b"other bytes") == (3, True)
        consumer = await bus.consumer(tenant, "c1")
        got = []
        while len(got) < 5:
            got += await consumer.fetch(10, 2.0)
        assert [m.seq for m in got] == [1, 2, 3, 4, 5]
        assert [m.event_id for m in got] == [f"e{i}" for i in range(5)]
        assert got[2].data == b"x2" and got[0].agent_id == "agent-1"
        assert all(m.published_at > 0 for m in got)
        assert await consumer.fetch(10, 0.3) == []
        await consumer.close()
        await bus.close()

    run(go())


def test_unacknowledged_messages_are_redelivered_to_the_durable(
    make_bus: BusFactory, tenant: str
) -> None:
    async def go() -> None:
        bus = await make_bus()
        for i in range(6):
            await bus.publish(tenant, "a", f"e{i}", b"%d" % i)
        first = await bus.consumer(tenant, "worker", ack_wait=1.0)
        got = []
        while len(got) < 6:
            got += await first.fetch(6, 2.0)
        await first.ack(got[:3])  # e0..e2 done; e3..e5 delivered, not acknowledged
        await first.close()
        second = await bus.consumer(tenant, "worker", ack_wait=1.0)
        again: list[BusMessage] = []
        for _ in range(30):  # at least once: each unacknowledged event comes again
            again += await second.fetch(10, 1.0)
            if {"e3", "e4", "e5"} <= {m.event_id for m in again}:
                break
        assert {m.event_id for m in again} == {"e3", "e4", "e5"}  # never e0..e2
        assert all(m.delivered >= 2 for m in again)
        await second.ack(again)
        await second.close()
        other = await bus.consumer(tenant, "another-durable")
        fresh = []
        while len(fresh) < 6:
            fresh += await other.fetch(10, 2.0)
        assert [m.seq for m in fresh] == [1, 2, 3, 4, 5, 6]  # durables are independent
        await other.close()
        await bus.close()

    run(go())


def test_hostile_ids_keep_the_subject_shape(make_bus: BusFactory, tenant: str) -> None:
    agent = "evil.agent.>*  x"
    assert subject_for(tenant, agent).count(".") == 3
    assert untoken(token(agent)) == agent and untoken(token("_xab")) == "_xab"
    with pytest.raises(BusError):
        untoken("_xzz")

    async def go() -> None:
        bus = await make_bus()
        await bus.publish(tenant, agent, "e1", b"{}")
        consumer = await bus.consumer(tenant, "c")
        (msg,) = await consumer.fetch(1, 5.0)
        assert msg.agent_id == agent
        await consumer.close()
        await bus.close()

    run(go())


async def _fetch_n(consumer: Any, n: int) -> list[BusMessage]:
    got: list[BusMessage] = []
    for _ in range(20):
        got += await consumer.fetch(n - len(got), 2.0)
        if len(got) >= n:
            break
    return got


def test_a_replacement_gets_what_its_predecessor_fetched_first_and_acks_only_its_own(
    make_bus: BusFactory, tenant: str
) -> None:
    """The live-path loss (issue 10): a consumer dies holding a fetched, unacknowledged
    batch; newer messages arrive; its replacement must get the dead one's batch at once,
    before the newer ones, and acknowledging newer messages must not acknowledge it."""

    async def go() -> None:
        bus = await make_bus()
        for i in range(6):
            await bus.publish(tenant, "a", f"e{i}", b"%d" % i)
        dead = await bus.consumer(tenant, "worker", ack_wait=30.0)
        got = await _fetch_n(dead, 6)
        await dead.ack(got[:3])  # stored e0..e2, then killed holding e3..e5
        await dead.close()
        for i in range(6, 8):
            await bus.publish(tenant, "a", f"e{i}", b"%d" % i)
        replacement = await bus.consumer(tenant, "worker", ack_wait=30.0)
        first = await replacement.fetch(10, 2.0)  # at once: no ack_wait to sit out
        assert [m.event_id for m in first][:3] == ["e3", "e4", "e5"]
        rest = first + await _fetch_n(replacement, 5 - len(first)) if len(first) < 5 else first
        assert [m.event_id for m in rest] == ["e3", "e4", "e5", "e6", "e7"]  # stream order
        await replacement.ack([m for m in rest if m.event_id in ("e6", "e7")])
        await replacement.close()
        third = await bus.consumer(tenant, "worker", ack_wait=30.0)
        again = await _fetch_n(third, 3)
        assert [m.event_id for m in again][:3] == ["e3", "e4", "e5"]  # never acknowledged
        await third.close()
        await bus.close()

    run(go())


def test_acknowledgements_are_exact_and_the_floor_is_the_acknowledged_prefix(
    make_bus: BusFactory, tenant: str
) -> None:
    async def go() -> None:
        bus = await make_bus()
        for i in range(5):
            await bus.publish(tenant, "a", f"e{i}", b"%d" % i)
        one = await bus.consumer(tenant, "d", ack_wait=30.0)
        got = await _fetch_n(one, 5)
        await one.ack([got[0], got[1], got[3]])  # e2 and e4 not acknowledged
        await one.close()
        two = await bus.consumer(tenant, "d", ack_wait=30.0)
        again = await _fetch_n(two, 3)
        # From the first unacknowledged on, in order; e3 (acknowledged above the floor)
        # may come again, e0 and e1 never do.
        assert [m.event_id for m in again] == ["e2", "e3", "e4"]
        await two.ack(again)
        await two.close()
        three = await bus.consumer(tenant, "d", ack_wait=30.0)
        assert await three.fetch(10, 0.5) == []
        await three.close()
        await bus.close()

    run(go())
