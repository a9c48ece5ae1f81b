"""The scale-out backend: PostgreSQL through psycopg 3 and a connection pool.

Writers of one tenant are serialised by a transaction-scoped advisory lock on the tenant;
commits are durable with the server's default ``synchronous_commit = on``. ``schema``
(optional) sets the ``search_path`` of every pooled connection.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from sentrail.evidence.note import Signer
from sentrail.store.base import Prior, RunKey, StoreError
from sentrail.store.core import CHECKPOINT_EVERY, LogStore, Tx
from sentrail.store.schema import apply_migrations
from sentrail.store.sql import SqlTx, _bytes, by_app, prior, run_key

try:
    import psycopg
    from psycopg_pool import ConnectionPool
except ImportError as _exc:  # pragma: no cover - depends on the installed extras
    raise StoreError("PostgreSQL needs the extra: pip install 'sentrail[postgres]'") from _exc

_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")
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
        kwargs: dict[str, object] = {}
        if schema is not None:
            if not _SCHEMA.fullmatch(schema):
                raise StoreError(f"not a plain schema name: {schema!r}")
            kwargs["options"] = f"-c search_path={schema}"
        self.schema = schema
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
