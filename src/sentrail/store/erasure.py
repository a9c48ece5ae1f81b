"""Redaction by key erasure, and retention per tenant.

``redact(tenant, app, run_id, by=, reason=, fields=)`` runs in ONE write transaction that
holds the tenant's lock (a run is ``(tenant, app, run_id)``):

1. read the run's events (payloads opened with the run's key);
2. with ``fields``: compute the redacted view of every JSON payload
   (:mod:`sentrail.store.redact`) and store it in ``events.view``;
3. drop the payloads that are not sealed (``payload = NULL``: they have no key to erase);
4. append a plaintext ``redaction`` event to the run (so it is in the run's hash chain and
   the tenant's Merkle tree) recording when, by whom, why, the fields, the SHA-256 of
   each view and the seqs erased (:mod:`sentrail.evidence.redaction`);
5. erase the run's data key (``dek = NULL``, ``erased_at``, ``erased_by``): every sealed
   payload of the run, wherever a copy of it lies, can no longer be opened;
6. scrub the run's ``findings`` bodies and its ``results`` row (see :class:`.Scrubber`).

Nothing the log commits to changes, so log verification and evidence bundles still verify,
and show what was redacted. A redacted run takes no more events. Redacting a run again
records another redaction event but erases nothing new.

Physical erasure: SQLite runs with ``secure_delete=ON`` (freed cells are zeroed) and the
WAL is checkpointed and truncated after each redaction. PostgreSQL keeps old row versions
(the key before erasure, unsealed payloads) in the table files until they are vacuumed:
run ``VACUUM FULL run_keys`` (and ``events`` when payloads were stored unsealed) for them
to be physically gone; WAL archives and backups keep them until they expire.

Retention: ``set_retention(tenant, days)`` stores the tenant's limit; ``apply_retention``
redacts whole (``by="retention"``) every run whose newest event was received more than
``days`` days ago and that is not erased yet, and deletes its ``steps`` rows. The time
received is covered by each event's leaf (version 2), so a database editor cannot make a
run look older (to have it erased early) or newer (to keep it) without breaking the log.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sentrail.evidence.redaction import REDACTION_KIND, RedactionRecord, encode_record, iso_time
from sentrail.store.base import RECORD_KINDS, NewEvent, Redaction, RetentionDue, StoreError
from sentrail.store.redact import Scrubber, parse_fields, view_of
from sentrail.store.run_values import drop_run_values
from sentrail.store.sql import SqlTx

if TYPE_CHECKING:
    from sentrail.store.core import LogStore, Tx

DAY = 86400.0
MAX_TEXT_CHARS = 1024
MAX_REASON_CHARS = 4096
MAX_RETENTION_DAYS = 36500
RETENTION_BY = "retention"


def _sql(tx: Tx) -> SqlTx:
    if not isinstance(tx, SqlTx):  # pragma: no cover - every backend is SQL
        raise StoreError("this backend cannot redact")
    return tx


def _run(tx: SqlTx, sql: str, params: Sequence[object] = ()) -> None:
    tx.cur.execute(tx.q(sql), params)


def _text(value: object, name: str, limit: int = MAX_TEXT_CHARS) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise StoreError(f"{name} must be a non-empty string of at most {limit} characters")
    return value


def redact(
    store: LogStore,
    tenant: str,
    app: str,
    run_id: str,
    *,
    by: str,
    reason: str,
    fields: Sequence[str] = (),
) -> Redaction:
    """Redact ``run_id`` of ``app`` (see the module docstring); StoreError if it has no
    events."""
    done = _redact(store, tenant, app, run_id, by=by, reason=reason, fields=fields)
    assert done is not None  # only a retention check skips
    return done


def _redact(
    store: LogStore,
    tenant: str,
    app: str,
    run_id: str,
    *,
    by: str,
    reason: str,
    fields: Sequence[str],
    older_than: float | None = None,
) -> Redaction | None:
    _text(tenant, "tenant")
    _text(app, "app")
    _text(run_id, "run_id")
    _text(by, "by")
    _text(reason, "reason", MAX_REASON_CHARS)
    parse_fields(fields)  # refuse a bad spec before taking any lock
    run = (app, run_id)
    with store._tree_lock:
        try:
            with store._write() as tx:
                done = _redact_in(store, tx, tenant, run, by, reason, list(fields), older_than)
        except BaseException:
            store._signed = []
            store._trees.pop(tenant, None)  # the tree cache may hold the rolled-back leaf
            raise
        store._committed([tenant] if done is not None else [])
    if done is not None:
        store._after_erasure()
    return done


def _redact_in(
    store: LogStore,
    tx: Tx,
    tenant: str,
    run: tuple[str, str],
    by: str,
    reason: str,
    fields: list[str],
    older_than: float | None,
) -> Redaction | None:
    sql = _sql(tx)
    specs = parse_fields(fields)
    app, run_id = run
    tx.lock_tenant(tenant)
    events = tx.run_events(tenant, app, run_id)
    if not events:
        raise StoreError(f"no events of run {run_id!r} in app {app!r}", f"tenant {tenant}")
    key = tx.run_keys(tenant, [run]).get(run)
    if older_than is not None and (
        (key is not None and key.erased) or max(e.received_at for e in events) >= older_than
    ):
        return None  # retention: erased meanwhile, or the run received an event since
    now = store.clock()
    views: dict[int, bytes] = {}
    erased: list[int] = []
    found: set[str] = set()
    for e in events:
        if e.kind in RECORD_KINDS or (e.payload is None and e.seal_error is None):
            continue  # the store's own record, or erased already
        erased.append(e.seq)
        if specs and e.payload is not None:
            view, values = view_of(e.payload, specs)
            if view is not None:
                views[e.seq] = view
                found |= values
    digests = {seq: hashlib.sha256(v).hexdigest() for seq, v in views.items()}
    record = RedactionRecord(
        type="redaction",
        run_id=run_id,
        redacted_at=iso_time(now),
        by=by,
        reason=reason,
        fields=fields,
        views={str(seq): d for seq, d in digests.items()},
        erased_seqs=erased,
    )
    if views:
        sql.cur.executemany(
            sql.q("UPDATE events SET view = ? WHERE tenant_id = ? AND seq = ?"),
            [(v, tenant, seq) for seq, v in views.items()],
        )
    _run(
        sql,
        "UPDATE events SET payload = NULL WHERE tenant_id = ? AND app_id = ? AND run_id = ? "
        "AND sealed = 0 AND kind NOT IN (?, ?) AND payload IS NOT NULL",
        (tenant, app, run_id, *sorted(RECORD_KINDS)),
    )
    event_id = f"{run_id}/{REDACTION_KIND}/{secrets.token_hex(16)}"
    new = NewEvent(tenant, app, run_id, event_id, REDACTION_KIND, encode_record(record))
    (ack,) = store._append_tenant(tx, tenant, [new], internal=True)
    if ack.duplicate or ack.conflict:  # pragma: no cover - a random 128-bit id
        raise StoreError("the redaction event id is taken", event_id)
    _run(
        sql,
        "INSERT INTO run_keys (tenant_id, app_id, run_id, dek, created_at, erased_at, erased_by) "
        "VALUES (?, ?, ?, NULL, ?, ?, ?) ON CONFLICT (tenant_id, app_id, run_id) DO UPDATE SET "
        "dek = NULL, erased_at = COALESCE(run_keys.erased_at, excluded.erased_at), "
        "erased_by = COALESCE(run_keys.erased_by, excluded.erased_by)",
        (tenant, app, run_id, now, now, by),
    )
    _scrub(sql, tenant, run, Scrubber(specs, found))
    drop_run_values(sql, tenant, app, run_id)  # the value index holds no value of a redacted run
    if older_than is not None:
        _run(
            sql,
            "DELETE FROM steps WHERE tenant_id = ? AND app_id = ? AND run_id = ?",
            (tenant, app, run_id),
        )
    return Redaction(
        tenant_id=tenant,
        app_id=app,
        run_id=run_id,
        seq=ack.seq,
        event_id=event_id,
        redacted_at=now,
        by=by,
        reason=reason,
        fields=tuple(fields),
        erased_seqs=tuple(erased),
        views=digests,
    )


def _scrub(sql: SqlTx, tenant: str, run: tuple[str, str], scrubber: Scrubber) -> None:
    """Scrub the findings and the result of the run (rows read back are hostile: a value
    is only echoed back as a parameter, and a malformed body is replaced)."""
    app, run_id = run
    rows: list[Any] = sql.all(
        "SELECT finding_id, body FROM findings WHERE tenant_id = ? AND app_id = ? AND run_id = ?",
        (tenant, app, run_id),
    )
    if rows:
        sql.cur.executemany(
            sql.q(
                "UPDATE findings SET body = ? WHERE tenant_id = ? AND app_id = ? AND finding_id = ?"
            ),
            [(scrubber.finding_body(body), tenant, app, fid) for fid, body in rows],
        )
    where = "WHERE tenant_id = ? AND app_id = ? AND run_id = ?"
    results = sql.all(f"SELECT result FROM results {where}", (tenant, app, run_id))  # noqa: S608
    if results:
        _run(
            sql,
            f"UPDATE results SET result = ? {where}",  # noqa: S608 (a constant)
            (scrubber.result_body(results[0][0]), tenant, app, run_id),
        )


# -- retention -----------------------------------------------------------------------------
def _days(value: object, where: str) -> int:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not 1 <= value <= MAX_RETENTION_DAYS
    ):
        raise StoreError(
            f"retention is a whole number of days from 1 to {MAX_RETENTION_DAYS}", where
        )
    return value


def set_retention(store: LogStore, tenant: str, days: int | None) -> None:
    """Keep ``tenant``'s runs for ``days`` after their newest event (None: forever)."""
    _text(tenant, "tenant")
    if days is not None:
        _days(days, f"tenant {tenant}")
    with store._write() as tx:
        _run(
            _sql(tx),
            "INSERT INTO tenants (tenant_id, retention_days, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (tenant_id) DO UPDATE SET retention_days = excluded.retention_days",
            (tenant, days, store.clock()),
        )


def retention(store: LogStore, tenant: str) -> int | None:
    with store._read() as tx:
        rows = _sql(tx).all("SELECT retention_days FROM tenants WHERE tenant_id = ?", (tenant,))
    if not rows or rows[0][0] is None:
        return None
    return _days(rows[0][0], f"tenants row of {tenant!r}")


def retention_due(store: LogStore, now: float, tenant: str | None = None) -> list[RetentionDue]:
    """The runs ``apply_retention(now, tenant)`` would erase, oldest first per tenant."""
    out: list[RetentionDue] = []
    with store._read() as tx:
        sql = _sql(tx)
        query = "SELECT tenant_id, retention_days FROM tenants WHERE retention_days IS NOT NULL"
        params: tuple[object, ...] = ()
        if tenant is not None:
            query += " AND tenant_id = ?"
            params = (tenant,)
        for t, raw_days in sql.all(query + " ORDER BY tenant_id", params):
            t = _text(t, "tenants.tenant_id")
            days = _days(raw_days, f"tenants row of {t!r}")
            rows = sql.all(
                "SELECT e.app_id, e.run_id, MAX(e.received_at) FROM events e "
                "LEFT JOIN run_keys k ON k.tenant_id = e.tenant_id AND k.app_id = e.app_id "
                "AND k.run_id = e.run_id WHERE e.tenant_id = ? AND (k.run_id IS NULL OR "
                "(k.dek IS NOT NULL AND k.erased_at IS NULL)) "
                "GROUP BY e.app_id, e.run_id HAVING MAX(e.received_at) < ? ORDER BY 3, 1, 2",
                (t, now - days * DAY),
            )
            for app, run_id, newest in rows:
                if (
                    not isinstance(app, str)
                    or not isinstance(run_id, str)
                    or not isinstance(newest, int | float)
                ):
                    raise StoreError("malformed events row", f"tenant {t}")
                out.append(RetentionDue(t, app, run_id, days, float(newest)))
    return out


def apply_retention(store: LogStore, now: float, tenant: str | None = None) -> list[Redaction]:
    """Redact every run past its tenant's retention (re-checked under the tenant lock)."""
    done: list[Redaction] = []
    for due in retention_due(store, now, tenant):
        redaction = _redact(
            store,
            due.tenant_id,
            due.app_id,
            due.run_id,
            by=RETENTION_BY,
            reason=f"retention {due.days} days",
            fields=(),
            older_than=now - due.days * DAY,
        )
        if redaction is not None:
            done.append(redaction)
    return done
