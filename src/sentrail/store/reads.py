"""The read side of :class:`sentrail.store.core.LogStore` (a mixin: the same store)."""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager

from sentrail.evidence.merkle import MerkleTree
from sentrail.store.base import Checkpoint, StoredEvent
from sentrail.store.tx import RunRef, Tx


class LogReads(abc.ABC):
    """Reads of the log and of the run keys, each in one read transaction."""

    _tree_lock: threading.Lock

    @abc.abstractmethod
    def _read(self) -> AbstractContextManager[Tx]:
        """A consistent read."""

    @abc.abstractmethod
    def _tree(self, tx: Tx, tenant: str, size: int) -> MerkleTree:
        """The tenant's tree at ``size`` leaves."""

    def events(self, tenant: str, start: int = 0, end: int | None = None) -> Iterator[StoredEvent]:
        """Stored events of ``tenant`` with ``start <= seq < end``, in seq order."""
        page = 5000
        while True:
            with self._read() as tx:
                rows = tx.events(tenant, start, end, page)
            yield from rows
            if len(rows) < page:
                return
            start = rows[-1].seq + 1

    def run_events(self, tenant: str, app: str, run_id: str) -> list[StoredEvent]:
        with self._read() as tx:
            return tx.run_events(tenant, app, run_id)

    def log_runs(self, tenant: str) -> list[RunRef]:
        """Every ``(app, run_id)`` with events in ``tenant``'s log."""
        with self._read() as tx:
            return tx.log_runs(tenant)

    def leaf_hashes(self, tenant: str) -> list[bytes]:
        with self._read() as tx:
            return tx.leaf_hashes(tenant, 0)

    def tenants(self) -> list[str]:
        with self._read() as tx:
            return tx.tenants()

    def latest_checkpoint(self, tenant: str) -> Checkpoint | None:
        with self._read() as tx:
            rows = tx.checkpoints(tenant, latest_only=True)
        return rows[0] if rows else None

    def checkpoints(self, tenant: str) -> list[Checkpoint]:
        with self._read() as tx:
            return tx.checkpoints(tenant, latest_only=False)

    def get_result(self, tenant: str, app: str, run_id: str) -> bytes | None:
        with self._read() as tx:
            return tx.get_result(tenant, app, run_id)

    def proofs(
        self, tenant: str, size: int, *, leaves: Sequence[int] = (), old_size: int | None = None
    ) -> tuple[list[list[bytes]], list[bytes]]:
        """Inclusion proofs of ``leaves`` in the tree of ``size`` and, with ``old_size``,
        the consistency proof from ``old_size`` to ``size``. ValueError if out of range."""
        with self._tree_lock:
            with self._read() as tx:
                log_size = tx.log_size(tenant)
                if not 0 <= size <= log_size:
                    raise ValueError(f"tree size {size} is outside 0..{log_size}")
                tree = self._tree(tx, tenant, log_size)
            paths = [tree.inclusion_proof(i, size) for i in leaves]
            consistency = [] if old_size is None else tree.consistency_proof(old_size, size)
        return paths, consistency

    def stored_runs(self, tenant: str, app: str, run_ids: Sequence[str]) -> set[str]:
        """Which of ``run_ids`` of ``app`` have at least one stored event (one query)."""
        if not run_ids:
            return set()
        with self._read() as tx:
            heads = tx.run_heads(tenant, [(app, r) for r in dict.fromkeys(run_ids)])
        return {r for _, r in heads}

    def erased_runs(self, tenant: str, app: str, run_ids: Sequence[str]) -> set[str]:
        """Which of ``run_ids`` of ``app`` were redacted (one query)."""
        if not run_ids:
            return set()
        with self._read() as tx:
            keys = tx.run_keys(tenant, [(app, r) for r in dict.fromkeys(run_ids)])
        return {r for (_, r), k in keys.items() if k.erased}

    def is_erased(self, tenant: str, app: str, run_id: str) -> bool:
        """Whether ``run_id`` of ``app`` was redacted (its key erased): it takes no more
        events, and nothing derived from its payloads should be stored again."""
        with self._read() as tx:
            key = tx.run_keys(tenant, [(app, run_id)]).get((app, run_id))
        return key is not None and key.erased
