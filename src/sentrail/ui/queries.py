"""The dashboard's read queries over the record tables (runs, steps, findings, approvals).

They live here, not in :mod:`sentrail.store.records`, because only the dashboard asks them;
they run inside a :class:`~sentrail.store.records.RecordTx` and read its type-checked rows.
Every query is bounded by tenant AND app: the dashboard never relies on the caller to
filter afterwards. Aggregates are computed in SQL so that the fleet overview of 10,000
runs reads a few dozen rows, not 10,000.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import msgspec

from sentrail.store.records import FindingRow, RecordTx, RunFilter
from sentrail.store.rowcheck import opt_f, opt_s, req_b
from sentrail.store.rowcheck import req_f as _f
from sentrail.store.rowcheck import req_i as _i
from sentrail.store.rowcheck import req_s as _s

DAY = 86_400
ESCALATION = "permission_escalation"


class FeedFilter(msgspec.Struct, frozen=True):
    """The anomaly feed's filters (each optional)."""

    agent: str | None = None
    category: str | None = None
    severity: str | None = None
    resolved: bool | None = None
    since: float | None = None
    until: float | None = None


class FeedItem(msgspec.Struct, frozen=True):
    """A finding with the run it belongs to (the feed links each entry to its step)."""

    finding: FindingRow
    agent_id: str
    trace_hash: str
    started_at: float


class FleetCounts(msgspec.Struct, frozen=True):
    runs: int
    by_verdict: dict[str, int]
    by_status: dict[str, int]
    agents: int


def _conditions(terms: Sequence[tuple[str, str, object]]) -> tuple[str, list[object]]:
    """``AND column op ?`` for each (column, op, value) whose value is not None."""
    sql, params = "", []
    for column, op, value in terms:
        if value is not None:
            sql += f" AND {column} {op} ?"
            params.append(value)
    return sql, params


def _run_where(tenant: str, app: str, flt: RunFilter) -> tuple[str, list[object]]:
    extra, params = _conditions(
        [
            ("status", "=", flt.status),
            ("agent_id", "=", flt.agent),
            ("verdict", "=", flt.verdict),
            ("started_at", ">=", flt.since),
            ("started_at", "<", flt.until),
        ]
    )
    return "tenant_id = ? AND app_id = ?" + extra, [tenant, app, *params]


def fleet_counts(rtx: RecordTx, tenant: str, app: str, flt: RunFilter) -> FleetCounts:
    """Runs by verdict and by status, and how many agents, under the run list's filters."""
    where, params = _run_where(tenant, app, flt)
    rows = rtx.tx.all(
        f"SELECT verdict, status, COUNT(*) FROM runs WHERE {where} GROUP BY verdict, status",  # noqa: S608
        params,
    )
    by_verdict: Counter[str] = Counter()
    by_status: Counter[str] = Counter()
    for verdict, status, n in rows:
        count = _i(n, "runs.count")
        by_verdict[_s(verdict, "runs.verdict")] += count
        by_status[_s(status, "runs.status")] += count
    agents = rtx.tx.all(f"SELECT COUNT(DISTINCT agent_id) FROM runs WHERE {where}", params)  # noqa: S608
    return FleetCounts(
        runs=sum(by_verdict.values()),
        by_verdict=dict(by_verdict),
        by_status=dict(by_status),
        agents=_i(agents[0][0], "runs.agents") if agents else 0,
    )


def _day_expr(rtx: RecordTx, column: str) -> str:
    """The UTC day number of an epoch column: SQLite truncates a positive CAST, PostgreSQL
    rounds it, so each dialect gets the expression that floors."""
    if rtx.tx.ph == "?":
        return f"CAST({column} / {DAY} AS INTEGER)"
    return f"CAST(FLOOR({column} / {DAY}) AS BIGINT)"


def findings_per_day(
    rtx: RecordTx, tenant: str, app: str, since: float, until: float
) -> dict[int, dict[str, int]]:
    """Findings of runs started in [since, until), by the run's UTC day and severity."""
    day = _day_expr(rtx, "r.started_at")
    rows = rtx.tx.all(
        f"SELECT {day}, f.severity, COUNT(*) FROM findings f CROSS JOIN runs r "  # noqa: S608
        "WHERE r.tenant_id = f.tenant_id AND r.run_id = f.run_id "
        "AND f.tenant_id = ? AND f.app_id = ? AND r.app_id = ? "
        "AND r.started_at >= ? AND r.started_at < ? GROUP BY 1, f.severity",
        (tenant, app, app, since, until),
    )
    out: dict[int, dict[str, int]] = {}
    for d, severity, n in rows:
        out.setdefault(_i(d, "findings.day"), {})[_s(severity, "findings.severity")] = _i(
            n, "findings.count"
        )
    return out


_FEED_COLS = (
    "f.finding_id, f.app_id, f.run_id, f.category, f.severity, f.severity_rank, f.rule_id, "
    "f.step, f.resolved, f.resolved_at, f.resolved_by, f.created_at, f.body, "
    "r.agent_id, r.trace_hash, r.started_at, f.tenant_id"
)


def _feed_item(r: Sequence[Any]) -> FeedItem:
    resolved = r[8]
    if isinstance(resolved, bool):
        resolved = int(resolved)
    finding = FindingRow(
        tenant_id=_s(r[16], "findings.tenant_id"),
        finding_id=_s(r[0], "findings.finding_id"),
        app_id=_s(r[1], "findings.app_id"),
        run_id=_s(r[2], "findings.run_id"),
        category=_s(r[3], "findings.category"),
        severity=_s(r[4], "findings.severity"),
        severity_rank=_i(r[5], "findings.severity_rank"),
        rule_id=_s(r[6], "findings.rule_id"),
        step=None if r[7] is None else _i(r[7], "findings.step"),
        resolved=bool(_i(resolved, "findings.resolved")),
        resolved_at=opt_f(r[9], "findings.resolved_at"),
        resolved_by=opt_s(r[10], "findings.resolved_by"),
        created_at=_f(r[11], "findings.created_at"),
        body=req_b(r[12], "findings.body"),
    )
    return FeedItem(
        finding=finding,
        agent_id=_s(r[13], "runs.agent_id"),
        trace_hash=_s(r[14], "runs.trace_hash"),
        started_at=_f(r[15], "runs.started_at"),
    )


def anomaly_feed(
    rtx: RecordTx,
    tenant: str,
    app: str,
    flt: FeedFilter,
    limit: int,
    after: tuple[float, str] | None = None,
) -> list[FeedItem]:
    """Findings (flagged steps) newest run first, keyset-paged by (run start, finding id)."""
    sql = (
        f"SELECT {_FEED_COLS} FROM findings f "  # noqa: S608
        "CROSS JOIN runs r WHERE r.tenant_id = f.tenant_id AND r.run_id = f.run_id "
        "AND f.tenant_id = ? AND f.app_id = ? AND r.app_id = ?"
    )
    extra, params = _conditions(
        [
            ("r.agent_id", "=", flt.agent),
            ("f.category", "=", flt.category),
            ("f.severity", "=", flt.severity),
            ("f.resolved", "=", None if flt.resolved is None else int(flt.resolved)),
            ("r.started_at", ">=", flt.since),
            ("r.started_at", "<", flt.until),
        ]
    )
    sql += extra
    params = [tenant, app, app, *params]
    if after is not None:
        sql += " AND (r.started_at < ? OR (r.started_at = ? AND f.finding_id < ?))"
        params.extend((after[0], after[0], after[1]))
    sql += " ORDER BY r.started_at DESC, f.finding_id DESC LIMIT ?"
    params.append(limit)
    return [_feed_item(r) for r in rtx.tx.all(sql, params)]


def findings_created_after(
    rtx: RecordTx, tenant: str, app: str, after: float, limit: int = 100
) -> list[FeedItem]:
    """Findings stored after ``after`` (the live feed's poll), oldest first."""
    rows = rtx.tx.all(
        f"SELECT {_FEED_COLS} FROM findings f "  # noqa: S608
        "CROSS JOIN runs r WHERE r.tenant_id = f.tenant_id AND r.run_id = f.run_id "
        "AND f.tenant_id = ? AND f.app_id = ? AND r.app_id = ? AND f.created_at > ? "
        "ORDER BY f.created_at, f.finding_id LIMIT ?",
        (tenant, app, app, after, limit),
    )
    return [_feed_item(r) for r in rows]


def feed_agents(rtx: RecordTx, tenant: str, app: str, limit: int = 500) -> list[str]:
    """Agent ids with runs in the app (the filters' choices)."""
    rows = rtx.tx.all(
        "SELECT DISTINCT agent_id FROM runs WHERE tenant_id = ? AND app_id = ? "
        "ORDER BY agent_id LIMIT ?",
        (tenant, app, limit),
    )
    return [_s(r[0], "runs.agent_id") for r in rows]


def permission_uses(
    rtx: RecordTx, tenant: str, app: str, since: float, until: float
) -> dict[str, Counter[str]]:
    """Per agent, how many steps used each permission in runs started in [since, until)."""
    rows = rtx.tx.all(
        "SELECT r.agent_id, s.permissions, COUNT(*) FROM runs r CROSS JOIN steps s "
        "WHERE s.tenant_id = r.tenant_id AND s.app_id = r.app_id AND s.run_id = r.run_id "
        "AND r.tenant_id = ? AND r.app_id = ? AND r.started_at >= ? AND r.started_at < ? "
        "AND s.permissions <> '' GROUP BY r.agent_id, s.permissions",
        (tenant, app, since, until),
    )
    out: dict[str, Counter[str]] = {}
    for agent, perms, n in rows:  # a step's permissions are stored comma-joined
        counter = out.setdefault(_s(agent, "runs.agent_id"), Counter())
        for p in _s(perms, "steps.permissions").split(","):
            if p:
                counter[p] += _i(n, "steps.count")
    return out


def escalations(
    rtx: RecordTx, tenant: str, app: str, since: float, until: float, limit: int = 50_000
) -> dict[str, dict[str, set[str]]]:
    """Per agent and permission, the runs in which it was used outside the boundary."""
    rows = rtx.tx.all(
        "SELECT r.agent_id, f.run_id, f.body FROM findings f CROSS JOIN runs r "
        "WHERE r.tenant_id = f.tenant_id AND r.run_id = f.run_id AND f.tenant_id = ? "
        "AND f.app_id = ? AND r.app_id = ? AND f.category = ? "
        "AND r.started_at >= ? AND r.started_at < ? LIMIT ?",
        (tenant, app, app, ESCALATION, since, until, limit),
    )
    out: dict[str, dict[str, set[str]]] = {}
    for agent, run_id, body in rows:
        raw = bytes(body) if isinstance(body, memoryview | bytearray) else body
        try:
            evidence = msgspec.json.decode(raw, type=dict[str, Any]).get("evidence", {})
        except (msgspec.DecodeError, TypeError):
            continue
        perm = evidence.get("permission") if isinstance(evidence, dict) else None
        if isinstance(perm, str) and perm:
            by_perm = out.setdefault(_s(agent, "runs.agent_id"), {})
            by_perm.setdefault(perm, set()).add(_s(run_id, "findings.run_id"))
    return out


def latest_runs_by_agent(
    rtx: RecordTx, tenant: str, app: str, since: float, until: float, limit: int = 200
) -> dict[str, str]:
    """Each agent's newest run in the window (run id): where its current grant is read."""
    rows = rtx.tx.all(
        "SELECT r.agent_id, r.run_id FROM runs r WHERE r.tenant_id = ? AND r.app_id = ? "
        "AND r.started_at >= ? AND r.started_at < ? AND r.started_at = ("
        "SELECT MAX(x.started_at) FROM runs x WHERE x.tenant_id = r.tenant_id "
        "AND x.app_id = r.app_id AND x.agent_id = r.agent_id "
        "AND x.started_at >= ? AND x.started_at < ?) ORDER BY r.agent_id LIMIT ?",
        (tenant, app, since, until, since, until, limit),
    )
    return {_s(a, "runs.agent_id"): _s(r, "runs.run_id") for a, r in rows}


def _chunks(items: Sequence[str], size: int = 500) -> list[tuple[str, list[str]]]:
    """``items`` in chunks of bound parameters, each with its ``?, ?, ...`` list."""
    out = []
    for i in range(0, len(items), size):
        chunk = list(items[i : i + size])
        out.append((", ".join("?" * len(chunk)), chunk))
    return out


def runs_in_app(rtx: RecordTx, tenant: str, app: str, run_ids: Sequence[str]) -> set[str]:
    """Which of ``run_ids`` are runs of ``app`` (a run id names a run within its app)."""
    out: set[str] = set()
    for marks, chunk in _chunks(run_ids):
        rows = rtx.tx.all(
            f"SELECT run_id FROM runs WHERE tenant_id = ? AND app_id = ? AND run_id IN ({marks})"  # noqa: S608
            " UNION SELECT run_id FROM decisions WHERE tenant_id = ? AND app_id = ? "
            f"AND run_id IN ({marks})",
            (tenant, app, *chunk, tenant, app, *chunk),
        )
        out.update(_s(r[0], "runs.run_id") for r in rows)
    return out


def agents_in_app(rtx: RecordTx, tenant: str, app: str, agents: Sequence[str]) -> set[str]:
    """Which of ``agents`` have runs in ``app``."""
    out: set[str] = set()
    for marks, chunk in _chunks(agents):
        rows = rtx.tx.all(
            "SELECT DISTINCT agent_id FROM runs WHERE tenant_id = ? AND app_id = ? "  # noqa: S608
            f"AND agent_id IN ({marks})",
            (tenant, app, *chunk),
        )
        out.update(_s(r[0], "runs.agent_id") for r in rows)
    return out


def tenant_apps(rtx: RecordTx, tenant: str, limit: int = 500) -> list[str]:
    rows = rtx.tx.all(
        "SELECT app_id FROM apps WHERE tenant_id = ? ORDER BY app_id LIMIT ?", (tenant, limit)
    )
    return [_s(r[0], "apps.app_id") for r in rows]


def run_by_id(rtx: RecordTx, tenant: str, app: str, run_id: str) -> str | None:
    """The trace hash of a run of the app, by run id (links from approvals)."""
    row = rtx.get_run(tenant, app, run_id)
    return row.trace_hash if row is not None else None
