"""The append hot path's encoding of :meth:`sentrail.evidence.chain.EventLeaf.leaf_data`.

Byte for byte the same leaf data (version 2) and chain link as
:mod:`sentrail.evidence.chain` (a property test compares them, and log verification
recomputes every leaf with :class:`EventLeaf`), but the part every event of a run shares
(domain, tenant, app, run id) is encoded once per run instead of once per event.
"""

from __future__ import annotations

import hashlib
import struct

from sentrail.evidence.chain import CHAIN_DOMAIN, LEAF_DOMAIN_V2, SEALED_FLAG

_U32 = struct.Struct(">I")
_SEQ_TIME = struct.Struct(">Qd")
_FLAGS = (b"\x00", bytes([SEALED_FLAG]))


def _str(value: str) -> bytes:
    raw = value.encode("utf-8")
    return _U32.pack(len(raw)) + raw


def run_prefix(tenant: str, app: str, run_id: str) -> bytes:
    """The leaf data's leading part for every event of ``run_id`` of ``app``."""
    return LEAF_DOMAIN_V2 + _str(tenant) + _str(app) + _str(run_id)


def leaf_data(
    prefix: bytes,
    seq: int,
    event_id: str,
    kind: str,
    received_at: float,
    sealed: bool,
    payload_sha256: bytes,
    prev: bytes,
) -> bytes:
    """``EventLeaf(tenant, seq, run_id, event_id, kind, payload_sha256, prev, app,
    received_at, sealed, version=2).leaf_data()`` given ``prefix = run_prefix(tenant, app,
    run_id)`` (digests of 32 bytes, 0 <= seq < 2**64)."""
    return (
        prefix
        + _str(event_id)
        + _str(kind)
        + _SEQ_TIME.pack(seq, received_at)
        + _FLAGS[sealed]
        + payload_sha256
        + prev
    )


def link(prev: bytes, data: bytes) -> bytes:
    """``chain_hash(prev, SHA-256(data))`` for a 32-byte ``prev``."""
    return hashlib.sha256(CHAIN_DOMAIN + prev + hashlib.sha256(data).digest()).digest()
