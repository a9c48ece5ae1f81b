"""The append hot path's encoding of :meth:`sentrail.evidence.chain.EventLeaf.leaf_data`.

Byte for byte the same leaf data and chain link as :mod:`sentrail.evidence.chain` (the
contract tests and a property test compare them, and log verification recomputes every
leaf with :class:`EventLeaf`), but the part every event of a run shares (domain, tenant,
run id) is encoded once per run instead of once per event.
"""

from __future__ import annotations

import hashlib
import struct

from sentrail.evidence.chain import CHAIN_DOMAIN, LEAF_DOMAIN

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def _str(value: str) -> bytes:
    raw = value.encode("utf-8")
    return _U32.pack(len(raw)) + raw


def run_prefix(tenant: str, run_id: str) -> bytes:
    """The leaf data's leading part for every event of ``run_id``."""
    return LEAF_DOMAIN + _str(tenant) + _str(run_id)


def leaf_data(
    prefix: bytes, seq: int, event_id: str, kind: str, payload_sha256: bytes, prev: bytes
) -> bytes:
    """``EventLeaf(tenant, seq, run_id, event_id, kind, payload_sha256, prev).leaf_data()``
    given ``prefix = run_prefix(tenant, run_id)`` (digests of 32 bytes, 0 <= seq < 2**64)."""
    return prefix + _str(event_id) + _str(kind) + _U64.pack(seq) + payload_sha256 + prev


def link(prev: bytes, data: bytes) -> bytes:
    """``chain_hash(prev, SHA-256(data))`` for a 32-byte ``prev``."""
    return hashlib.sha256(CHAIN_DOMAIN + prev + hashlib.sha256(data).digest()).digest()
