"""An in-memory backend for tests: the same shared logic, rows in dicts.

Writes are staged and applied when the transaction ends without an exception, so a
failed append leaves nothing behind, as in the database backends. ``rows`` is public so
that tests can tamper with the log directly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from sentrail.evidence.note import Signer
from sentrail.store.base import Checkpoint, StoredEvent, StoreError
from sentrail.store.core import CHECKPOINT_EVERY, LogStore, Tx


class MemoryTx:
    def __init__(self, store: MemoryStore) -> None:
        self.s = store
        self.new_events: list[StoredEvent] = []
        self.new_checkpoints: list[Checkpoint] = []
        self.new_results: dict[tuple[str, str], bytes] = {}

    def commit(self) -> None:
        for e in self.new_events:
            rows = self.s.rows.setdefault(e.tenant_id, {})
            if e.seq in rows or any(r.event_id == e.event_id for r in rows.values()):
                raise StoreError("duplicate key", f"seq {e.seq}")
            rows[e.seq] = e
        for c in self.new_checkpoints:
            self.s.checkpoint_rows.setdefault(c.tenant_id, {}).setdefault(c.size, c)
        self.s.results.update(self.new_results)

    def _sorted(self, tenant: str) -> list[StoredEvent]:
        return [v for _, v in sorted(self.s.rows.get(tenant, {}).items())]

    def lock_tenant(self, tenant: str) -> None:
        """The store's lock is held for the whole transaction."""

    def log_size(self, tenant: str) -> int:
        return max(self.s.rows.get(tenant, {}), default=-1) + 1

    def find_events(self, tenant: str, event_ids: Sequence[str]) -> dict[str, int]:
        wanted = set(event_ids)
        return {e.event_id: e.seq for e in self._sorted(tenant) if e.event_id in wanted}

    def run_heads(self, tenant: str, run_ids: Sequence[str]) -> dict[str, bytes]:
        wanted = set(run_ids)
        return {e.run_id: e.chain_hash for e in self._sorted(tenant) if e.run_id in wanted}

    def insert_events(self, rows: Sequence[StoredEvent]) -> None:
        self.new_events.extend(rows)

    def leaf_hashes(self, tenant: str, start: int) -> list[bytes]:
        return [e.leaf_hash for e in self._sorted(tenant) if e.seq >= start]

    def insert_checkpoint(self, tenant: str, size: int, note: str) -> None:
        self.new_checkpoints.append(Checkpoint(tenant, size, note))

    def checkpoints(self, tenant: str, latest_only: bool) -> list[Checkpoint]:
        rows = [v for _, v in sorted(self.s.checkpoint_rows.get(tenant, {}).items())]
        return rows[-1:] if latest_only else rows

    def events(self, tenant: str, start: int, end: int | None, limit: int) -> list[StoredEvent]:
        rows = [e for e in self._sorted(tenant) if e.seq >= start and (end is None or e.seq < end)]
        return rows[:limit]

    def run_events(self, tenant: str, run_id: str) -> list[StoredEvent]:
        return [e for e in self._sorted(tenant) if e.run_id == run_id]

    def tenants(self) -> list[str]:
        return sorted(set(self.s.rows) | set(self.s.checkpoint_rows))

    def put_result(self, tenant: str, run_id: str, result: bytes) -> None:
        self.new_results[(tenant, run_id)] = result

    def get_result(self, tenant: str, run_id: str) -> bytes | None:
        return self.s.results.get((tenant, run_id))


class MemoryStore(LogStore):
    def __init__(
        self,
        signer: Signer | None = None,
        *,
        checkpoint_every: int = CHECKPOINT_EVERY,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(signer, checkpoint_every=checkpoint_every, clock=clock)
        self.rows: dict[str, dict[int, StoredEvent]] = {}
        self.checkpoint_rows: dict[str, dict[int, Checkpoint]] = {}
        self.results: dict[tuple[str, str], bytes] = {}
        self._lock = threading.RLock()

    @contextmanager
    def _tx(self) -> Iterator[MemoryTx]:
        with self._lock:
            tx = MemoryTx(self)
            yield tx
            tx.commit()

    def _write(self) -> AbstractContextManager[Tx]:
        return self._tx()

    def _read(self) -> AbstractContextManager[Tx]:
        return self._tx()

    def migrate(self) -> int:
        return 1

    def close(self) -> None:
        """Nothing to release."""
