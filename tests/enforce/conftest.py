"""Both store backends for the enforcement tests (PostgreSQL errors, never skips)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store.conftest import Backend, _postgres, _sqlite


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from _sqlite(tmp_path) if request.param == "sqlite" else _postgres()
