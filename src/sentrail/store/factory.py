"""``open_store(url)``: ``sqlite:///relative/path``, ``sqlite:////absolute/path``,
``postgresql://host:port/db`` (psycopg conninfo URL), ``memory://`` (a private in-memory
SQLite database)."""

from __future__ import annotations

from sentrail.evidence.note import Signer
from sentrail.store.base import StoreError
from sentrail.store.core import CHECKPOINT_EVERY, LogStore


def open_store(
    url: str,
    signer: Signer | None = None,
    *,
    checkpoint_every: int = CHECKPOINT_EVERY,
    schema: str | None = None,
) -> LogStore:
    """Open (not migrate) the store at ``url``."""
    if url.startswith("sqlite:///"):
        from sentrail.store.sqlite import SqliteStore

        path = url.removeprefix("sqlite:///")
        if not path:
            raise StoreError("the SQLite URL has no path", url)
        return SqliteStore(path, signer, checkpoint_every=checkpoint_every)
    if url.startswith(("postgresql://", "postgres://")):
        from sentrail.store.postgres import PostgresStore

        return PostgresStore(url, signer, schema=schema, checkpoint_every=checkpoint_every)
    if url == "memory://":
        from sentrail.store.sqlite import SqliteStore

        return SqliteStore(":memory:", signer, checkpoint_every=checkpoint_every)
    raise StoreError(
        "unknown database URL (use sqlite:///PATH, postgresql://HOST/DB or memory://)",
        url.split("@")[-1],
    )
