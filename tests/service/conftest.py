"""The service under test, on both store backends, with keys for two tenants."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from argon2 import PasswordHasher

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from sentrail.alerts.router import AlertRouter
from sentrail.engine.engine import Engine
from sentrail.service.app import ServiceConfig, create_app
from sentrail.service.auth import create_key
from sentrail.service.ratelimit import FailureLimiter, Rate
from sentrail.store.core import LogStore
from tests.store.conftest import SIGNER, Backend, _postgres, _sqlite

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ALL_SCOPES = "ingest,read,triage,metrics,decide,approve,contain"
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # still argon2id


def example(name: str) -> bytes:
    return (EXAMPLES / "traces" / name).read_bytes()


@dataclass
class Api:
    client: TestClient
    store: LogStore
    keys: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


def make_api(
    backend: Backend,
    alerts: AlertRouter | None = None,
    engine: Engine | None = None,
    **config: object,
) -> Iterator[Api]:
    store = backend.open()
    app = create_app(
        store,
        engine or Engine(),
        SIGNER,
        ServiceConfig(**config),  # type: ignore[arg-type]
        alerts=alerts,
    )
    # Keys here are cheap to hash (CHEAP), so is the dummy that unknown ids are checked
    # against; the matrices make many failed checks from one client: no limit on them.
    keys = app.state.services.keys
    keys.hasher = CHEAP
    keys.limiter = FailureLimiter(Rate(1e9, 1e9), Rate(1e9, 1e9))
    api = Api(TestClient(app), store)
    for name, tenant, app_id, scopes in (
        ("a", "tenant-a", "app1", ALL_SCOPES),
        ("a_all", "tenant-a", "*", ALL_SCOPES),
        ("a_app2", "tenant-a", "app2", ALL_SCOPES),
        ("b", "tenant-b", "app1", ALL_SCOPES),
    ):
        api.keys[name], _ = create_key(store, tenant, app_id, scopes, hasher=CHEAP)
    for scope in ALL_SCOPES.split(","):
        api.keys[f"a_{scope}"], _ = create_key(store, "tenant-a", "app1", scope, hasher=CHEAP)
    with api.client:
        yield api


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Both real store backends (PostgreSQL errors, never skips, when it is down)."""
    yield from _sqlite(tmp_path) if request.param == "sqlite" else _postgres()


@pytest.fixture
def api(backend: Backend) -> Iterator[Api]:
    yield from make_api(backend, max_body_bytes=1 << 20)
