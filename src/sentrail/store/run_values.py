"""The value index (schema v4): which run used which value, for cross-run investigation.

One row per (run, step, value) that a run's calls carried — recipients, URLs, hosts,
accounts, paths, commands, and credentials by their SHA-256 only — written when the run is
indexed (:mod:`sentrail.runtime.logged_runs` computes the rows) and dropped when the run is
redacted; the tables are migration 4 in :mod:`.schema`, keyed by (tenant, app, run) since
migration 5. ``run_values_indexed`` records which runs are in the index and under which
trace hash, so a backfill (``sentrail graph --reindex``) does only the runs it lacks.

A run is ``(tenant, app, run_id)`` here as everywhere (two apps may use one run id). Every
read is bounded by tenant, and by app when the caller is bound to one; rows read back are
type-checked like every other record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from sentrail.store.rowcheck import opt_s as _opt_s
from sentrail.store.rowcheck import req_f as _f
from sentrail.store.rowcheck import req_i as _i
from sentrail.store.rowcheck import req_s as _s
from sentrail.store.sql import SqlTx

_IN_CHUNK = 200


class ValueRow(msgspec.Struct, frozen=True):
    tenant_id: str
    app_id: str
    run_id: str
    agent_id: str
    step: int
    kind: str
    value_key: str
    display: str
    field: str
    tool: str | None
    started_at: float
    verdict: str | None = None  # read back from the run's row, when it has one


def put_run_values(
    tx: SqlTx,
    tenant: str,
    app: str,
    run_id: str,
    trace_hash: str,
    rows: Sequence[ValueRow],
    now: float,
) -> None:
    """Replace the index rows of one run (in the caller's transaction)."""
    drop_run_values(tx, tenant, app, run_id)
    if rows:
        tx.cur.executemany(
            tx.q(
                "INSERT INTO run_values (tenant_id, app_id, run_id, agent_id, step, kind, "
                "value_key, display, field, tool, started_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            [
                (
                    tenant,
                    app,
                    run_id,
                    r.agent_id,
                    r.step,
                    r.kind,
                    r.value_key,
                    r.display,
                    r.field,
                    r.tool,
                    r.started_at,
                )
                for r in rows
            ],
        )
    tx.cur.execute(
        tx.q(
            "INSERT INTO run_values_indexed (tenant_id, app_id, run_id, trace_hash, indexed_at) "
            "VALUES (?, ?, ?, ?, ?)"
        ),
        (tenant, app, run_id, trace_hash, now),
    )


def drop_run_values(tx: SqlTx, tenant: str, app: str, run_id: str) -> None:
    """Remove a run from the index (a redacted run's values must not outlive it)."""
    for table in ("run_values", "run_values_indexed"):
        tx.cur.execute(
            tx.q(f"DELETE FROM {table} WHERE tenant_id = ? AND app_id = ? AND run_id = ?"),  # noqa: S608 (fixed names)
            (tenant, app, run_id),
        )


class Unindexed(msgspec.Struct, frozen=True):
    """A run of the ``runs`` table that the value index lacks."""

    run_id: str
    app_id: str
    trace_hash: str
    started_at: float


def runs_to_index(tx: SqlTx, tenant: str) -> list[Unindexed]:
    """The runs of ``tenant`` not in the value index, or in it under another trace hash."""
    rows = tx.all(
        "SELECT r.run_id, r.app_id, r.trace_hash, r.started_at FROM runs r "
        "LEFT JOIN run_values_indexed i ON i.tenant_id = r.tenant_id AND i.app_id = r.app_id "
        "AND i.run_id = r.run_id "
        "WHERE r.tenant_id = ? AND (i.run_id IS NULL OR i.trace_hash <> r.trace_hash) "
        "ORDER BY r.started_at, r.app_id, r.run_id",
        (tenant,),
    )
    return [
        Unindexed(
            _s(r[0], "runs.run_id"),
            _s(r[1], "runs.app_id"),
            _s(r[2], "runs.trace_hash"),
            _f(r[3], "runs.started_at"),
        )
        for r in rows
    ]


def value_rows(
    tx: SqlTx,
    tenant: str,
    keys: Sequence[str],
    *,
    app: str | None = None,
    since: float | None = None,
    limit: int = 1000,
) -> list[ValueRow]:
    """Uses of any of ``keys`` in ``tenant`` (and ``app``), newest first, at most ``limit``."""
    out: list[ValueRow] = []
    for i in range(0, len(keys), _IN_CHUNK):
        chunk = list(keys[i : i + _IN_CHUNK])
        sql = (
            "SELECT v.tenant_id, v.app_id, v.run_id, v.agent_id, v.step, v.kind, v.value_key, "  # noqa: S608 (placeholders only)
            "v.display, v.field, v.tool, v.started_at, r.verdict FROM run_values v "
            "LEFT JOIN runs r ON r.tenant_id = v.tenant_id AND r.app_id = v.app_id "
            "AND r.run_id = v.run_id "
            f"WHERE v.tenant_id = ? AND v.value_key IN ({', '.join('?' * len(chunk))})"
        )
        params: list[object] = [tenant, *chunk]
        if app is not None:
            sql += " AND v.app_id = ?"
            params.append(app)
        if since is not None:
            sql += " AND v.started_at >= ?"
            params.append(since)
        sql += " ORDER BY v.started_at DESC, v.app_id, v.run_id, v.step LIMIT ?"
        params.append(limit + 1)
        out.extend(_row(r) for r in tx.all(sql, params))
    out.sort(key=lambda r: (-r.started_at, r.app_id, r.run_id, r.step))
    return out[: limit + 1]


def _row(r: Sequence[Any]) -> ValueRow:
    return ValueRow(
        tenant_id=_s(r[0], "run_values.tenant_id"),
        app_id=_s(r[1], "run_values.app_id"),
        run_id=_s(r[2], "run_values.run_id"),
        agent_id=_s(r[3], "run_values.agent_id"),
        step=_i(r[4], "run_values.step"),
        kind=_s(r[5], "run_values.kind"),
        value_key=_s(r[6], "run_values.value_key"),
        display=_s(r[7], "run_values.display"),
        field=_s(r[8], "run_values.field"),
        tool=_opt_s(r[9], "run_values.tool"),
        started_at=_f(r[10], "run_values.started_at"),
        verdict=_opt_s(r[11], "runs.verdict"),
    )


def run_policy(tx: SqlTx, tenant: str, app: str, run_id: str) -> tuple[bool, str | None]:
    """Whether the run has an index row, and the policy hash it was indexed with."""
    rows = tx.all(
        "SELECT policy_sha256 FROM runs WHERE tenant_id = ? AND app_id = ? AND run_id = ?",
        (tenant, app, run_id),
    )
    if not rows:
        return False, None
    return True, _opt_s(rows[0][0], "runs.policy_sha256")


def apps_with_runs(tx: SqlTx, tenant: str) -> list[str]:
    """The apps of ``tenant`` that hold runs (for a caller bound to no one app)."""
    rows = tx.all("SELECT DISTINCT app_id FROM runs WHERE tenant_id = ? ORDER BY 1", (tenant,))
    return [_s(r[0], "runs.app_id") for r in rows]
