from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.alerts.helpers import FakeClock, Waits
from tests.alerts.stub_server import StubServer


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = StubServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def waits() -> Waits:
    return Waits()
