"""Fleet pages: the overview and run list, the anomaly feed (with triage), the permission
heatmap."""

from __future__ import annotations

import math
import time
from collections import Counter

import msgspec
from fastapi import APIRouter, Request
from starlette.responses import Response

from sentrail.model.trace import PermissionsSummary, Run
from sentrail.runtime.stored import STREAM_KINDS, document_of
from sentrail.service.auth import Scope
from sentrail.service.http import parse_time
from sentrail.service.problems import ProblemError
from sentrail.store.records import RunFilter, decode_cursor, encode_cursor, records
from sentrail.ui import queries as q
from sentrail.ui.queries import DAY, FeedFilter
from sentrail.ui.render import path_part, query
from sentrail.ui.runs import finding_message
from sentrail.ui.web import Dashboard, UiError, redirect

PAGE = 50
CHART_DAYS = 14
STATUSES = ("executed", "blocked", "pending_approval", "running")
WINDOWS = {"24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY, "365d": 365 * DAY}
REPEATED_ESCALATION = 2  # escalated in this many runs or more: the grant needs updating
CATEGORIES = (
    "permission_escalation",
    "unusual_sequence",
    "excessive_retries",
    "data_exfiltration",
    "policy_violation",
    "untrusted_instruction",
    "tainted_action",
    "missing_telemetry",
    "behavioural_correlation",
    "attestation",
)


def _choice(value: str | None, allowed: tuple[str, ...], name: str) -> str | None:
    if value in (None, ""):
        return None
    if value not in allowed:
        raise UiError(400, f"{name} must be one of {', '.join(allowed)}")
    return value


def _time(value: str | None, name: str) -> float | None:
    if not value:
        return None
    try:
        return parse_time(value, name)
    except ProblemError as exc:
        raise UiError(400, exc.detail) from None


def _cursor(value: str | None) -> tuple[float, str] | None:
    if not value:
        return None
    try:
        return decode_cursor(value)
    except ValueError as exc:
        raise UiError(400, str(exc)) from None


def _text(value: str | None, name: str, limit: int = 256) -> str | None:
    if not value:
        return None
    if len(value) > limit:
        raise UiError(400, f"{name} is longer than {limit} characters")
    return value


def router(dash: Dashboard) -> APIRouter:
    r = APIRouter()
    store = dash.svc.store

    @r.get("/apps/{app}")
    def app_home(request: Request, app: str) -> Response:
        dash.for_app(request, app)
        return redirect(f"/ui/apps/{path_part(app)}/runs")

    @r.get("/apps/{app}/runs")
    def overview(
        request: Request,
        app: str,
        status: str | None = None,
        agent: str | None = None,
        verdict: str | None = None,
        since: str | None = None,
        until: str | None = None,
        cursor: str | None = None,
    ) -> Response:
        session = dash.for_app(request, app)
        flt = RunFilter(
            status=_choice(status, STATUSES, "status"),
            agent=_text(agent, "agent"),
            verdict=_choice(verdict, ("allowed", "suspicious", "unauthorized"), "verdict"),
            since=_time(since, "since"),
            until=_time(until, "until"),
        )
        tenant = session.tenant_id
        with records(store) as rtx:
            counts = q.fleet_counts(rtx, tenant, app, flt)
            rows = rtx.list_runs(tenant, app, flt, PAGE + 1, _cursor(cursor))
            newest = rtx.list_runs(tenant, app, RunFilter(until=flt.until), 1)
            end_day = int((newest[0].started_at if newest else time.time()) // DAY)
            start_day = end_day - CHART_DAYS + 1
            per_day = q.findings_per_day(rtx, tenant, app, start_day * DAY, (end_day + 1) * DAY)
            agents = q.feed_agents(rtx, tenant, app)
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        filters = {
            "status": flt.status,
            "agent": flt.agent,
            "verdict": flt.verdict,
            "since": since,
            "until": until,
        }
        next_url = (
            query({**filters, "cursor": encode_cursor(rows[-1].started_at, rows[-1].run_id)})
            if more
            else None
        )
        days = list(range(start_day, end_day + 1))
        top = max((sum(per_day.get(d, {}).values()) for d in days), default=0)
        return dash.render(
            request,
            "overview.html",
            session,
            app=app,
            nav="runs",
            counts=counts,
            runs=rows,
            filters=filters,
            next_url=next_url,
            first_page=cursor is None,
            days=days,
            per_day=per_day,
            chart_top=max(top, 1),
            agents=agents,
        )

    @r.get("/apps/{app}/anomalies")
    def anomalies(
        request: Request,
        app: str,
        agent: str | None = None,
        category: str | None = None,
        severity: str | None = None,
        state: str | None = "open",
        window: str | None = None,
        since: str | None = None,
        until: str | None = None,
        cursor: str | None = None,
    ) -> Response:
        session = dash.for_app(request, app)
        state = _choice(state, ("open", "resolved", "all"), "state") or "all"
        window = _choice(window, tuple(WINDOWS), "window")
        start = _time(since, "since")
        if window is not None and start is None:
            start = time.time() - WINDOWS[window]
        flt = FeedFilter(
            agent=_text(agent, "agent"),
            category=_choice(category, CATEGORIES, "category"),
            severity=_choice(severity, ("info", "warning", "critical"), "severity"),
            resolved={"open": False, "resolved": True}.get(state),
            since=start,
            until=_time(until, "until"),
        )
        tenant = session.tenant_id
        with records(store) as rtx:
            items = q.anomaly_feed(rtx, tenant, app, flt, PAGE + 1, _cursor(cursor))
            audits = {
                i.finding.finding_id: rtx.audit(tenant, app, i.finding.finding_id) for i in items
            }
            agents = q.feed_agents(rtx, tenant, app)
        more = len(items) > PAGE
        items = items[:PAGE]
        filters = {
            "agent": flt.agent,
            "category": flt.category,
            "severity": flt.severity,
            "state": state,
            "window": window,
            "since": since,
            "until": until,
        }
        next_url = (
            query(
                {
                    **filters,
                    "cursor": encode_cursor(items[-1].started_at, items[-1].finding.finding_id),
                }
            )
            if more
            else None
        )
        return dash.render(
            request,
            "anomalies.html",
            session,
            app=app,
            nav="anomalies",
            items=items,
            audits=audits,
            messages={i.finding.finding_id: finding_message(i.finding.body) for i in items},
            filters=filters,
            next_url=next_url,
            agents=agents,
            categories=CATEGORIES,
            windows=tuple(WINDOWS),
            live_since=time.time(),
            can_triage=session.has(Scope.TRIAGE.value),
            first_page=cursor is None,
        )

    @r.get("/apps/{app}/permissions")
    def heatmap(request: Request, app: str, window: str | None = "30d") -> Response:
        session = dash.for_app(request, app)
        window = _choice(window, tuple(WINDOWS), "window") or "30d"
        tenant = session.tenant_id
        with records(store) as rtx:
            newest = rtx.list_runs(tenant, app, RunFilter(), 1)
            end = (newest[0].started_at if newest else time.time()) + 1
            start = end - WINDOWS[window]
            uses = q.permission_uses(rtx, tenant, app, start, end)
            escalated = q.escalations(rtx, tenant, app, start, end)
            latest = q.latest_runs_by_agent(rtx, tenant, app, start, end)
        grants = {
            agent: _granted(dash, tenant, app, agent, run_id) for agent, run_id in latest.items()
        }
        agents = sorted(set(uses) | set(grants) | set(escalated))
        perms = sorted(
            {p for c in uses.values() for p in c}
            | {p for g in grants.values() for p in g}
            | {p for e in escalated.values() for p in e}
        )
        top = max((n for c in uses.values() for n in c.values()), default=0)
        cells = {
            (a, p): _cell(
                uses.get(a, Counter())[p], top, p in grants.get(a, set()), escalated.get(a, {}), p
            )
            for a in agents
            for p in perms
        }
        return dash.render(
            request,
            "permissions.html",
            session,
            app=app,
            nav="permissions",
            agents=agents,
            perms=perms,
            cells=cells,
            window=window,
            windows=tuple(WINDOWS),
            start=start,
            end=end,
            repeated=REPEATED_ESCALATION,
        )

    return r


class Cell(msgspec.Struct, frozen=True):
    uses: int
    level: int  # 0..5 (intensity class)
    granted: bool
    unused_grant: bool
    escalated_runs: int
    repeated: bool


def _cell(uses: int, top: int, granted: bool, escalated: dict[str, set[str]], perm: str) -> Cell:
    level = 0 if uses == 0 else 1 + int(4 * math.log1p(uses) / math.log1p(max(top, 1)))
    runs = len(escalated.get(perm, set()))
    return Cell(
        uses=uses,
        level=min(level, 5),
        granted=granted,
        unused_grant=granted and uses == 0,
        escalated_runs=runs,
        repeated=runs >= REPEATED_ESCALATION,
    )


def _granted(dash: Dashboard, tenant: str, app: str, agent: str, run_id: str) -> set[str]:
    """What the agent was granted: its policy profile's boundary, else the latest run's
    ``permissions_summary.granted`` (read from the stored payloads)."""
    profile = dash.svc.ingestor.engine.policy.profile_for(agent)
    boundary = profile.profile.permission_boundary if profile.matched else None
    if boundary is not None:
        return {p for p in boundary if "*" not in p}
    summary: PermissionsSummary | None = None
    events = dash.svc.store.run_events(tenant, app, run_id)
    for e in events:
        if e.kind == "trace" and e.payload is not None:
            try:
                summary = msgspec.json.decode(e.payload, type=Run).permissions_summary
            except msgspec.DecodeError:
                continue
    if summary is None:  # a streamed run: its summary as the fold ends it (a bad line hides it)
        folder = document_of(e for e in events if e.kind in STREAM_KINDS).folder
        summary = folder.run.permissions_summary if folder is not None else None
    return set(summary.granted) if summary is not None else set()
