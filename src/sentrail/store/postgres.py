"""The scale-out backend: PostgreSQL through psycopg 3 and a connection pool.

Writers of one tenant are serialised by a transaction-scoped advisory lock on the tenant;
commits are durable with the server's default ``synchronous_commit = on``. ``schema``
(optional) sets the ``search_path`` of every pooled connection.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from sentrail.evidence.note import Signer
from sentrail.store.base import Prior, RunKey, StoreError, UnstorableValue
from sentrail.store.core import CHECKPOINT_EVERY, LogStore, Tx
from sentrail.store.schema import apply_migrations
from sentrail.store.sql import SqlTx, _bytes, by_app, prior, run_key

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
    from psycopg_pool import ConnectionPool
except ImportError as _exc:  # pragma: no cover - depends on the installed extras
    raise StoreError("PostgreSQL needs the extra: pip install 'sentrail[postgres]'") from _exc

_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")
CONNECT_TIMEOUT_S = 5  # the first connection's; libpq counts whole seconds (2 at least)
_MIGRATION_LOCK = 0x5E47A11  # advisory lock key for schema migrations


class PgTx(SqlTx):
    """Batched look-ups (one round trip each) and the tenant advisory lock."""

    def lock_tenant(self, tenant: str) -> None:
        self.all("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (tenant,))

    def find_events(
        self, tenant: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], Prior]:
        out: dict[tuple[str, str], Prior] = {}
        for app, event_ids in by_app(keys).items():
            rows = self.all(
                "SELECT event_id, seq, run_id, kind, payload_sha256 FROM events "
                "WHERE tenant_id = ? AND app_id = ? AND event_id = ANY(?)",
                (tenant, app, event_ids),
            )
            for e, s, r, k, d in rows:
                out[(app, str(e))] = prior(s, r, k, d)
        return out

    def run_heads(
        self, tenant: str, runs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], bytes]:
        out: dict[tuple[str, str], bytes] = {}
        for app, run_ids in by_app(runs).items():
            rows = self.all(
                "SELECT DISTINCT ON (run_id) run_id, seq, chain_hash FROM events "
                "WHERE tenant_id = ? AND app_id = ? AND run_id = ANY(?) "
                "ORDER BY run_id, seq DESC",
                (tenant, app, run_ids),
            )
            for r, s, h in rows:
                out[(app, str(r))] = _bytes(h, s, "chain_hash")
        return out

    def run_keys(
        self, tenant: str, runs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], RunKey]:
        out: dict[tuple[str, str], RunKey] = {}
        for app, run_ids in by_app(runs).items():
            rows = self.all(
                "SELECT run_id, dek, erased_at FROM run_keys "
                "WHERE tenant_id = ? AND app_id = ? AND run_id = ANY(?)",
                (tenant, app, run_ids),
            )
            for r, d, e in rows:
                out[(app, str(r))] = run_key(d, e, f"run {r!r}")
        return out


def _probe(conninfo: str, kwargs: dict[str, str | int]) -> dict[str, str | int]:
    """Connect once, directly and with a short timeout, before the pool starts.

    A pool retries an unreachable server in the background and reports each attempt;
    a user would wait ten seconds for four raw errors. One direct connection fails at
    once with one error that names the server. Returns the connect timeout for the pool
    when the URL sets none.
    """
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.Error as exc:
        raise StoreError(f"not a PostgreSQL URL: {_first_line(exc)}") from None
    host = str(params.get("host") or os.environ.get("PGHOST") or "localhost")
    port = str(params.get("port") or os.environ.get("PGPORT") or 5432)
    where = f"{host}:{port}" + (f" (database {params['dbname']})" if params.get("dbname") else "")
    extra: dict[str, str | int] = {}
    if not params.get("connect_timeout") and not os.environ.get("PGCONNECT_TIMEOUT"):
        extra["connect_timeout"] = CONNECT_TIMEOUT_S
    try:
        psycopg.connect(make_conninfo(conninfo, **kwargs, **extra)).close()
    except psycopg.Error as exc:
        reason = _first_line(exc).rsplit("failed: ", 1)[-1]  # libpq repeats the address
        raise StoreError(f"cannot connect to PostgreSQL at {where}: {reason}") from None
    return extra


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class PostgresStore(LogStore):
    def __init__(
        self,
        conninfo: str,
        signer: Signer | None = None,
        *,
        schema: str | None = None,
        checkpoint_every: int = CHECKPOINT_EVERY,
        clock: Callable[[], float] | None = None,
        max_size: int = 4,
        seal_payloads: bool = True,
    ) -> None:
        super().__init__(
            signer, checkpoint_every=checkpoint_every, clock=clock, seal_payloads=seal_payloads
        )
        kwargs: dict[str, str | int] = {}
        if schema is not None:
            if not _SCHEMA.fullmatch(schema):
                raise StoreError(f"not a plain schema name: {schema!r}")
            kwargs["options"] = f"-c search_path={schema}"
        self.schema = schema
        kwargs.update(_probe(conninfo, kwargs))
        try:
            self._pool: ConnectionPool[psycopg.Connection[tuple[object, ...]]] = ConnectionPool(
                conninfo, min_size=1, max_size=max_size, kwargs=kwargs, open=True, timeout=10
            )
            self._pool.wait(timeout=10)
        except (psycopg.Error, Exception) as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from None

    @contextmanager
    def _tx(self) -> Iterator[PgTx]:
        try:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                yield PgTx(cur, "%s")
        except psycopg.DataError as exc:  # the values sent, not the database: 4xx
            raise UnstorableValue(f"the store cannot hold a value of this request: {exc}") from exc
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc

    def _write(self) -> AbstractContextManager[Tx]:
        return self._tx()

    def _read(self) -> AbstractContextManager[Tx]:
        return self._tx()

    def migrate(self) -> int:
        with self._tx() as tx:
            if self.schema is not None:
                tx.cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            tx.all("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
            return apply_migrations(tx, "BYTEA", "BIGINT")

    def _close(self) -> None:
        self._pool.close()
