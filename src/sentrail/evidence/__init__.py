"""Tamper-evident evidence: the pure cryptographic core (no database, no I/O but files).

- :mod:`.merkle` — RFC 9162 Merkle tree hashes, inclusion and consistency proofs.
- :mod:`.note` — C2SP signed notes with Ed25519 keys.
- :mod:`.checkpoint` — C2SP tlog checkpoints (origin, size, root hash) as signed notes.
- :mod:`.chain` — the per-run hash chain and the leaf data each event commits to.
- :mod:`.keys` — the on-disk key store (generation, 0600 files, rotation).
- :mod:`.dsse` — DSSE envelopes and in-toto Statement v1 manifests.
- :mod:`.bundle` — offline-verifiable evidence bundles (zip).
"""

from __future__ import annotations

from sentrail.evidence.errors import EvidenceError

__all__ = ["EvidenceError"]
