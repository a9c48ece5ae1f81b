"""``open_bus(url)``: ``memory://`` (in process) or ``nats://host:port``."""

from __future__ import annotations

from sentrail.bus.base import Bus, BusError


async def open_bus(url: str) -> Bus:
    if url == "memory://":
        from sentrail.bus.memory import MemoryBus

        return MemoryBus()
    if url.startswith(("nats://", "tls://")):
        from sentrail.bus.nats import NatsBus

        return await NatsBus.connect(url)
    raise BusError("unknown bus URL (use memory:// or nats://HOST:PORT)", url.split("@")[-1])
