"""Making a tenant's stream right after a NATS restart (scripted JetStream, no network):
JetStream may still be restoring it, so it is neither found nor creatable for a moment."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from nats.js.errors import BadRequestError, NotFoundError

from sentrail.bus.base import BusError
from sentrail.bus.nats import NatsBus


class RestoringJetStream:
    """Not found, and its subjects taken, for the first ``restoring`` looks; then there."""

    def __init__(self, restoring: int, err_code: int = 10065) -> None:
        self.restoring = restoring
        self.err_code = err_code
        self.looks = 0
        self.added = 0

    async def stream_info(self, name: str) -> Any:
        self.looks += 1
        if self.looks <= self.restoring:
            raise NotFoundError(code=404, err_code=10059, description="stream not found")
        return object()

    async def add_stream(self, config: Any) -> None:
        self.added += 1
        raise BadRequestError(code=400, err_code=self.err_code, description="taken")


class Nc:
    def __init__(self, js: RestoringJetStream) -> None:
        self.js = js

    def jetstream(self) -> RestoringJetStream:
        return self.js


def test_a_stream_being_restored_is_looked_for_again() -> None:
    js = RestoringJetStream(restoring=2)
    bus = NatsBus(Nc(js))
    assert asyncio.run(bus.ensure_stream("acme")).startswith("SENTRAIL_")
    assert (js.looks, js.added) == (3, 2)


def test_a_stream_that_never_appears_or_another_refusal_is_an_error() -> None:
    with pytest.raises(BusError, match="cannot create the JetStream stream"):
        asyncio.run(NatsBus(Nc(RestoringJetStream(restoring=99))).ensure_stream("acme"))
    other = RestoringJetStream(restoring=99, err_code=10052)  # an invalid configuration
    with pytest.raises(BusError):
        asyncio.run(NatsBus(Nc(other)).ensure_stream("acme"))
    assert other.added == 1  # not tried again
