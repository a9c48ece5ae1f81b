"""The append hot path's leaf encoding: version 2 leaves, the run's part encoded once.

The same bytes as :meth:`sentrail.evidence.chain.EventLeaf.leaf_data` (a property test
compares them, and log verification recomputes every leaf with :class:`EventLeaf`), built
from :func:`sentrail.evidence.chain.run_prefix` so that the domain, tenant, app and run id
are encoded once per run instead of once per event.
"""

from __future__ import annotations

import hashlib

from sentrail.evidence import chain
from sentrail.evidence.chain import CHAIN_DOMAIN


def run_prefix(tenant: str, app: str, run_id: str) -> bytes:
    """The leaf data's leading part for every event of ``run_id`` of ``app``."""
    return chain.run_prefix(2, tenant, app, run_id)


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
    """The version 2 leaf data given ``prefix = run_prefix(tenant, app, run_id)``."""
    return chain.leaf_data_after(
        prefix, 2, seq, event_id, kind, received_at, sealed, payload_sha256, prev
    )


def link(prev: bytes, data: bytes) -> bytes:
    """``chain_hash(prev, SHA-256(data))`` for a 32-byte ``prev``."""
    return hashlib.sha256(CHAIN_DOMAIN + prev + hashlib.sha256(data).digest()).digest()
