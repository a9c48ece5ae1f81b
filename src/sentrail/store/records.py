"""The query side of the store: tenants, apps, API keys, runs, steps, findings, audit.

The tamper-evident log (:mod:`sentrail.store.core`) is the record of what was received;
these tables are what the API and the dashboard query (indexes in :mod:`.sql`, schema v2).
Every row read back is type-checked: the database is not trusted to hold well-formed rows.

Pagination is by keyset, never by offset: a cursor is the (started_at, run_id) of the
last item of a page, so pages stay stable while runs keep arriving.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec

from sentrail.store.admin_records import AdminRecords
from sentrail.store.base import StoreError
from sentrail.store.core import LogStore
from sentrail.store.enforcement_records import EnforcementRecords
from sentrail.store.finding_records import AuditRow, FindingRecords
from sentrail.store.rowcheck import opt_f as _opt_f
from sentrail.store.rowcheck import opt_s as _opt_s
from sentrail.store.rowcheck import req_b as _b
from sentrail.store.rowcheck import req_f as _f
from sentrail.store.rowcheck import req_i as _i
from sentrail.store.rowcheck import req_s as _s
from sentrail.store.sql import SqlTx

__all__ = [
    "AuditRow",
    "FindingFilter",
    "FindingRow",
    "RecordTx",
    "RunFilter",
    "RunRow",
    "StepRow",
    "decode_cursor",
    "encode_cursor",
    "records",
]


class RunRow(msgspec.Struct, frozen=True):
    tenant_id: str
    run_id: str
    app_id: str
    trace_hash: str
    agent_id: str
    status: str  # executed | blocked | pending_approval | running
    verdict: str
    risk_score: int
    blocked_by: str | None
    duration_ms: int | None
    started_at: float
    updated_at: float
    steps: int
    findings: int
    counts: dict[str, int]  # findings by severity
    policy_sha256: str | None = None


class StepRow(msgspec.Struct, frozen=True):
    idx: int
    action: str
    tool: str | None
    status: str | None
    ts: str | None
    permissions: list[str]


class FindingRow(msgspec.Struct, frozen=True):
    tenant_id: str
    finding_id: str
    app_id: str
    run_id: str
    category: str
    severity: str
    severity_rank: int
    rule_id: str
    step: int | None
    resolved: bool
    resolved_at: float | None
    resolved_by: str | None
    created_at: float
    body: bytes  # msgspec JSON of sentrail.model.finding.Finding


class RunFilter(msgspec.Struct, frozen=True):
    status: str | None = None
    agent: str | None = None
    verdict: str | None = None
    since: float | None = None
    until: float | None = None


class FindingFilter(msgspec.Struct, frozen=True):
    category: str | None = None
    severity: str | None = None
    resolved: bool | None = None
    run_id: str | None = None


_RUN_COLS = (
    "tenant_id, run_id, app_id, trace_hash, agent_id, status, verdict, risk_score, "
    "blocked_by, duration_ms, started_at, updated_at, steps, findings, counts, policy_sha256"
)
_FINDING_COLS = (
    "tenant_id, finding_id, app_id, run_id, category, severity, severity_rank, rule_id, "
    "step, resolved, resolved_at, resolved_by, created_at, body"
)


def _run(row: Sequence[Any]) -> RunRow:
    try:
        counts = msgspec.json.decode(_s(row[14], "runs.counts"), type=dict[str, int])
    except msgspec.ValidationError as exc:
        raise StoreError(f"malformed row: runs.counts: {exc}") from None
    return RunRow(
        tenant_id=_s(row[0], "runs.tenant_id"),
        run_id=_s(row[1], "runs.run_id"),
        app_id=_s(row[2], "runs.app_id"),
        trace_hash=_s(row[3], "runs.trace_hash"),
        agent_id=_s(row[4], "runs.agent_id"),
        status=_s(row[5], "runs.status"),
        verdict=_s(row[6], "runs.verdict"),
        risk_score=_i(row[7], "runs.risk_score"),
        blocked_by=_opt_s(row[8], "runs.blocked_by"),
        duration_ms=None if row[9] is None else _i(row[9], "runs.duration_ms"),
        started_at=_f(row[10], "runs.started_at"),
        updated_at=_f(row[11], "runs.updated_at"),
        steps=_i(row[12], "runs.steps"),
        findings=_i(row[13], "runs.findings"),
        counts=counts,
        policy_sha256=_opt_s(row[15], "runs.policy_sha256"),
    )


def _finding(row: Sequence[Any]) -> FindingRow:
    return FindingRow(
        tenant_id=_s(row[0], "findings.tenant_id"),
        finding_id=_s(row[1], "findings.finding_id"),
        app_id=_s(row[2], "findings.app_id"),
        run_id=_s(row[3], "findings.run_id"),
        category=_s(row[4], "findings.category"),
        severity=_s(row[5], "findings.severity"),
        severity_rank=_i(row[6], "findings.severity_rank"),
        rule_id=_s(row[7], "findings.rule_id"),
        step=None if row[8] is None else _i(row[8], "findings.step"),
        resolved=bool(_i(int(row[9]) if isinstance(row[9], bool) else row[9], "resolved")),
        resolved_at=_opt_f(row[10], "findings.resolved_at"),
        resolved_by=_opt_s(row[11], "findings.resolved_by"),
        created_at=_f(row[12], "findings.created_at"),
        body=_b(row[13], "findings.body"),
    )


def encode_cursor(started_at: float, run_id: str) -> str:
    raw = msgspec.json.encode([started_at, run_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The position a cursor names; a malformed cursor is a ValueError."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        started_at, run_id = msgspec.json.decode(raw, type=tuple[float, str])
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise ValueError(f"not a cursor from this API: {exc}") from None
    return started_at, run_id


class RecordTx(AdminRecords, EnforcementRecords, FindingRecords):
    """Record reads and writes inside one transaction of the store."""

    def __init__(self, tx: SqlTx) -> None:
        self.tx = tx

    def _exec(self, sql: str, params: Sequence[object]) -> None:
        """A statement that returns no rows (DELETE, UPDATE without RETURNING)."""
        self.tx.cur.execute(self.tx.q(sql), params)

    # -- runs, steps, findings ------------------------------------------------------------
    def put_run(self, run: RunRow, steps: Sequence[StepRow] | None) -> None:
        """Insert or replace a run's row (and, when given, all its step rows)."""
        key = (run.tenant_id, run.app_id, run.run_id)
        self._exec("DELETE FROM runs WHERE tenant_id = ? AND app_id = ? AND run_id = ?", key)
        self.tx.all(
            f"INSERT INTO runs ({_RUN_COLS}) VALUES "  # noqa: S608
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING run_id",
            (
                run.tenant_id,
                run.run_id,
                run.app_id,
                run.trace_hash,
                run.agent_id,
                run.status,
                run.verdict,
                run.risk_score,
                run.blocked_by,
                run.duration_ms,
                run.started_at,
                run.updated_at,
                run.steps,
                run.findings,
                msgspec.json.encode(run.counts).decode(),
                run.policy_sha256,
            ),
        )
        if steps is None:
            return
        self._exec("DELETE FROM steps WHERE tenant_id = ? AND app_id = ? AND run_id = ?", key)
        if steps:
            self.tx.cur.executemany(
                self.tx.q(
                    "INSERT INTO steps (tenant_id, app_id, run_id, idx, action, tool, status, "
                    "ts, permissions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                [
                    (
                        run.tenant_id,
                        run.app_id,
                        run.run_id,
                        s.idx,
                        s.action,
                        s.tool,
                        s.status,
                        s.ts,
                        ",".join(s.permissions),
                    )
                    for s in steps
                ],
            )

    def put_findings(self, rows: Iterable[FindingRow]) -> None:
        """Store findings (each row names its tenant, app and run); a finding already
        stored keeps its resolution status."""
        sql = self.tx.q(
            f"INSERT INTO findings ({_FINDING_COLS}) VALUES "  # noqa: S608
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (tenant_id, app_id, finding_id) DO UPDATE SET body = excluded.body, "
            "severity = excluded.severity, severity_rank = excluded.severity_rank"
        )
        self.tx.cur.executemany(
            sql,
            [
                (
                    f.tenant_id,
                    f.finding_id,
                    f.app_id,
                    f.run_id,
                    f.category,
                    f.severity,
                    f.severity_rank,
                    f.rule_id,
                    f.step,
                    int(f.resolved),
                    f.resolved_at,
                    f.resolved_by,
                    f.created_at,
                    f.body,
                )
                for f in rows
            ],
        )

    def get_run(self, tenant: str, app: str, run_id: str) -> RunRow | None:
        rows = self.tx.all(
            f"SELECT {_RUN_COLS} FROM runs WHERE tenant_id = ? AND app_id = ? AND run_id = ?",  # noqa: S608
            (tenant, app, run_id),
        )
        return _run(rows[0]) if rows else None

    def run_by_hash(self, tenant: str, app: str, trace_hash: str) -> RunRow | None:
        rows = self.tx.all(
            f"SELECT {_RUN_COLS} FROM runs WHERE tenant_id = ? AND app_id = ? "  # noqa: S608
            "AND trace_hash = ?",
            (tenant, app, trace_hash),
        )
        return _run(rows[0]) if rows else None

    def list_runs(
        self,
        tenant: str,
        app: str,
        flt: RunFilter,
        limit: int,
        after: tuple[float, str] | None = None,
    ) -> list[RunRow]:
        """Newest first; ``after`` is the (started_at, run_id) of the previous page's last."""
        sql = f"SELECT {_RUN_COLS} FROM runs WHERE tenant_id = ? AND app_id = ?"  # noqa: S608
        params: list[object] = [tenant, app]
        for column, value in (
            ("status", flt.status),
            ("agent_id", flt.agent),
            ("verdict", flt.verdict),
        ):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        if flt.since is not None:
            sql += " AND started_at >= ?"
            params.append(flt.since)
        if flt.until is not None:
            sql += " AND started_at < ?"
            params.append(flt.until)
        if after is not None:
            sql += " AND (started_at < ? OR (started_at = ? AND run_id < ?))"
            params.extend((after[0], after[0], after[1]))
        sql += " ORDER BY started_at DESC, run_id DESC LIMIT ?"
        params.append(limit)
        return [_run(r) for r in self.tx.all(sql, params)]

    def run_statuses(self, tenant: str, app: str, run_ids: Sequence[str]) -> dict[str, str]:
        """The index status of those of ``app``'s ``run_ids`` that have a run row."""
        out: dict[str, str] = {}
        ids = list(dict.fromkeys(run_ids))
        for k in range(0, len(ids), 500):
            chunk = ids[k : k + 500]
            marks = ", ".join("?" * len(chunk))
            rows = self.tx.all(
                f"SELECT run_id, status FROM runs WHERE tenant_id = ? AND app_id = ? "  # noqa: S608
                f"AND run_id IN ({marks})",
                (tenant, app, *chunk),
            )
            for r in rows:
                out[_s(r[0], "runs.run_id")] = _s(r[1], "runs.status")
        return out

    def steps(self, tenant: str, app: str, run_id: str) -> list[StepRow]:
        rows = self.tx.all(
            "SELECT idx, action, tool, status, ts, permissions FROM steps "
            "WHERE tenant_id = ? AND app_id = ? AND run_id = ? ORDER BY idx",
            (tenant, app, run_id),
        )
        return [
            StepRow(
                idx=_i(r[0], "steps.idx"),
                action=_s(r[1], "steps.action"),
                tool=_opt_s(r[2], "steps.tool"),
                status=_opt_s(r[3], "steps.status"),
                ts=_opt_s(r[4], "steps.ts"),
                permissions=[p for p in _s(r[5], "steps.permissions").split(",") if p],
            )
            for r in rows
        ]

    def list_findings(
        self, tenant: str, app: str, flt: FindingFilter, limit: int, after: str | None = None
    ) -> list[FindingRow]:
        sql = f"SELECT {_FINDING_COLS} FROM findings WHERE tenant_id = ? AND app_id = ?"  # noqa: S608
        params: list[object] = [tenant, app]
        for column, value in (
            ("category", flt.category),
            ("severity", flt.severity),
            ("run_id", flt.run_id),
        ):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        if flt.resolved is not None:
            sql += " AND resolved = ?"
            params.append(int(flt.resolved))
        if after is not None:
            sql += " AND finding_id > ?"
            params.append(after)
        sql += " ORDER BY finding_id LIMIT ?"
        params.append(limit)
        return [_finding(r) for r in self.tx.all(sql, params)]

    def finding_ids(self, tenant: str, app: str, run_id: str) -> set[str]:
        rows = self.tx.all(
            "SELECT finding_id FROM findings WHERE tenant_id = ? AND app_id = ? AND run_id = ?",
            (tenant, app, run_id),
        )
        return {_s(r[0], "findings.finding_id") for r in rows}

    def get_finding(self, tenant: str, app: str, finding_id: str) -> FindingRow | None:
        rows = self.tx.all(
            f"SELECT {_FINDING_COLS} FROM findings "  # noqa: S608
            "WHERE tenant_id = ? AND app_id = ? AND finding_id = ?",
            (tenant, app, finding_id),
        )
        return _finding(rows[0]) if rows else None

    def runs_of(self, tenant: str) -> list[RunRow]:
        """Every run row of ``tenant`` (all apps), for an audit of the index."""
        rows = self.tx.all(
            f"SELECT {_RUN_COLS} FROM runs WHERE tenant_id = ? ORDER BY app_id, run_id",  # noqa: S608
            (tenant,),
        )
        return [_run(r) for r in rows]

    def findings_of(self, tenant: str) -> list[FindingRow]:
        """Every finding row of ``tenant`` (all apps), for an audit of the index."""
        rows = self.tx.all(
            f"SELECT {_FINDING_COLS} FROM findings WHERE tenant_id = ? "  # noqa: S608
            "ORDER BY app_id, run_id, finding_id",
            (tenant,),
        )
        return [_finding(r) for r in rows]


@contextmanager
def records(store: LogStore, *, write: bool = False) -> Iterator[RecordTx]:
    """A record transaction on ``store`` (committed on exit when ``write``)."""
    with store.transaction(write=write) as tx:
        if not isinstance(tx, SqlTx):  # pragma: no cover - every backend is SQL
            raise StoreError("this backend has no record tables")
        yield RecordTx(tx)
