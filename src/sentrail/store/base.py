"""The ``Store`` Protocol: a per-tenant, append-only, tamper-evident event log.

Every accepted event gets the next sequence number of its tenant's log (0, 1, 2, ...),
a link in its run's hash chain and a leaf in the tenant's RFC 9162 Merkle tree (see
:mod:`sentrail.evidence.chain`). ``append`` is one transaction and is durable when it
returns.

Everything but the log itself is scoped by tenant AND app: a run is ``(tenant, app,
run_id)`` (two apps may use the same run id: they are two runs, two chains, two data
keys), and appends are idempotent by ``(tenant, app, event_id)``: the same event again is
a duplicate, an event id reused with other content is an :class:`EventConflict`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple, Protocol

import msgspec

from sentrail.errors import InputError, SentrailError
from sentrail.evidence.bundle import EventRecord
from sentrail.evidence.redaction import REDACTION_KIND

TRIAGE_KIND = "triage"
# The store's own records: appended by the store (never by a client), never sealed, kept
# by a redaction (they say who did what to the run, not what the agent did).
RECORD_KINDS = frozenset({REDACTION_KIND, TRIAGE_KIND})


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


class EventConflict(StoreRefusal):
    """An event id of the app was already stored with other content (run, kind or bytes):
    the same id must mean the same event. A permanent error of the request (HTTP 409
    ``event-conflict``), never a silent duplicate."""

    @classmethod
    def of(cls, tenant: str, app: str, event_id: str, seq: int) -> EventConflict:
        return cls(
            f"event id {event_id!r} is already stored (seq {seq}) with different content: "
            "an event id names one event; send the same bytes again or use a new id",
            f"tenant {tenant}: app {app}",
        )


class NewEvent(msgspec.Struct, frozen=True):
    """An event to append; ``payload`` is the exact bytes received (hashed as is)."""

    tenant_id: str
    app_id: str
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
    app_id: str
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
    leaf_version: int = 2

    def record(self) -> EventRecord:
        """The event as an evidence bundle carries it."""
        return EventRecord(
            self.seq,
            self.run_id,
            self.event_id,
            self.kind,
            self.payload,
            self.payload_sha256,
            self.prev_hash,
            self.chain_hash,
            self.view,
            self.app_id,
            self.received_at,
            self.sealed,
            self.leaf_version,
        )


class Appended(msgspec.Struct, frozen=True):
    """The acknowledgement of one event: its seq (the original one for a duplicate, and
    for a conflict when the caller asked for conflicts to be reported, not raised)."""

    seq: int
    event_id: str
    duplicate: bool = False
    conflict: bool = False


class Prior(NamedTuple):
    """What decides whether an event id seen again is a duplicate or a conflict."""

    seq: int
    run_id: str
    kind: str
    payload_sha256: bytes


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
    app_id: str
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
    app_id: str
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

    def run_events(self, tenant: str, app: str, run_id: str) -> list[StoredEvent]: ...

    def leaf_hashes(self, tenant: str) -> list[bytes]: ...

    def tenants(self) -> list[str]: ...

    def put_checkpoint(self, tenant: str, size: int, note: str) -> None: ...

    def latest_checkpoint(self, tenant: str) -> Checkpoint | None: ...

    def checkpoints(self, tenant: str) -> list[Checkpoint]: ...

    def put_result(self, tenant: str, app: str, run_id: str, result_json: bytes) -> None: ...

    def get_result(self, tenant: str, app: str, run_id: str) -> bytes | None: ...

    def redact(
        self,
        tenant: str,
        app: str,
        run_id: str,
        *,
        by: str,
        reason: str,
        fields: Sequence[str] = (),
    ) -> Redaction: ...

    def is_erased(self, tenant: str, app: str, run_id: str) -> bool: ...

    def set_retention(self, tenant: str, days: int | None) -> None: ...

    def retention(self, tenant: str) -> int | None: ...

    def retention_due(
        self, now: float | None = None, tenant: str | None = None
    ) -> list[RetentionDue]: ...

    def apply_retention(
        self, now: float | None = None, tenant: str | None = None
    ) -> list[Redaction]: ...

    def close(self) -> None: ...
