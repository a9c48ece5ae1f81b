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

from sentrail.errors import InputError, SentrailError


class StoreError(SentrailError):
    """The store cannot do what was asked, or holds data that is not well formed."""


class StoreRefusal(StoreError, InputError):
    """The store refuses what was asked because of what was asked, not because of its
    state: sending it again unchanged fails the same way. Callers treat it as input
    (the service answers 4xx naming the problem, never "retry"; ``ingest`` reports the
    file and goes on); every other StoreError is a failure of the store itself."""


class InvalidStoreId(StoreRefusal):
    """A tenant, run or event id (or an event kind) that is empty, too long or reserved."""


class RunRedacted(StoreRefusal):
    """An event for a run whose data key was erased: a redacted run takes no more events."""


class UnstorableValue(StoreRefusal):
    """A value the backend cannot hold as sent (PostgreSQL: a NUL character in text, a
    number out of its column's range): the database's data exceptions, SQLSTATE class 22."""


class EventIdConflict(StoreRefusal):
    """An event id already stored with other bytes: the same id must mean the same event."""


class NewEvent(msgspec.Struct, frozen=True):
    """An event to append; ``payload`` is the exact bytes received (hashed as is)."""

    tenant_id: str
    run_id: str
    event_id: str
    kind: str
    payload: bytes


class StoredEvent(msgspec.Struct, frozen=True):
    """An event as stored. ``payload`` is None once redacted (the digest remains).

    ``sealed``: the payload is encrypted at rest under its run's data key (reads return
    the plaintext while the key exists). ``view``: the redacted copy kept when fields of
    the run were redacted. ``seal_error``: why a sealed payload could not be opened (it
    does not authenticate as this event's: tampering); ``payload`` is then None.
    """

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
    sealed: bool = False
    view: bytes | None = None
    seal_error: str | None = None


class Appended(msgspec.Struct, frozen=True):
    """The acknowledgement of one event: its seq (the original one for a duplicate)."""

    seq: int
    event_id: str
    duplicate: bool = False


class RunKey(msgspec.Struct, frozen=True):
    """A run's data key: ``dek`` is None once erased (then ``erased_at`` is set)."""

    dek: bytes | None
    erased_at: float | None = None

    @property
    def erased(self) -> bool:
        return self.dek is None or self.erased_at is not None


class Redaction(msgspec.Struct, frozen=True):
    """What one redaction did: the ``redaction`` event it appended (``seq``, ``event_id``),
    the seqs whose payloads it erased and the SHA-256 (hex) of each view it kept."""

    tenant_id: str
    run_id: str
    seq: int
    event_id: str
    redacted_at: float
    by: str
    reason: str
    fields: tuple[str, ...]
    erased_seqs: tuple[int, ...]
    views: dict[int, str]


class RetentionDue(msgspec.Struct, frozen=True):
    """A run that retention would erase: its newest event is older than the tenant's limit."""

    tenant_id: str
    run_id: str
    days: int
    newest_at: float


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

    def redact(
        self, tenant: str, run_id: str, *, by: str, reason: str, fields: Sequence[str] = ()
    ) -> Redaction: ...

    def is_erased(self, tenant: str, run_id: str) -> bool: ...

    def set_retention(self, tenant: str, days: int | None) -> None: ...

    def retention(self, tenant: str) -> int | None: ...

    def retention_due(
        self, now: float | None = None, tenant: str | None = None
    ) -> list[RetentionDue]: ...

    def apply_retention(
        self, now: float | None = None, tenant: str | None = None
    ) -> list[Redaction]: ...

    def close(self) -> None: ...
