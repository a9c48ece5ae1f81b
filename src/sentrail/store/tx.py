"""What a backend's transaction provides, and the check every appended event passes.

Runs and event ids are ``(app, id)`` pairs: the log is the tenant's, and everything in it
belongs to an app.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sentrail.store.base import (
    RECORD_KINDS,
    Checkpoint,
    InvalidStoreId,
    NewEvent,
    Prior,
    RunKey,
    StoredEvent,
    StoreError,
)

MAX_ID_CHARS = 1024
RunRef = tuple[str, str]  # (app, run_id)


class Tx(Protocol):
    """Row access inside one transaction (or one read snapshot). Runs and event ids are
    ``(app, id)`` pairs: the log is the tenant's, everything in it belongs to an app."""

    def lock_tenant(self, tenant: str) -> None: ...

    def log_size(self, tenant: str) -> int: ...

    def find_events(
        self, tenant: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], Prior]: ...

    def run_heads(self, tenant: str, runs: Sequence[RunRef]) -> dict[RunRef, bytes]: ...

    def run_keys(self, tenant: str, runs: Sequence[RunRef]) -> dict[RunRef, RunKey]: ...

    def insert_run_keys(
        self, tenant: str, keys: Sequence[tuple[str, str, bytes]], now: float
    ) -> None: ...

    def insert_events(self, rows: Sequence[StoredEvent]) -> None: ...

    def leaf_hashes(self, tenant: str, start: int) -> list[bytes]: ...

    def insert_checkpoint(self, tenant: str, size: int, note: str) -> None: ...

    def checkpoints(self, tenant: str, latest_only: bool) -> list[Checkpoint]: ...

    def events(self, tenant: str, start: int, end: int | None, limit: int) -> list[StoredEvent]: ...

    def run_events(self, tenant: str, app: str, run_id: str) -> list[StoredEvent]: ...

    def log_runs(self, tenant: str) -> list[RunRef]: ...

    def tenants(self) -> list[str]: ...

    def put_result(self, tenant: str, app: str, run_id: str, result: bytes) -> None: ...

    def get_result(self, tenant: str, app: str, run_id: str) -> bytes | None: ...


def _bad_id(value: object) -> bool:
    return not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS


def check_event(e: NewEvent, *, record: bool = False) -> None:
    """``e`` is well formed; only the store's own records (``record``) take their kinds."""
    t, a, r, i, k = e.tenant_id, e.app_id, e.run_id, e.event_id, e.kind
    if not (  # the common case without a call per field (this runs for every event)
        type(t) is str
        and type(a) is str
        and type(r) is str
        and type(i) is str
        and type(k) is str
        and 0 < len(t) <= MAX_ID_CHARS
        and 0 < len(a) <= MAX_ID_CHARS
        and 0 < len(r) <= MAX_ID_CHARS
        and 0 < len(i) <= MAX_ID_CHARS
        and 0 < len(k) <= MAX_ID_CHARS
    ):
        for name in ("tenant_id", "app_id", "run_id", "event_id", "kind"):
            if _bad_id(getattr(e, name)):
                raise InvalidStoreId(
                    f"{name} must be a non-empty string of at most {MAX_ID_CHARS} characters"
                )
    if not isinstance(e.payload, bytes):
        raise StoreError("the payload must be bytes", f"event {e.event_id}")
    if k in RECORD_KINDS and not record:  # a client's event under a kind of the store's
        raise InvalidStoreId(f"the kind {k!r} is the store's own", f"event {e.event_id}")
    if record and k not in RECORD_KINDS:
        raise StoreError(f"the kind {k!r} is not one of the store's records", f"event {e.event_id}")
