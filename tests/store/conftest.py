"""Store backends for the contract suite, each with a way to tamper with its rows.

PostgreSQL is real: the local server (``SENTRAIL_TEST_PG``, default
postgresql://127.0.0.1:5432/test). When it is unreachable these tests error; they never skip.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sentrail.evidence.note import Signer
from sentrail.store.core import LogStore
from sentrail.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from tests.store.s3_stub import Buckets

PG_URL = os.environ.get("SENTRAIL_TEST_PG", "postgresql://127.0.0.1:5432/test")
ORIGIN = "test.sentrail.local/log"
SIGNER = Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
COLS = (
    "tenant_id, app_id, run_id, event_id, kind, payload, payload_sha256, prev_hash, "
    "chain_hash, leaf_hash, received_at, sealed, view, leaf_version"
)


@dataclass
class Backend:
    name: str
    open: Callable[..., LogStore]  # open(checkpoint_every=...) -> a migrated store
    sql: Callable[[str, tuple[Any, ...]], None] | None  # run tampering SQL ("?" params)


class SqlTamper:
    """Direct edits of the rows, as an attacker with database access would make them."""

    def __init__(self, backend: Backend, store: LogStore) -> None:
        self.b = backend
        self.store = store

    def run(self, sql: str, params: tuple[Any, ...]) -> None:
        assert self.b.sql is not None
        self.b.sql(sql, params)

    def edit_digest(self, tenant: str, seq: int) -> None:
        self.run(
            "UPDATE events SET payload_sha256 = ?, payload = NULL WHERE tenant_id = ? AND seq = ?",
            (bytes(32), tenant, seq),
        )

    def delete(self, tenant: str, seq: int) -> None:
        self.run("DELETE FROM events WHERE tenant_id = ? AND seq = ?", (tenant, seq))

    def swap(self, tenant: str, a: int, b: int) -> None:
        for old, new in ((a, -1), (b, a), (-1, b)):
            self.run(
                "UPDATE events SET seq = ? WHERE tenant_id = ? AND seq = ?", (new, tenant, old)
            )

    def insert(self, tenant: str, at: int) -> None:
        """Shift seqs >= ``at`` up by one and put a copy of row ``at - 1`` at ``at``."""
        self.run(
            "UPDATE events SET seq = seq + 1000000 WHERE tenant_id = ? AND seq >= ?", (tenant, at)
        )
        self.run(
            "UPDATE events SET seq = seq - 999999 WHERE tenant_id = ? AND seq >= ?",
            (tenant, 1000000),
        )
        self.run(
            f"INSERT INTO events (seq, {COLS}) SELECT ?, tenant_id, app_id, run_id, 'forged', "
            "kind, payload, payload_sha256, prev_hash, chain_hash, leaf_hash, received_at, "
            "sealed, view, leaf_version FROM events WHERE tenant_id = ? AND seq = ?",
            (at, tenant, at - 1),
        )


def _migrated(store: LogStore) -> LogStore:
    store.migrate()
    return store


def _sqlite(tmp: Path) -> Iterator[Backend]:
    path = tmp / "store.db"

    def sql(stmt: str, params: tuple[Any, ...]) -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute(stmt, params)
        finally:
            conn.close()

    yield Backend("sqlite", lambda **kw: _migrated(SqliteStore(path, SIGNER, **kw)), sql)


def _postgres() -> Iterator[Backend]:
    import psycopg

    from sentrail.store.postgres import PostgresStore

    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = psycopg.connect(PG_URL, autocommit=True)  # fails (never skips) when down
    admin.execute(f"CREATE SCHEMA {schema}")
    opened: list[LogStore] = []

    def open_(**kw: Any) -> LogStore:
        store = _migrated(PostgresStore(PG_URL, SIGNER, schema=schema, **kw))
        opened.append(store)
        return store

    def sql(stmt: str, params: tuple[Any, ...]) -> None:
        admin.execute(f"SET search_path = {schema}")
        admin.execute(stmt.replace("?", "%s"), params)  # type: ignore[arg-type]

    try:
        yield Backend("postgres", open_, sql)
    finally:
        for store in opened:
            store.close()
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Both real backends: every contract test runs on each."""
    if request.param == "sqlite":
        yield from _sqlite(tmp_path)
    else:
        yield from _postgres()


durable_backend = backend


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """One moto S3 server on 127.0.0.1 for the session (each test has its own buckets)."""
    from tests.store.s3_stub import serve_s3

    with serve_s3() as endpoint:
        yield endpoint


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Buckets:
    """Two fresh buckets (object lock, none) and an AWS environment naming only them."""
    from tests.store.s3_stub import aws_env, make_buckets

    aws_env(monkeypatch, tmp_path, s3_endpoint)
    return make_buckets(s3_endpoint)
