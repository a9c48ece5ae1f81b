"""Someone with write access to the database, and the code: the tamper matrix's attacker.

Besides plain SQL edits, they can rewrite the log *consistently*: read the payloads with
the run keys from ``run_keys``, change what they like, re-seal, recompute every digest,
leaf, chain link and leaf hash, renumber the seqs, and write the rows back; then delete
the checkpoint rows, or write new ones signed with a key of their own (they do not hold
the log's key). Only a checkpoint they cannot reach proves such a rewrite.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sentrail.evidence.chain import GENESIS, EventLeaf
from sentrail.evidence.checkpoint import Checkpoint, log_origin, sign_checkpoint
from sentrail.evidence.merkle import MerkleTree, leaf_hash
from sentrail.evidence.note import Signer
from sentrail.store.core import LogStore
from sentrail.store.seal import aad, cipher, seal
from tests.store.conftest import SIGNER, Backend
from tests.store.redaction_helpers import raw_rows

ROGUE = Signer(SIGNER.name, Ed25519PrivateKey.from_private_bytes(b"\x07" * 32))


@dataclass(frozen=True)
class Plain:
    """An event as the attacker rewrites it (payload in plaintext)."""

    app: str
    run_id: str
    event_id: str
    kind: str
    payload: bytes | None
    received_at: float
    sealed: bool


class Attacker:
    def __init__(self, backend: Backend, store: LogStore, tenant: str) -> None:
        assert backend.sql is not None
        self.sql: Callable[[str, tuple[Any, ...]], None] = backend.sql
        self.store = store
        self.tenant = tenant

    def events(self) -> list[Plain]:
        return [
            Plain(e.app_id, e.run_id, e.event_id, e.kind, e.payload, e.received_at, e.sealed)
            for e in self.store.events(self.tenant)
        ]

    def rewrite(self, change: Callable[[list[Plain]], list[Plain]]) -> int:
        """Rewrite the whole log as ``change`` has it, every hash recomputed; its size."""
        keys = {
            (a, r): bytes(k)
            for a, r, k in raw_rows(
                self.store,
                "SELECT app_id, run_id, dek FROM run_keys WHERE tenant_id = ? AND dek IS NOT NULL",
                (self.tenant,),
            )
        }
        heads: dict[tuple[str, str], bytes] = {}
        rows = []
        for seq, e in enumerate(change(self.events())):
            payload = e.payload or b""
            digest = hashlib.sha256(payload).digest()
            prev = heads.get((e.app, e.run_id), GENESIS)
            leaf = EventLeaf(
                self.tenant, seq, e.run_id, e.event_id, e.kind, digest, prev,
                e.app, e.received_at, e.sealed, 2,
            )  # fmt: skip
            at_rest = payload
            if e.sealed:
                key = cipher(keys[(e.app, e.run_id)])
                at_rest = seal(key, os.urandom(12), payload, aad(self.tenant, e.run_id, e.event_id))
            heads[(e.app, e.run_id)] = leaf.chain_hash()
            rows.append(
                (self.tenant, seq, e.app, e.run_id, e.event_id, e.kind, at_rest, digest, prev,
                 leaf.chain_hash(), leaf_hash(leaf.leaf_data()), e.received_at, int(e.sealed))
            )  # fmt: skip
        self.sql("DELETE FROM events WHERE tenant_id = ?", (self.tenant,))
        for row in rows:
            self.sql(
                "INSERT INTO events (tenant_id, seq, app_id, run_id, event_id, kind, payload, "
                "payload_sha256, prev_hash, chain_hash, leaf_hash, received_at, sealed, "
                "leaf_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 2)",
                row,
            )
        return len(rows)

    def delete_checkpoints(self, above: int = -1) -> None:
        self.sql("DELETE FROM checkpoints WHERE tenant_id = ? AND size > ?", (self.tenant, above))

    def forge_checkpoint(self, key: Signer = ROGUE) -> None:
        """A checkpoint of the log as it now is, signed with the attacker's own key (or,
        for an insider who holds it, the log's)."""
        tree = MerkleTree([e.leaf_hash for e in self.store.events(self.tenant)])
        rogue = Signer(log_origin(key.name, self.tenant), key.private_key)
        note = sign_checkpoint(Checkpoint(rogue.name, len(tree), tree.root()), rogue)
        self.sql(
            "INSERT INTO checkpoints (tenant_id, size, note) VALUES (?, ?, ?)",
            (self.tenant, len(tree), note),
        )


def edited(events: list[Plain], index: int, payload: bytes) -> list[Plain]:
    return [replace(e, payload=payload) if i == index else e for i, e in enumerate(events)]
