"""Live updates as server-sent events: new findings for the anomaly feed, new steps for a
running run's timeline.

Each stream polls the store (every ``POLL_S``; the store is the one source of truth, so a
finding written by any process shows up) and sends HTML fragments rendered by the same
templates as the page, so what arrives live is escaped exactly like what was loaded. A
stream ends after ``MAX_AGE_S``; the browser's EventSource reconnects with the last event
id, from which the stream resumes. The session is re-checked on every poll, so signing
out or revoking the key ends the stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from anyio import to_thread
from fastapi import APIRouter, Request
from starlette.responses import StreamingResponse

from sentrail.store.records import records
from sentrail.ui import queries as q
from sentrail.ui.run_page import load_for_app, timeline_context
from sentrail.ui.runs import finding_message
from sentrail.ui.sessions import Session
from sentrail.ui.web import Dashboard, SignInNeeded

POLL_S = 1.0
KEEPALIVE_S = 15.0
MAX_AGE_S = 300.0


def sse(event: str, data: str, event_id: str | None = None) -> str:
    """One SSE message; every line of ``data`` gets its own ``data:`` field."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {line}" for line in data.replace("\r", "").split("\n"))
    return "\n".join(lines) + "\n\n"


def _still_signed_in(dash: Dashboard, request: Request) -> Session | None:
    try:
        return dash.session(request)
    except SignInNeeded:
        return None


def _stream(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def router(dash: Dashboard) -> APIRouter:
    r = APIRouter()
    store = dash.svc.store

    @r.get("/apps/{app}/anomalies/live")
    async def anomalies_live(request: Request, app: str, since: float = 0.0) -> StreamingResponse:
        session = dash.for_app(request, app)
        resume = request.headers.get("last-event-id")
        try:
            after = float(resume) if resume else since
        except ValueError:
            after = since
        can_triage = session.has("triage")

        def poll(after: float) -> list[q.FeedItem]:
            with records(store) as rtx:
                return q.findings_created_after(rtx, session.tenant_id, app, after)

        async def body() -> AsyncIterator[str]:
            nonlocal after
            started = last_sent = time.monotonic()
            yield "retry: 2000\n\n"
            template = dash.env.get_template("_anomaly.html")
            while time.monotonic() - started < MAX_AGE_S:
                if await request.is_disconnected() or _still_signed_in(dash, request) is None:
                    return
                items = await to_thread.run_sync(poll, after)
                for item in items:
                    html = template.render(
                        item=item,
                        audit=[],
                        message=finding_message(item.finding.body),
                        app=app,
                        csrf=dash.sessions.csrf_token(session),
                        can_triage=can_triage,
                        next_url=f"/ui/apps/{app}/anomalies",
                    )
                    after = max(after, item.finding.created_at)
                    yield sse("finding", html, repr(after))
                    last_sent = time.monotonic()
                if time.monotonic() - last_sent > KEEPALIVE_S:
                    yield ": keepalive\n\n"
                    last_sent = time.monotonic()
                await asyncio.sleep(POLL_S)

        return _stream(body())

    @r.get("/apps/{app}/runs/{trace_hash}/live")
    async def run_live(
        request: Request, app: str, trace_hash: str, after: int = -1
    ) -> StreamingResponse:
        load_for_app(dash, request, app, trace_hash)  # checks the session, the app and the run
        resume = request.headers.get("last-event-id")
        last_seq = int(resume) if resume and resume.isdigit() else after

        async def body() -> AsyncIterator[str]:
            nonlocal last_seq
            started = last_sent = time.monotonic()
            yield "retry: 2000\n\n"
            step_macro = dash.env.get_template("_step.html").module.step  # type: ignore[attr-defined]
            bar_tpl = dash.env.get_template("_timeline_svg.html")
            while time.monotonic() - started < MAX_AGE_S:
                if await request.is_disconnected() or _still_signed_in(dash, request) is None:
                    return
                loaded = await to_thread.run_sync(load_for_app, dash, request, app, trace_hash)
                newest = max((e.seq for e in loaded.events), default=-1)
                if newest > last_seq:
                    ctx = timeline_context(dash, loaded, request)
                    tl = ctx["timeline"]
                    fresh = [
                        b
                        for b in tl.bars
                        if loaded.step_events.get(b.step.step_index, -1) > last_seq
                    ]
                    for bar in fresh:
                        yield sse("step", str(step_macro(bar)))
                    yield sse("timeline", bar_tpl.render(timeline=tl))
                    yield sse("status", loaded.row.status, str(newest))
                    last_seq = newest
                    last_sent = time.monotonic()
                elif time.monotonic() - last_sent > KEEPALIVE_S:
                    yield ": keepalive\n\n"
                    last_sent = time.monotonic()
                await asyncio.sleep(POLL_S)

        return _stream(body())

    return r
