"""The store side of forensics: a logged run as an investigator needs it, and the value
index kept current.

- :func:`load_run` reads a run back from the tamper-evident log — the trace document (the
  exact stored bytes of a ``trace`` event, or the run folded from its NDJSON events by
  the one fold, :func:`sentrail.runtime.stored.document_of`), the stored result, and the
  payloads of its ``decision`` events — everything bounded by the tenant and the app (a
  run is ``(tenant, app, run_id)``: two apps may use one run id).
- :func:`index_values` writes a run's rows of the value index in the caller's transaction
  (the store writer calls it whenever it indexes a run); :func:`reindex` backfills the runs the
  index lacks (a store that predates schema v4, or runs indexed under another trace).
- :func:`value_uses` answers "which runs used this value?" within one tenant (and app).
"""

from __future__ import annotations

import time

import msgspec

from sentrail.errors import SentrailError
from sentrail.forensics.graph import ValueUse
from sentrail.forensics.values import query_keys, run_values
from sentrail.model.decode import decode_run
from sentrail.model.finding import RunResult
from sentrail.model.trace import Run
from sentrail.runtime.stored import STREAM_KINDS, document_of
from sentrail.store.base import StoredEvent
from sentrail.store.core import LogStore
from sentrail.store.run_values import (
    ValueRow,
    put_run_values,
    run_policy,
    runs_to_index,
    value_rows,
)
from sentrail.store.sql import SqlTx


class LoggedRun(msgspec.Struct):
    """One run read back from the log (``run`` is None when its payloads were erased)."""

    tenant_id: str
    app_id: str
    run_id: str
    run: Run | None
    result: RunResult | None
    trace_bytes: bytes | None  # the exact stored trace document, when it came as one
    decision_payloads: list[bytes]
    seqs: list[int]
    indexed: bool = False  # the run has an index row (it was analysed and indexed)
    policy_sha256: str | None = None


def load_run(store: LogStore, tenant: str, app: str, run_id: str) -> LoggedRun | None:
    """A run of ``tenant``'s ``app`` as stored; None when the log has no event of it."""
    events = store.run_events(tenant, app, run_id)
    if not events:
        return None
    run: Run | None = None
    trace_bytes: bytes | None = None
    stream: list[StoredEvent] = []
    decisions: list[bytes] = []
    for e in events:
        if e.payload is None:
            continue
        if e.kind == "trace":
            try:
                run, trace_bytes = decode_run(e.payload), e.payload
            except SentrailError:
                continue  # a stored payload that no longer decodes is left out, not guessed at
        elif e.kind in STREAM_KINDS:
            stream.append(e)
        elif e.kind == "decision":
            decisions.append(e.payload)
    if run is None and stream:
        folded = document_of(stream).folder  # what no longer decodes is left out
        run = folded.run if folded is not None else None
    raw = store.get_result(tenant, app, run_id)
    result = None
    if raw is not None:
        try:
            result = msgspec.json.decode(raw, type=RunResult)
        except (msgspec.DecodeError, msgspec.ValidationError):
            result = None
    with store.transaction() as tx:
        indexed, policy = run_policy(_sql(tx), tenant, app, run_id)
    seqs = [e.seq for e in events]
    return LoggedRun(
        tenant, app, run_id, run, result, trace_bytes, decisions, seqs, indexed, policy
    )


def run_apps(store: LogStore, tenant: str, run_id: str) -> list[str]:
    """The apps of ``tenant`` whose log holds a run ``run_id`` (a run is ``(tenant, app,
    run_id)``: two apps may use one id), for a caller that names no app."""
    with store.transaction() as tx:
        rows = _sql(tx).all(
            "SELECT DISTINCT app_id FROM events WHERE tenant_id = ? AND run_id = ? ORDER BY 1",
            (tenant, run_id),
        )
    return [str(r[0]) for r in rows]


def value_index_rows(tenant: str, app: str, run: Run, started_at: float) -> list[ValueRow]:
    return [
        ValueRow(
            tenant_id=tenant,
            app_id=app,
            run_id=run.run_id,
            agent_id=run.agent_id,
            step=v.step_index,
            kind=v.kind,
            value_key=v.key,
            display=v.display,
            field=v.field[:200],
            tool=v.tool,
            started_at=started_at,
        )
        for v in run_values(run)
    ]


def index_values(
    tx: SqlTx,
    tenant: str,
    app: str,
    run: Run,
    trace_hash: str,
    started_at: float,
    now: float | None = None,
) -> None:
    """Write ``run``'s rows of the value index in the caller's transaction."""
    rows = value_index_rows(tenant, app, run, started_at)
    put_run_values(
        tx, tenant, app, run.run_id, trace_hash, rows, time.time() if now is None else now
    )


def reindex(store: LogStore, tenant: str) -> int:
    """Index the runs of ``tenant`` that the value index lacks (or holds under another
    trace hash); returns how many were indexed. Redacted runs are left out."""
    with store.transaction() as tx:
        todo = runs_to_index(_sql(tx), tenant)
    done = 0
    for item in todo:
        if store.is_erased(tenant, item.app_id, item.run_id):
            continue
        stored = load_run(store, tenant, item.app_id, item.run_id)
        if stored is None or stored.run is None:
            continue
        with store.transaction(write=True) as tx:
            index_values(
                _sql(tx), tenant, item.app_id, stored.run, item.trace_hash, item.started_at
            )
        done += 1
    return done


def value_uses(
    store: LogStore,
    tenant: str,
    value: str,
    *,
    app: str | None = None,
    since: float | None = None,
    limit: int = 1000,
    exact: tuple[str, str] | None = None,
) -> tuple[list[ValueUse], bool]:
    """Uses of ``value`` in ``tenant`` (and ``app``), newest first; True when cut at ``limit``.
    ``exact``: one (kind, key) pair of the value index instead (a graph's value node)."""
    wanted = [exact] if exact is not None else query_keys(value)
    keys = sorted({k for _, k in wanted})
    with store.transaction() as tx:
        rows = value_rows(_sql(tx), tenant, keys, app=app, since=since, limit=limit)
    pairs = set(wanted)
    rows = [r for r in rows if (r.kind, r.value_key) in pairs]
    uses = [
        ValueUse(
            app_id=r.app_id,
            run_id=r.run_id,
            agent_id=r.agent_id,
            step_index=r.step,
            kind=r.kind,
            key=r.value_key,
            display=r.display,
            field=r.field,
            tool=r.tool,
            started_at=r.started_at,
            verdict=r.verdict,
        )
        for r in rows
    ]
    return uses[:limit], len(uses) > limit


def _sql(tx: object) -> SqlTx:
    if not isinstance(tx, SqlTx):  # pragma: no cover - every backend is SQL
        raise SentrailError("this store has no record tables")
    return tx
