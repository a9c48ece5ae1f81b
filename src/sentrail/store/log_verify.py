"""Verify a whole tenant log: seqs, payload digests, leaves, run chains, checkpoints.

Walks the log in seq order and recomputes, from the stored fields only:

- seqs are exactly 0, 1, 2, ... (a gap is a deletion, a repeat an insertion);
- each leaf hash is the RFC 9162 leaf of :meth:`EventLeaf.leaf_data` (which commits to
  the seq: a reordered or moved row fails here);
- each ``prev_hash`` is the previous ``chain_hash`` of its run (GENESIS first) and each
  ``chain_hash`` is the link over the entry;
- each present payload's SHA-256 is its stored digest;
- every stored checkpoint is signed by a trusted key named after its origin and its root
  is the recomputed tree's root at its size;
- a sealed payload opens under its run's key as this event's (else it was edited, moved
  or replaced); an erased one (its run's key is gone) is fine on its digest alone;
- redactions hold together (:class:`sentrail.evidence.redaction.RedactionCheck`): every
  ``redaction`` event is a well-formed record of its run, every view's SHA-256 is the one
  a later redaction record of its run gives for its seq, and every payload that is gone
  was erased by a recorded redaction.

The first problem is reported with its seq and a reason; nothing is trusted from the rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from sentrail.errors import SentrailError
from sentrail.evidence.chain import GENESIS, EventLeaf
from sentrail.evidence.checkpoint import verify_checkpoint
from sentrail.evidence.merkle import MerkleTree, leaf_hash
from sentrail.evidence.note import Verifier
from sentrail.evidence.redaction import RedactionCheck
from sentrail.store.base import Store


@dataclass(frozen=True)
class LogProblem:
    """The first bad entry of a tenant log."""

    tenant: str
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"tenant {self.tenant}: seq {self.seq}: {self.reason}"


@dataclass(frozen=True)
class LogReport:
    tenant: str
    size: int
    checkpoints: int
    problem: LogProblem | None


def verify_log(store: Store, tenant: str, verifiers: Iterable[Verifier | str]) -> LogReport:
    """Check the whole log of ``tenant``; ``problem`` is the first bad entry, if any."""
    trusted = list(verifiers)
    tree = MerkleTree()
    heads: dict[str, bytes] = {}
    expected = 0
    redactions = RedactionCheck(require_records=True, keep_records=False)

    def bad(seq: int, reason: str) -> LogReport:
        return LogReport(tenant, expected, 0, LogProblem(tenant, seq, reason))

    try:
        for e in store.events(tenant):
            if e.seq != expected:
                if e.seq < expected:
                    return bad(e.seq, "seq appears more than once (insertion)")
                return bad(expected, f"seq {expected} is missing (deletion); next is {e.seq}")
            if e.tenant_id != tenant:
                return bad(e.seq, f"belongs to tenant {e.tenant_id!r}")
            leaf = EventLeaf(
                tenant, e.seq, e.run_id, e.event_id, e.kind, e.payload_sha256, e.prev_hash
            )
            lh = leaf_hash(leaf.leaf_data())
            if lh != e.leaf_hash:
                return bad(e.seq, "leaf hash does not match the entry (edited or moved)")
            head = heads.get(e.run_id, GENESIS)
            if e.prev_hash != head:
                return bad(e.seq, f"prev_hash does not continue the chain of run {e.run_id!r}")
            if leaf.chain_hash() != e.chain_hash:
                return bad(e.seq, "chain hash does not match the entry")
            if e.payload is not None and hashlib.sha256(e.payload).digest() != e.payload_sha256:
                return bad(e.seq, "payload does not match its stored digest")
            if e.seal_error is not None:
                return bad(e.seq, f"payload does not match its stored digest: {e.seal_error}")
            redactions.add(e.run_id, e.seq, e.kind, e.payload, e.view)
            heads[e.run_id] = e.chain_hash
            tree.append(lh)
            expected += 1
        checkpoints = store.checkpoints(tenant)
    except SentrailError as exc:  # a malformed row
        return bad(expected, str(exc))
    for cp in checkpoints:
        where = max(cp.size - 1, 0)
        try:
            head_ = verify_checkpoint(cp.note, trusted)
        except SentrailError as exc:
            return bad(where, f"checkpoint at size {cp.size}: {exc}")
        if head_.size != cp.size:
            return bad(where, f"checkpoint row size {cp.size} differs from its note")
        if head_.size > len(tree):
            return bad(len(tree), f"checkpoint at size {cp.size} covers events that are missing")
        if tree.root(head_.size) != head_.root_hash:
            return bad(where, f"the log's root at size {cp.size} differs from its checkpoint")
    problems = redactions.problems()
    if problems:
        seq, reason = problems[0]
        return LogReport(tenant, len(tree), len(checkpoints), LogProblem(tenant, seq, reason))
    return LogReport(tenant, len(tree), len(checkpoints), None)
