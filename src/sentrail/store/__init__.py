"""The durable, append-only evidence store (SQLite, PostgreSQL).

- :mod:`.base` — the ``Store`` Protocol and its records.
- :mod:`.core` — the append logic every backend shares (seq, chain, leaf, checkpoints).
- :mod:`.sql` — the SQL both database backends share.
- :mod:`.sqlite`, :mod:`.postgres` — the backends (``memory://`` is in-memory SQLite).
- :mod:`.log_verify` — recompute chains, the tree and checkpoints over a whole store.
- :mod:`.seal` — payloads encrypted at rest under a per-run data key.
- :mod:`.erasure` — redaction by key erasure, retention; :mod:`.redact` — field views.
- :mod:`.factory` — ``open_store(url)``.
"""

from __future__ import annotations

from sentrail.store.base import (
    Appended,
    NewEvent,
    Redaction,
    RetentionDue,
    Store,
    StoredEvent,
    StoreError,
)
from sentrail.store.factory import open_store

__all__ = [
    "Appended",
    "NewEvent",
    "Redaction",
    "RetentionDue",
    "Store",
    "StoreError",
    "StoredEvent",
    "open_store",
]
