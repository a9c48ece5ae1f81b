"""Verify a whole tenant log: seqs, payload digests, leaves, run chains, checkpoints.

Walks the log in seq order and recomputes, from the stored fields only:

- the tenant has a log at all (no events and no checkpoints: a missing tenant fails);
- seqs are exactly 0, 1, 2, ... (a gap is a deletion, a repeat an insertion);
- each leaf hash is the RFC 9162 leaf of :meth:`EventLeaf.leaf_data` in the row's leaf
  version (which commits to the seq, and in version 2 to the app, the time received and
  whether the payload is sealed: a reordered, moved, re-timed or unsealed row fails
  here); a version 1 leaf after a version 2 leaf is a rewritten row;
- each ``prev_hash`` is the previous ``chain_hash`` of its run ``(app, run_id)``
  (GENESIS first) and each ``chain_hash`` is the link over the entry;
- each present payload's SHA-256 is its stored digest; a sealed payload opens under its
  run's key as this event's (else it was edited, moved or replaced); an erased one (its
  run's key is gone) is fine on its digest alone; a row stored unsealed in a run whose
  payloads were sealed is plaintext at rest where the store promised ciphertext;
- every stored checkpoint is signed by a trusted key named after its origin (the
  tenant's log origin, or the log key's own name for checkpoints from before per-tenant
  origins) and its root is the recomputed tree's root at its size;
- every checkpoint held *outside* the store (``outside``: a file, a URL, a witness's
  copy) is signed by a trusted key for this tenant's log and is consistent with the
  recomputed tree: the log is at least as long (else it was cut off) and an RFC 9162
  consistency proof from its size to the log's size verifies between its root and the
  recomputed root (else history was rewritten, however carefully it was rehashed);
- with ``max_unsigned_age``: events past the latest checkpoint are younger than that
  (else checkpoints were deleted or never signed), and none was received in the future;
- redactions hold together (:class:`sentrail.evidence.redaction.RedactionCheck`).

The first problem is reported with its seq and a reason; nothing is trusted from the rows.
What this cannot see alone: a rewrite of the whole log, rehashed, with the checkpoint
rows deleted or re-signed by the attacker's own key and no outside record. The stored
checkpoints then fail (unknown key) or are gone (``max_unsigned_age``), and an outside
checkpoint or a witness proves the rewrite.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sentrail.errors import SentrailError
from sentrail.evidence.chain import GENESIS, EventLeaf
from sentrail.evidence.checkpoint import Checkpoint as TreeHead
from sentrail.evidence.checkpoint import log_verifiers, verify_checkpoint
from sentrail.evidence.merkle import MerkleTree, leaf_hash, verify_consistency
from sentrail.evidence.note import Verifier
from sentrail.evidence.redaction import RedactionCheck
from sentrail.store.base import RECORD_KINDS, Store, StoredEvent

FUTURE_SLACK_S = 300.0  # clocks of different writers may differ this much


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
    outside: int = 0  # checkpoints held outside the store that the log is consistent with
    unsigned: int = 0  # events past the latest stored checkpoint


@dataclass(frozen=True)
class Outside:
    """A checkpoint held outside the store, and where it came from (for messages)."""

    note: str | bytes
    source: str


def _leaf(tenant: str, e: StoredEvent, sealed: bool) -> EventLeaf:
    return EventLeaf(
        tenant,
        e.seq,
        e.run_id,
        e.event_id,
        e.kind,
        e.payload_sha256,
        e.prev_hash,
        e.app_id,
        e.received_at,
        sealed,
        e.leaf_version,
    )


class _Walk:
    """The per-event checks of one pass over the log, in seq order."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.tree = MerkleTree()
        self.heads: dict[tuple[str, str], bytes] = {}
        self.sealed_runs: set[tuple[str, str]] = set()
        self.newest_version = 1
        self.redactions = RedactionCheck(require_records=True, keep_records=False)
        self.received: dict[int, float] = {}  # seq -> received_at, for the seqs asked
        self.watch: set[int] = set()

    def add(self, e: StoredEvent) -> str | None:
        """The reason ``e`` is bad, or None (then it is part of the tree)."""
        expected = len(self.tree)
        if e.seq != expected:
            if e.seq < expected:
                return "seq appears more than once (insertion)"
            return f"seq {expected} is missing (deletion); next is {e.seq}"
        if e.tenant_id != self.tenant:
            return f"belongs to tenant {e.tenant_id!r}"
        if not math.isfinite(e.received_at):
            return "received_at is not a time"
        if e.leaf_version < self.newest_version:
            return "a version 1 leaf after version 2 leaves (a row rewritten in the old format)"
        self.newest_version = e.leaf_version
        run = (e.app_id, e.run_id)
        leaf = _leaf(self.tenant, e, e.sealed)
        lh = leaf_hash(leaf.leaf_data())
        if lh != e.leaf_hash:
            return self._why_not(e)
        if e.kind not in RECORD_KINDS:
            if e.sealed:
                self.sealed_runs.add(run)
            elif run in self.sealed_runs:
                return (
                    f"the payload is stored unsealed (plaintext at rest) in run {e.run_id!r}, "
                    "whose payloads are sealed"
                )
        if e.prev_hash != self.heads.get(run, GENESIS):
            return f"prev_hash does not continue the chain of run {e.run_id!r} of app {e.app_id!r}"
        if leaf.chain_hash() != e.chain_hash:
            return "chain hash does not match the entry"
        if e.payload is not None and hashlib.sha256(e.payload).digest() != e.payload_sha256:
            return "payload does not match its stored digest"
        if e.seal_error is not None:
            return f"payload does not match its stored digest: {e.seal_error}"
        self.redactions.add(e.run_id, e.seq, e.kind, e.payload, e.view)
        self.heads[run] = e.chain_hash
        self.tree.append(lh)
        if e.seq in self.watch:
            self.received[e.seq] = e.received_at
        return None

    def _why_not(self, e: StoredEvent) -> str:
        """Why a row's leaf hash is not the one of its fields."""
        if e.leaf_version == 2 and not e.sealed:
            sealed = leaf_hash(_leaf(self.tenant, e, True).leaf_data())
            if sealed == e.leaf_hash:
                return "the payload is stored unsealed (plaintext at rest) but was appended sealed"
        return "leaf hash does not match the entry (edited, moved or re-timed)"


def _head(note: str | bytes, trusted: Sequence[Verifier], origins: set[str]) -> TreeHead:
    head = verify_checkpoint(note, trusted)
    if head.origin not in origins:
        raise SentrailError(f"origin {head.origin!r} is not this tenant's log")
    return head


def verify_log(
    store: Store,
    tenant: str,
    verifiers: Iterable[Verifier | str],
    *,
    outside: Sequence[Outside] = (),
    max_unsigned_age: float | None = None,
    now: float | None = None,
) -> LogReport:
    """Check the whole log of ``tenant``; ``problem`` is the first bad entry, if any."""
    base = [Verifier.parse(v) if isinstance(v, str) else v for v in verifiers]
    trusted = log_verifiers(base, tenant)
    origins = {v.name for v in trusted}
    walk = _Walk(tenant)

    def bad(seq: int, reason: str, checkpoints: int = 0) -> LogReport:
        return LogReport(tenant, len(walk.tree), checkpoints, LogProblem(tenant, seq, reason))

    try:
        checkpoints = store.checkpoints(tenant)
        covered = max((cp.size for cp in checkpoints), default=0)
        walk.watch = {covered}
        for e in store.events(tenant):
            reason = walk.add(e)
            if reason is not None:
                return bad(min(e.seq, len(walk.tree)), reason)
    except SentrailError as exc:  # a malformed row
        return bad(len(walk.tree), str(exc))
    tree = walk.tree
    if not len(tree) and not checkpoints:
        return bad(0, "no log: this store holds no events and no checkpoints of the tenant")
    for cp in checkpoints:
        where = max(cp.size - 1, 0)
        try:
            head = _head(cp.note, trusted, origins)
        except SentrailError as exc:
            return bad(where, f"checkpoint at size {cp.size}: {exc}")
        if head.size != cp.size:
            return bad(where, f"checkpoint row size {cp.size} differs from its note")
        if head.size > len(tree):
            return bad(len(tree), f"checkpoint at size {cp.size} covers events that are missing")
        if tree.root(head.size) != head.root_hash:
            return bad(where, f"the log's root at size {cp.size} differs from its checkpoint")
    for held in outside:
        reason = against_outside(tree, held, trusted, origins)
        if reason is not None:
            return bad(len(tree), reason, len(checkpoints))
    problems = walk.redactions.problems()
    if problems:
        seq, reason = problems[0]
        return bad(seq, reason, len(checkpoints))
    unsigned = len(tree) - covered
    if max_unsigned_age is not None and unsigned > 0 and covered in walk.received:
        reason = _stale(walk.received[covered], covered, unsigned, max_unsigned_age, now)
        if reason is not None:
            return bad(covered, reason, len(checkpoints))
    return LogReport(tenant, len(tree), len(checkpoints), None, len(outside), max(unsigned, 0))


def recomputed_tree(store: Store, tenant: str) -> MerkleTree:
    """The tree of the leaves the rows' fields give, in seq order, nothing else checked
    (what a checkpoint held outside is compared with when the log has other problems)."""
    tree = MerkleTree()
    for e in store.events(tenant):
        tree.append(leaf_hash(_leaf(tenant, e, e.sealed).leaf_data()))
    return tree


def outside_problem(
    store: Store, tenant: str, verifiers: Iterable[Verifier | str], held: Outside
) -> str | None:
    """Why ``tenant``'s log is not consistent with ``held``, or None (other problems of
    the log aside)."""
    base = [Verifier.parse(v) if isinstance(v, str) else v for v in verifiers]
    trusted = log_verifiers(base, tenant)
    return against_outside(recomputed_tree(store, tenant), held, trusted, {v.name for v in trusted})


def against_outside(
    tree: MerkleTree, held: Outside, trusted: Sequence[Verifier], origins: set[str]
) -> str | None:
    """Why the log is not consistent with a checkpoint held outside, or None."""
    try:
        head = _head(held.note, trusted, origins)
    except SentrailError as exc:
        return f"the checkpoint from {held.source} does not verify: {exc}"
    if head.size > len(tree):
        return (
            f"the log has {len(tree)} event(s), fewer than the {head.size} of the checkpoint "
            f"from {held.source}: it was cut off (events deleted at the end)"
        )
    proof = tree.consistency_proof(head.size, len(tree))
    if not verify_consistency(head.size, len(tree), head.root_hash, tree.root(), proof):
        return (
            f"the log is not consistent with the checkpoint from {held.source} (size "
            f"{head.size}): its history was rewritten (events edited, removed, reordered "
            "or inserted, and rehashed)"
        )
    return None


def _stale(
    first_at: float, covered: int, unsigned: int, limit: float, now: float | None
) -> str | None:
    """Why the events past the latest checkpoint are a problem, or None."""
    clock = time.time() if now is None else now
    age = clock - first_at
    if age < -FUTURE_SLACK_S:
        return f"event seq {covered} was received {-age:.0f} s in the future"
    if age > limit:
        return (
            f"{unsigned} event(s) from seq {covered} on are covered by no checkpoint; the "
            f"first was received {age:.0f} s ago, more than the allowed {limit:.0f} s: "
            "checkpoints were deleted or never signed"
        )
    return None
