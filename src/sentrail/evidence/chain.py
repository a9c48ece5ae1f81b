"""The leaf data each event commits to, and the per-run hash chain.

Leaf data (the input of the RFC 9162 leaf hash) is a length-prefixed, versioned
encoding that never depends on a JSON serialiser. Version 2 (every event appended since
schema v5)::

    b"sentrail.evidence.leaf.v2\\x00"
    str(tenant) str(app) str(run_id) str(event_id) str(kind)   # each: u32 BE length || UTF-8
    u64 BE seq                                          # position in the tenant log
    f64 BE received_at                                  # IEEE 754 binary64, Unix seconds
    u8 flags                                            # bit 0: the payload is sealed at rest
    payload_sha256                                      # 32 bytes: SHA-256 of the exact bytes
    prev_chain_hash                                     # 32 bytes: the run's previous link

Version 1 (events stored before schema v5; they keep it) has no app, no time, no flags::

    b"sentrail.evidence.leaf.v1\\x00"
    str(tenant) str(run_id) str(event_id) str(kind) u64(seq) payload_sha256 prev_chain_hash

Version 2 commits to the app, so a run cannot be moved to another app unnoticed; to the
time it was received, which drives retention; and to whether its payload is sealed, so a
row cannot be swapped for its plaintext. Because the leaf commits to the payload's
*digest*, a payload can later be crypto-erased (redaction) and every proof and chain link
still verifies on the digest.

The per-run chain links entries in order::

    entry_digest(e)   = SHA-256(leaf data of e)
    chain_hash(p, d)  = SHA-256(b"sentrail.evidence.chain.v1\\x00" || p || d)
    chain[0]          = chain_hash(GENESIS, entry_digest(e0)),  GENESIS = 32 zero bytes
    chain[i]          = chain_hash(chain[i-1], entry_digest(ei))

The two domain prefixes differ from each other and from the Merkle 0x00/0x01 prefixes,
so no chain link can be confused with a leaf or a node.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from sentrail.evidence.errors import EvidenceError

GENESIS = bytes(32)
LEAF_DOMAIN = b"sentrail.evidence.leaf.v1\x00"
LEAF_DOMAIN_V2 = b"sentrail.evidence.leaf.v2\x00"
LEAF_VERSIONS = (1, 2)
SEALED_FLAG = 0x01
CHAIN_DOMAIN = b"sentrail.evidence.chain.v1\x00"
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_F64 = struct.Struct(">d")
_SEQ_TIME = struct.Struct(">Qd")
_FLAGS = (b"\x00", bytes([SEALED_FLAG]))


def chain_hash(prev: bytes, entry_digest: bytes) -> bytes:
    """The chain link after ``prev`` for an entry with ``entry_digest`` (both 32 bytes)."""
    if len(prev) != 32 or len(entry_digest) != 32:
        raise EvidenceError("chain hashes and entry digests have 32 bytes")
    return hashlib.sha256(CHAIN_DOMAIN + prev + entry_digest).digest()


def run_prefix(version: int, tenant: str, app: str, run_id: str) -> bytes:
    """The leading part of the leaf data of every event of one run (encoded once)."""
    if version == 2:
        return LEAF_DOMAIN_V2 + _str(tenant) + _str(app) + _str(run_id)
    return LEAF_DOMAIN + _str(tenant) + _str(run_id)


def leaf_data_after(
    prefix: bytes,
    version: int,
    seq: int,
    event_id: str,
    kind: str,
    received_at: float,
    sealed: bool,
    payload_sha256: bytes,
    prev: bytes,
) -> bytes:
    """:meth:`EventLeaf.leaf_data` given the run's :func:`run_prefix` (digests of 32
    bytes, 0 <= seq < 2**64: the caller checks)."""
    tail = _SEQ_TIME.pack(seq, received_at) + _FLAGS[sealed] if version == 2 else _U64.pack(seq)
    return prefix + _str(event_id) + _str(kind) + tail + payload_sha256 + prev


def verify_chain(links: Sequence[tuple[bytes, bytes]], start: bytes = GENESIS) -> int | None:
    """The index of the first bad ``(entry_digest, recorded_chain_hash)`` link, or None."""
    prev = start
    for i, (digest, recorded) in enumerate(links):
        if len(digest) != 32 or chain_hash(prev, digest) != recorded:
            return i
        prev = recorded
    return None


def _str(value: str) -> bytes:
    raw = value.encode("utf-8")
    return _U32.pack(len(raw)) + raw


@dataclass(frozen=True, slots=True)
class EventLeaf:
    """What one event in the tenant log commits to (``version`` 1 ignores ``app``,
    ``received_at`` and ``sealed``: see the module docstring)."""

    tenant: str
    seq: int
    run_id: str
    event_id: str
    kind: str
    payload_sha256: bytes
    prev_hash: bytes
    app: str = ""
    received_at: float = 0.0
    sealed: bool = False
    version: int = 1

    def leaf_data(self) -> bytes:
        """The canonical leaf data (see the module docstring)."""
        if not 0 <= self.seq < 1 << 64:
            raise EvidenceError(f"sequence number {self.seq} is out of range")
        if len(self.payload_sha256) != 32 or len(self.prev_hash) != 32:
            raise EvidenceError("payload digest and previous chain hash have 32 bytes")
        if self.version == 2:
            return b"".join(
                (
                    LEAF_DOMAIN_V2,
                    _str(self.tenant),
                    _str(self.app),
                    _str(self.run_id),
                    _str(self.event_id),
                    _str(self.kind),
                    _U64.pack(self.seq),
                    _F64.pack(self.received_at),
                    bytes([SEALED_FLAG if self.sealed else 0]),
                    self.payload_sha256,
                    self.prev_hash,
                )
            )
        if self.version != 1:
            raise EvidenceError(f"unknown leaf version {self.version}")
        return b"".join(
            (
                LEAF_DOMAIN,
                _str(self.tenant),
                _str(self.run_id),
                _str(self.event_id),
                _str(self.kind),
                _U64.pack(self.seq),
                self.payload_sha256,
                self.prev_hash,
            )
        )

    def entry_digest(self) -> bytes:
        """SHA-256 of the leaf data: what the run's chain links."""
        return hashlib.sha256(self.leaf_data()).digest()

    def chain_hash(self) -> bytes:
        """This entry's chain link (after ``prev_hash``)."""
        return chain_hash(self.prev_hash, self.entry_digest())
