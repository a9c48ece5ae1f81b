"""Triage in the log: resolving or reopening a finding appends a ``triage`` event.

The ``findings`` table is an index, outside the log: a database editor could mark a
finding resolved and nothing would show it. So every triage change is also a log event of
kind ``triage`` in the finding's run (its chain, the tenant's Merkle tree, the next
checkpoint), whose payload is the canonical JSON (sorted keys, compact, UTF-8) of::

    {"type": "triage", "finding_id": "F-...", "action": "resolve" | "reopen",
     "by": "<who>", "comment": "<why>", "at": "2026-03-05T14:22:01.440Z"}

The event and the index update (resolution columns and audit row) commit in one
transaction. ``log verify --deep`` replays these events: a finding marked resolved with no
triage event saying so is named. Triage events are the store's own records: clients
cannot send them, they are not sealed, and a redaction keeps them.
"""

from __future__ import annotations

import secrets
from typing import Literal

import msgspec

from sentrail.evidence.redaction import iso_time
from sentrail.store.base import TRIAGE_KIND, Appended, NewEvent, StoreError
from sentrail.store.core import LogStore, Tx
from sentrail.store.records import AuditRow, FindingRow, RecordTx, records
from sentrail.store.sql import SqlTx


class TriageRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The payload of a ``triage`` event (see the module docstring)."""

    type: Literal["triage"]
    finding_id: str
    action: Literal["resolve", "reopen"]
    by: str
    comment: str
    at: str

    @property
    def resolved(self) -> bool:
        return self.action == "resolve"


def encode_triage(record: TriageRecord) -> bytes:
    return msgspec.json.encode(record, order="sorted")


def parse_triage(payload: bytes) -> TriageRecord:
    """A ``triage`` payload; StoreError when it is not one."""
    try:
        return msgspec.json.decode(payload, type=TriageRecord)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise StoreError(f"not a triage record: {exc}") from None


def triage_finding(
    store: LogStore,
    tenant: str,
    app: str,
    finding_id: str,
    *,
    resolved: bool,
    by: str,
    comment: str,
    now: float,
) -> tuple[FindingRow, list[AuditRow]] | None:
    """Resolve or reopen a finding of ``app``: the log event and the index change in one
    transaction. None when the app has no such finding."""
    with records(store) as rtx:
        row = rtx.get_finding(tenant, app, finding_id)
    if row is None:
        return None
    record = TriageRecord(
        type="triage",
        finding_id=finding_id,
        action="resolve" if resolved else "reopen",
        by=by,
        comment=comment,
        at=iso_time(now),
    )
    event_id = f"{row.run_id}/{TRIAGE_KIND}/{secrets.token_hex(16)}"

    def index(tx: Tx, _: list[Appended]) -> None:
        if not isinstance(tx, SqlTx):  # pragma: no cover - every backend is SQL
            raise StoreError("this backend has no record tables")
        RecordTx(tx).resolve_finding(tenant, app, finding_id, resolved, by, comment, now)

    event = NewEvent(tenant, app, row.run_id, event_id, TRIAGE_KIND, encode_triage(record))
    store.append_record(event, also=index)
    with records(store) as rtx:
        after = rtx.get_finding(tenant, app, finding_id)
        audit = rtx.audit(tenant, app, finding_id)
    assert after is not None
    return after, audit
