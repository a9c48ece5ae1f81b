"""The in-process bus: per-tenant lists, durable acknowledgement floors, dedup by event id.

Everything lives in this process (nothing survives it). Acknowledgements are per message;
a durable's floor is the end of its longest acknowledged prefix, and a new ``consumer()``
for the same durable name resumes right after it — the NATS backend's semantics
(:mod:`sentrail.bus.base`), checked by one contract suite for both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from sentrail.bus.base import BusError, BusMessage


class _Stream:
    def __init__(self) -> None:
        self.messages: list[BusMessage] = []
        self.ids: dict[str, int] = {}
        self.floors: dict[str, int] = {}  # durable -> end of its acknowledged prefix
        self.acked: dict[str, set[int]] = {}  # durable -> acknowledged seqs above the floor
        self.deliveries: dict[tuple[str, int], int] = {}


class MemoryConsumer:
    def __init__(self, bus: MemoryBus, tenant: str, durable: str) -> None:
        self.bus = bus
        self.tenant = tenant
        self.durable = durable
        stream = bus.stream(tenant)
        self.position = stream.floors.setdefault(durable, 0)  # next index to deliver
        self.closed = False

    async def fetch(self, max_msgs: int, timeout: float) -> list[BusMessage]:
        if self.closed or self.bus.closed:
            raise BusError("the consumer is closed")
        stream = self.bus.stream(self.tenant)
        deadline = time.monotonic() + timeout
        async with self.bus.cond:
            while self.position >= len(stream.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                try:
                    await asyncio.wait_for(self.bus.cond.wait(), left)
                except TimeoutError:
                    return []
                if self.bus.closed:
                    raise BusError("the bus is closed")
            out = []
            for m in stream.messages[self.position : self.position + max_msgs]:
                key = (self.durable, m.seq)
                stream.deliveries[key] = stream.deliveries.get(key, 0) + 1
                out.append(
                    BusMessage(
                        m.tenant,
                        m.agent_id,
                        m.event_id,
                        m.data,
                        m.seq,
                        stream.deliveries[key],
                        m.published_at,
                    )
                )
            self.position += len(out)
            return out

    async def ack(self, msgs: Sequence[BusMessage]) -> None:
        if self.closed or self.bus.closed:
            raise BusError("the consumer is closed")
        stream = self.bus.stream(self.tenant)
        floor = stream.floors.get(self.durable, 0)
        above = stream.acked.setdefault(self.durable, set())
        above.update(m.seq for m in msgs if m.seq > floor)
        while floor + 1 in above:
            floor += 1
            above.discard(floor)
        stream.floors[self.durable] = floor

    async def close(self) -> None:
        self.closed = True


class MemoryBus:
    def __init__(self) -> None:
        self.streams: dict[str, _Stream] = {}
        self._cond: tuple[asyncio.AbstractEventLoop, asyncio.Condition] | None = None
        self.closed = False

    @property
    def cond(self) -> asyncio.Condition:
        """The condition of the running event loop (a bus may outlive a loop in tests)."""
        loop = asyncio.get_running_loop()
        if self._cond is None or self._cond[0] is not loop:
            self._cond = (loop, asyncio.Condition())
        return self._cond[1]

    def stream(self, tenant: str) -> _Stream:
        return self.streams.setdefault(tenant, _Stream())

    async def publish(
        self, tenant: str, agent_id: str, event_id: str, data: bytes
    ) -> tuple[int, bool]:
        if self.closed:
            raise BusError("the bus is closed")
        async with self.cond:
            stream = self.stream(tenant)
            seen = stream.ids.get(event_id)
            if seen is not None:
                return seen, True
            seq = len(stream.messages) + 1
            stream.messages.append(
                BusMessage(tenant, agent_id, event_id, bytes(data), seq, 0, time.time())
            )
            stream.ids[event_id] = seq
            self.cond.notify_all()
            return seq, False

    async def consumer(
        self, tenant: str, durable: str, *, ack_wait: float = 30.0
    ) -> MemoryConsumer:
        return MemoryConsumer(self, tenant, durable)

    async def close(self) -> None:
        self.closed = True
        async with self.cond:
            self.cond.notify_all()
