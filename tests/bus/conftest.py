"""Both bus backends. NATS is real (``SENTRAIL_TEST_NATS``, default nats://127.0.0.1:4222):
when it is down these tests error; they never skip (``.ci/run`` starts it)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from sentrail.bus.base import Bus
from sentrail.bus.memory import MemoryBus

NATS_URL = os.environ.get("SENTRAIL_TEST_NATS", "nats://127.0.0.1:4222")

BusFactory = Callable[[], Awaitable[Bus]]


async def _nats() -> Bus:
    from sentrail.bus.nats import NatsBus

    return await NatsBus.connect(NATS_URL)


@pytest.fixture(params=["memory", "nats"])
def make_bus(request: pytest.FixtureRequest) -> Iterator[BusFactory]:
    """Opens buses of one backend; every test gets a fresh tenant (``tenant`` fixture)."""
    if request.param == "memory":
        shared = MemoryBus()

        async def memory() -> Bus:
            return shared

        yield memory
    else:
        yield _nats


@pytest.fixture
def tenant(make_bus: BusFactory) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:12]}"
    yield name

    async def cleanup() -> None:
        bus = await make_bus()
        delete: Any = getattr(bus, "delete_stream", None)
        if delete is not None:
            await delete(name)
            await bus.close()

    asyncio.run(cleanup())
