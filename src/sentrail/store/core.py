"""The append logic every backend shares; backends only move rows.

For each tenant in a batch, inside one transaction that holds the tenant's write lock:

1. events already stored under the same ``(app, event_id)``, and repeats inside the batch,
   are answered with the original seq and ``duplicate=True`` when they are the same event
   (run, kind and payload digest); nothing is stored for them. An id reused with other
   content is an :class:`EventConflict` (or, with ``on_conflict="report"``, an ack with
   ``conflict=True``);
2. new events get consecutive seqs from the tenant's log size, ``prev_hash`` = the last
   ``chain_hash`` of the run ``(app, run_id)`` (GENESIS for its first event), the version 2
   leaf of :meth:`EventLeaf.leaf_data` (which commits to the app, the time received and
   whether the payload is sealed) and the chain link;
3. when at least ``checkpoint_every`` events were appended since the last checkpoint, a
   new checkpoint (origin = the tenant's log origin, size, Merkle root) is signed and
   stored in the same transaction. ``checkpoint(tenant)`` signs one on request (e.g. every
   second, driven by the caller's clock: there is no timer in here).

The transaction commits before ``append`` returns: an acknowledged event is durable.
Then every checkpoint it signed is handed to the ``on_checkpoint`` hooks (a witness
publisher), and ``behind()`` names the tenants whose log grew past their latest checkpoint
in this process, for a timer to sign.

Payloads are sealed (``seal_payloads``, the default): each run's events are stored
encrypted under the run's data key (:mod:`.seal`), created with its first event; the
digests, leaves and chain links are over the plaintext. Redaction erases the key
(:mod:`.erasure`); a run whose key was erased takes no more events.
"""

from __future__ import annotations

import abc
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Literal

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sentrail.evidence.chain import GENESIS
from sentrail.evidence.checkpoint import Checkpoint as TreeHead
from sentrail.evidence.checkpoint import log_origin, log_signer, sign_checkpoint
from sentrail.evidence.merkle import MerkleTree, leaf_hash
from sentrail.evidence.note import Signer
from sentrail.store import erasure, leafdata
from sentrail.store.base import (
    TRIAGE_KIND,
    Appended,
    Checkpoint,
    EventConflict,
    NewEvent,
    Prior,
    Redaction,
    RetentionDue,
    RunKey,
    RunRedacted,
    StoredEvent,
    StoreError,
)
from sentrail.store.checkpoint_timer import CheckpointTimer
from sentrail.store.reads import LogReads
from sentrail.store.seal import aad_prefix, cipher, event_aad, new_key, nonces, seal
from sentrail.store.tx import MAX_ID_CHARS, RunRef, Tx, check_event

__all__ = ["CHECKPOINT_EVERY", "MAX_ID_CHARS", "LogStore", "Tx", "check_event"]

CHECKPOINT_EVERY = 1000
log = logging.getLogger("sentrail.store")


class LogStore(LogReads):
    """The shared implementation of :class:`sentrail.store.base.Store`."""

    def __init__(
        self,
        signer: Signer | None = None,
        *,
        checkpoint_every: int = CHECKPOINT_EVERY,
        clock: Callable[[], float] | None = None,
        seal_payloads: bool = True,
    ) -> None:
        if checkpoint_every < 1:
            raise StoreError("checkpoint_every must be at least 1")
        self.signer = signer
        self.seal_payloads = seal_payloads
        self.checkpoint_every = checkpoint_every
        self.clock = clock or time.time
        self.on_checkpoint: list[Callable[[Checkpoint], None]] = []
        self.on_close: list[Callable[[], None]] = []
        self._trees: dict[str, MerkleTree] = {}
        self._tree_lock = threading.Lock()
        self._signers: dict[str, Signer] = {}
        self._signed: list[Checkpoint] = []  # signed in the open transaction
        self._behind: set[str] = set()  # tenants with events past their latest checkpoint
        self._timer: CheckpointTimer | None = None
        self._timer_on_close = False

    # -- what a backend provides ----------------------------------------------------------
    @abc.abstractmethod
    def _write(self) -> AbstractContextManager[Tx]:
        """A write transaction: commit (durably) on exit, roll back on an exception."""

    @abc.abstractmethod
    def migrate(self) -> int:
        """Apply pending schema migrations; return the schema version."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release the backend's connections."""

    def close(self) -> None:
        """Run the ``on_close`` hooks (a witness publisher flushes), then close."""
        hooks, self.on_close = self.on_close, []
        for hook in hooks:
            hook()
        self._close()

    def _after_erasure(self) -> None:
        """After a redaction commits: make the erased bytes physically gone where the
        backend can (SQLite: checkpoint and truncate the WAL)."""

    # -- the Merkle tree cache --------------------------------------------------------------
    def _tree(self, tx: Tx, tenant: str, size: int) -> MerkleTree:
        """The tenant's tree at ``size`` leaves (the committed log; caller holds the lock)."""
        tree = self._trees.get(tenant)
        if tree is None or len(tree) > size:
            tree = MerkleTree()
        if len(tree) < size:
            for h in tx.leaf_hashes(tenant, len(tree)):
                tree.append(h)
        if len(tree) != size:
            raise StoreError(f"the log has {len(tree)} leaf hashes, not {size}", tenant)
        self._trees[tenant] = tree
        return tree

    def log_signer(self, tenant: str) -> Signer | None:
        """The signing key under ``tenant``'s log origin (None without a signer)."""
        if self.signer is None:
            return None
        signer = self._signers.get(tenant)
        if signer is None:
            signer = self._signers[tenant] = log_signer(self.signer, tenant)
        return signer

    def origin(self, tenant: str) -> str:
        """The origin line of ``tenant``'s checkpoints."""
        if self.signer is None:
            raise StoreError("this store has no signing key")
        return log_origin(self.signer.name, tenant)

    def _sign(self, tx: Tx, tenant: str, tree: MerkleTree) -> Checkpoint | None:
        signer = self.log_signer(tenant)
        if signer is None:
            return None
        size = len(tree)
        latest = tx.checkpoints(tenant, latest_only=True)
        if latest and latest[0].size >= size:
            return latest[0]
        note = sign_checkpoint(TreeHead(signer.name, size, tree.root()), signer)
        tx.insert_checkpoint(tenant, size, note)
        signed = Checkpoint(tenant, size, note)
        self._signed.append(signed)
        return signed

    def _committed(self, grew: Sequence[str]) -> None:
        """After a write commits: track tenants left behind their latest checkpoint and
        hand every checkpoint signed in it to the hooks (which must not block; a hook's
        failure is logged, never raised: the write is durable already)."""
        signed, self._signed = self._signed, []
        self._behind.update(grew)
        for cp in signed:
            if cp.size >= len(self._trees.get(cp.tenant_id, ())):
                self._behind.discard(cp.tenant_id)
        for cp in signed:
            for hook in self.on_checkpoint:
                try:
                    hook(cp)
                except Exception as exc:  # a witness that fails must not fail the log
                    log.error("checkpoint hook failed: %s", exc)

    def checkpoint_timer(self, interval: float = 1.0) -> CheckpointTimer:
        """This store's one checkpoint timer (:mod:`.checkpoint_timer`), made on first use
        with ``interval`` and not started; later calls return the same timer."""
        if self._timer is None:
            self._timer = CheckpointTimer(self, interval)
        return self._timer

    def sign_automatically(self, interval: float = 1.0) -> CheckpointTimer | None:
        """Sign a checkpoint within ``interval`` seconds of every append that leaves a
        tenant behind, and what is left when the store closes: the store's timer, started
        without catching up (None for a store without a signing key)."""
        if self.signer is None:
            return None
        timer = self.checkpoint_timer(interval)
        timer.start(catch_up=False)
        if not self._timer_on_close:
            self._timer_on_close = True
            self.on_close.insert(0, timer.stop)
        return timer

    def behind(self) -> list[str]:
        """Tenants whose log grew, in this process, past their latest checkpoint."""
        with self._tree_lock:
            return sorted(self._behind)

    # -- writes -----------------------------------------------------------------------------
    def append(
        self,
        events: Sequence[NewEvent],
        *,
        also: Callable[[Tx, list[Appended]], None] | None = None,
        on_conflict: Literal["raise", "report"] = "raise",
    ) -> list[Appended]:
        """Append ``events`` in one durable transaction; acknowledgements in input order.

        ``also(tx, acks)`` runs in the same transaction after the events are in: what it
        writes (index rows of the events) commits with them or not at all. An event id of
        the app already stored with other content raises :class:`EventConflict` (nothing
        is stored), or with ``on_conflict="report"`` is acknowledged with ``conflict=True``
        and the stored seq (a live stream cannot answer a conflict: it counts it)."""
        for e in events:
            check_event(e)
        return self._write_events(events, also, on_conflict)

    def append_record(
        self,
        event: NewEvent,
        *,
        also: Callable[[Tx, list[Appended]], None] | None = None,
    ) -> Appended:
        """Append one of the store's own records (a ``triage`` event) to an existing run:
        never sealed, accepted by a run whose key was erased."""
        check_event(event, record=True)
        if event.kind != TRIAGE_KIND:
            raise StoreError(f"a {event.kind!r} record is the store's own", event.event_id)
        (ack,) = self._write_events([event], also, "raise", record=True)
        return ack

    def _write_events(
        self,
        events: Sequence[NewEvent],
        also: Callable[[Tx, list[Appended]], None] | None,
        on_conflict: Literal["raise", "report"],
        *,
        record: bool = False,
    ) -> list[Appended]:
        by_tenant: dict[str, list[int]] = {}
        for i, e in enumerate(events):
            by_tenant.setdefault(e.tenant_id, []).append(i)
        acks: list[Appended | None] = [None] * len(events)
        grew: list[str] = []
        with self._tree_lock:
            try:
                with self._write() as tx:
                    for tenant in sorted(by_tenant):
                        idx = by_tenant[tenant]
                        batch = [events[i] for i in idx]
                        if record:
                            run = (batch[0].app_id, batch[0].run_id)
                            if run not in tx.run_heads(tenant, [run]):
                                raise StoreError(
                                    f"no events of run {run[1]!r} in app {run[0]!r}",
                                    f"tenant {tenant}",
                                )
                        done = self._append_tenant(
                            tx, tenant, batch, internal=record, on_conflict=on_conflict
                        )
                        for i, ack in zip(idx, done, strict=True):
                            acks[i] = ack
                        if any(not (a.duplicate or a.conflict) for a in done):
                            grew.append(tenant)
                    if also is not None:
                        also(tx, [a for a in acks if a is not None])
            except BaseException:
                self._signed = []
                for tenant in by_tenant:  # the cache may hold uncommitted leaves
                    self._trees.pop(tenant, None)
                raise
            self._committed(grew)
        return [a for a in acks if a is not None]

    def _append_tenant(
        self,
        tx: Tx,
        tenant: str,
        batch: list[NewEvent],
        *,
        internal: bool = False,
        on_conflict: Literal["raise", "report"] = "raise",
    ) -> list[Appended]:
        """Append ``batch`` (one tenant) in ``tx``. ``internal`` events are the store's own
        records (redaction, triage): never sealed, and accepted by a run whose key was
        erased."""
        tx.lock_tenant(tenant)
        size = tx.log_size(tenant)
        tree = self._tree(tx, tenant, size)
        stored = tx.find_events(tenant, [(e.app_id, e.event_id) for e in batch])
        runs = list(dict.fromkeys((e.app_id, e.run_id) for e in batch))
        heads = tx.run_heads(tenant, runs)
        keys = tx.run_keys(tenant, runs)
        sealing = self.seal_payloads and not internal
        pool = nonces(len(batch)) if sealing else []
        ciphers: dict[RunRef, tuple[AESGCM, bytes]] = {}  # run -> (cipher, aad prefix)
        prefixes: dict[RunRef, bytes] = {}  # run -> leaf data prefix
        sha256 = hashlib.sha256
        new_keys: list[tuple[str, str, bytes]] = []
        now = self.clock()
        acks: list[Appended] = []
        rows: list[StoredEvent] = []
        seq = size
        for i, e in enumerate(batch):
            digest = sha256(e.payload).digest()
            old = stored.get((e.app_id, e.event_id))
            if old is not None:
                if old.run_id == e.run_id and old.kind == e.kind and old.payload_sha256 == digest:
                    acks.append(Appended(old.seq, e.event_id, duplicate=True))
                elif on_conflict == "report":
                    acks.append(Appended(old.seq, e.event_id, conflict=True))
                else:
                    raise EventConflict.of(tenant, e.app_id, e.event_id, old.seq)
                continue
            run = (e.app_id, e.run_id)
            key = keys.get(run)
            if not internal and key is not None and key.erased:
                raise RunRedacted(
                    f"run {e.run_id!r} was redacted (its data key is erased): "
                    "it takes no more events",
                    f"tenant {tenant}: app {e.app_id}: event {e.event_id}",
                )
            at_rest = e.payload
            if sealing:
                run_cipher = ciphers.get(run)
                if run_cipher is None:
                    dek = key.dek if key is not None else None
                    if dek is None:
                        dek = new_key()
                        new_keys.append((e.app_id, e.run_id, dek))
                        keys[run] = RunKey(dek)
                    run_cipher = ciphers[run] = (cipher(dek), aad_prefix(tenant, e.run_id))
                aead, aad_run = run_cipher
                at_rest = seal(aead, pool[i], e.payload, event_aad(aad_run, e.event_id))
            prev = heads.get(run, GENESIS)
            prefix = prefixes.get(run)
            if prefix is None:
                prefix = prefixes[run] = leafdata.run_prefix(tenant, e.app_id, e.run_id)
            data = leafdata.leaf_data(prefix, seq, e.event_id, e.kind, now, sealing, digest, prev)
            link = leafdata.link(prev, data)
            lh = leaf_hash(data)
            rows.append(
                StoredEvent(
                    seq,
                    tenant,
                    e.app_id,
                    e.run_id,
                    e.event_id,
                    e.kind,
                    at_rest,
                    digest,
                    prev,
                    link,
                    lh,
                    now,
                    sealing,
                )
            )
            tree.append(lh)
            heads[run] = link
            stored[(e.app_id, e.event_id)] = Prior(seq, e.run_id, e.kind, digest)
            acks.append(Appended(seq, e.event_id))
            seq += 1
        if new_keys:
            tx.insert_run_keys(tenant, new_keys, now)
        if rows:
            tx.insert_events(rows)
            latest = tx.checkpoints(tenant, latest_only=True)
            since = seq - (latest[0].size if latest else 0)
            if since >= self.checkpoint_every:
                self._sign(tx, tenant, tree)
        return acks

    def checkpoint(self, tenant: str) -> Checkpoint | None:
        """Sign and store a checkpoint of the whole log now (the latest, if it is current)."""
        if self.signer is None:
            raise StoreError("this store has no signing key")
        with self._tree_lock:
            try:
                with self._write() as tx:
                    tx.lock_tenant(tenant)
                    tree = self._tree(tx, tenant, tx.log_size(tenant))
                    signed = self._sign(tx, tenant, tree)
            except BaseException:
                self._signed = []
                self._trees.pop(tenant, None)
                raise
            self._committed(())
            if signed is not None and signed.size >= len(tree):
                self._behind.discard(tenant)
            return signed

    def tenants_behind(self) -> list[str]:
        """Every tenant whose stored log is ahead of its latest checkpoint (a scan: for a
        process that starts, not for every tick)."""
        out = []
        for tenant in self.tenants():
            latest = self.latest_checkpoint(tenant)
            with self._read() as tx:
                size = tx.log_size(tenant)
            if size and (latest is None or latest.size < size):
                out.append(tenant)
        return out

    def put_checkpoint(self, tenant: str, size: int, note: str) -> None:
        with self._write() as tx:
            tx.insert_checkpoint(tenant, size, note)

    def put_result(self, tenant: str, app: str, run_id: str, result_json: bytes) -> None:
        with self._write() as tx:
            tx.put_result(tenant, app, run_id, bytes(result_json))

    # -- redaction and retention (see :mod:`.erasure`) -----------------------------------------
    def redact(
        self,
        tenant: str,
        app: str,
        run_id: str,
        *,
        by: str,
        reason: str,
        fields: Sequence[str] = (),
    ) -> Redaction:
        """Erase the payloads of a run, keeping redacted views when ``fields`` are given."""
        return erasure.redact(self, tenant, app, run_id, by=by, reason=reason, fields=fields)

    def set_retention(self, tenant: str, days: int | None) -> None:
        erasure.set_retention(self, tenant, days)

    def retention(self, tenant: str) -> int | None:
        return erasure.retention(self, tenant)

    def retention_due(
        self, now: float | None = None, tenant: str | None = None
    ) -> list[RetentionDue]:
        return erasure.retention_due(self, self.clock() if now is None else now, tenant)

    def apply_retention(
        self, now: float | None = None, tenant: str | None = None
    ) -> list[Redaction]:
        return erasure.apply_retention(self, self.clock() if now is None else now, tenant)

    def transaction(self, *, write: bool = False) -> AbstractContextManager[Tx]:
        """A transaction for other tables of the store (see :mod:`.records`)."""
        return self._write() if write else self._read()

    def __enter__(self) -> LogStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
