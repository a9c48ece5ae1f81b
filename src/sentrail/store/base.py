"""The ``Store`` Protocol: a per-tenant, append-only, tamper-evident event log.

Every accepted event gets the next sequence number of its tenant's log (0, 1, 2, ...),
a link in its run's hash chain and a leaf in the tenant's RFC 9162 Merkle tree (see
:mod:`sentrail.evidence.chain`). ``append`` is one transaction and is durable when it
returns. Appends are idempotent by ``(tenant_id, event_id)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import msgspec

from sentrail.errors import SentrailError


class StoreError(SentrailError):
    """The store cannot do what was asked, or holds data that is not well formed."""


class NewEvent(msgspec.Struct, frozen=True):
    """An event to append; ``payload`` is the exact bytes received (hashed as is)."""

    tenant_id: str
    run_id: str
    event_id: str
    kind: str
    payload: bytes


class StoredEvent(msgspec.Struct, frozen=True):
    """An event as stored. ``payload`` is None once redacted (the digest remains)."""

    seq: int
    tenant_id: str
    run_id: str
    event_id: str
    kind: str
    payload: bytes | None
    payload_sha256: bytes
    prev_hash: bytes
    chain_hash: bytes
    leaf_hash: bytes
    received_at: float


class Appended(msgspec.Struct, frozen=True):
    """The acknowledgement of one event: its seq (the original one for a duplicate)."""

    seq: int
    event_id: str
    duplicate: bool = False


class Checkpoint(msgspec.Struct, frozen=True):
    """A stored signed checkpoint (C2SP signed-note text) of a tenant's log."""

    tenant_id: str
    size: int
    note: str


class Store(Protocol):
    """What every backend provides (all through :class:`sentrail.store.core.LogStore`)."""

    def migrate(self) -> int: ...

    def append(self, events: Sequence[NewEvent]) -> list[Appended]: ...

    def checkpoint(self, tenant: str) -> Checkpoint | None: ...

    def events(
        self, tenant: str, start: int = 0, end: int | None = None
    ) -> Iterator[StoredEvent]: ...

    def run_events(self, tenant: str, run_id: str) -> list[StoredEvent]: ...

    def leaf_hashes(self, tenant: str) -> list[bytes]: ...

    def tenants(self) -> list[str]: ...

    def put_checkpoint(self, tenant: str, size: int, note: str) -> None: ...

    def latest_checkpoint(self, tenant: str) -> Checkpoint | None: ...

    def checkpoints(self, tenant: str) -> list[Checkpoint]: ...

    def put_result(self, tenant: str, run_id: str, result_json: bytes) -> None: ...

    def get_result(self, tenant: str, run_id: str) -> bytes | None: ...

    def close(self) -> None: ...
