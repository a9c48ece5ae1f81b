"""The embedded backend: one SQLite file, WAL journal, ``synchronous=FULL``.

``path=":memory:"`` gives a private in-memory database (``memory://``; tests and demos).

A write is one ``BEGIN IMMEDIATE`` transaction (the database write lock is the tenant
lock); with WAL and ``synchronous=FULL`` the commit is on disk when ``append`` returns.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from sentrail.evidence.note import Signer
from sentrail.store.base import StoreError
from sentrail.store.core import CHECKPOINT_EVERY, LogStore, Tx
from sentrail.store.schema import apply_migrations
from sentrail.store.sql import SqlTx


class SqliteStore(LogStore):
    def __init__(
        self,
        path: str | Path,
        signer: Signer | None = None,
        *,
        checkpoint_every: int = CHECKPOINT_EVERY,
        clock: Callable[[], float] | None = None,
        seal_payloads: bool = True,
    ) -> None:
        super().__init__(
            signer, checkpoint_every=checkpoint_every, clock=clock, seal_payloads=seal_payloads
        )
        self.path = Path(path)
        in_memory = str(path) == ":memory:"
        try:
            if not in_memory:
                _create_private(self.path)
            self._conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=30
            )
            if not in_memory:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=FULL")
            # Erased keys and redacted payloads are overwritten on disk, not just unlinked.
            self._conn.execute("PRAGMA secure_delete=ON")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the SQLite store: {exc}", str(path)) from None
        self._lock = threading.RLock()

    @contextmanager
    def _tx(self, begin: str) -> Iterator[SqlTx]:
        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.execute(begin)
                yield SqlTx(cur)
                cur.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"SQLite: {exc}", str(self.path)) from exc
                raise
            finally:
                cur.close()

    def _write(self) -> AbstractContextManager[Tx]:
        return self._tx("BEGIN IMMEDIATE")

    def _read(self) -> AbstractContextManager[Tx]:
        return self._tx("BEGIN")

    def migrate(self) -> int:
        with self._tx("BEGIN IMMEDIATE") as tx:
            return apply_migrations(tx, "BLOB", "INTEGER")

    def _after_erasure(self) -> None:
        # secure_delete zeroed the old cells in the database pages; the WAL still holds
        # the pages as they were before the redaction until it is checkpointed.
        with self._lock:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite: {exc}", str(self.path)) from exc

    def _close(self) -> None:
        with self._lock:
            self._conn.close()


def _create_private(path: Path) -> None:
    """A new store is its owner's alone: the folder made for it 0700, the file 0600 (SQLite
    gives its ``-wal`` and ``-shm`` files the database's mode). Existing ones are left as
    they are."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return
    os.close(fd)
