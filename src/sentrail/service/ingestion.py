"""The ingest routes: whole traces and NDJSON events, stored, folded and indexed off the
event loop under the ingest gate (:mod:`.admission`); what was judged then goes to the
service pipeline's notifiers (:meth:`Services.judged`: the alert router)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from starlette.responses import Response

from sentrail.errors import InputError
from sentrail.runtime.ingest import EventsIngested, InvalidLines, TraceIngested
from sentrail.service.deps import AppId, Ingest
from sentrail.service.http import json_response, read_body
from sentrail.service.openapi import EVENTS_BODY, TRACE_BODY
from sentrail.service.problems import ErrorItem, ProblemError
from sentrail.store.base import StoreRefusal

if TYPE_CHECKING:
    from sentrail.service.app import Services


def add_ingest_routes(app: FastAPI, svc: Services) -> None:
    limit = svc.config.max_body_bytes

    @app.post(
        "/v1/apps/{app_id}/traces",
        tags=["ingest"],
        status_code=201,
        openapi_extra=TRACE_BODY,
        responses={200: {"description": "The same bytes were already stored (idempotent)"}},
    )
    async def post_trace(app_id: AppId, request: Request, who: Ingest) -> Response:
        """Store one whole trace document (its exact bytes), analyse it, index it."""
        async with svc.gate.admit():
            data = await read_body(request, limit)
            done = await svc.gate.run(_trace, svc, who.tenant_id, app_id, data)
        svc.timer.touch(who.tenant_id)
        if done.ack.duplicate:
            svc.duplicate_events.inc()
        else:
            svc.ingested_events.inc()
            svc.analysed_runs.inc()
            svc.judged(done.updates)  # counted, then alerted through the pipeline
        body: dict[str, Any] = {
            "trace_hash": done.trace_hash,
            "run_id": done.run_id,
            "seq": done.ack.seq,
            "duplicate": done.ack.duplicate,
            "status": done.row.status,
            "risk_score": done.row.risk_score,
            "verdict": done.row.verdict,
            "findings": done.result.findings,
        }
        return json_response(body, 200 if done.ack.duplicate else 201)

    @app.post("/v1/apps/{app_id}/events", tags=["ingest"], openapi_extra=EVENTS_BODY)
    async def post_events(app_id: AppId, request: Request, who: Ingest) -> Response:
        """Store NDJSON events (idempotent by event id); acknowledges each with its seq."""
        async with svc.gate.admit():
            data = await read_body(request, limit)
            done = await svc.gate.run(_events, svc, who.tenant_id, app_id, data)
        svc.timer.touch(who.tenant_id)
        new = sum(not a.duplicate for a in done.acks)
        svc.ingested_events.inc(new)
        svc.duplicate_events.inc(len(done.acks) - new)
        svc.analysed_runs.inc(len(done.completed_runs))
        svc.judged(done.updates)
        return json_response(
            {
                "acknowledged": [
                    {"event_id": a.event_id, "seq": a.seq, "duplicate": a.duplicate}
                    for a in done.acks
                ],
                "completed_runs": done.completed_runs,
            }
        )


# -- the work, in an ingest thread ------------------------------------------------------------
def _trace(svc: Services, tenant: str, app: str, data: bytes) -> TraceIngested:
    try:
        return svc.ingestor.ingest_trace(tenant, app, data)
    except StoreRefusal:
        raise  # a problem of its own kind (the app's StoreRefusal handler)
    except InputError as exc:
        raise ProblemError(
            400,
            "invalid-trace",
            f"not a valid trace document: {exc.message}",
            [ErrorItem(f"body: {exc.location}" if exc.location else "body", exc.message)],
        ) from None


def _events(svc: Services, tenant: str, app: str, data: bytes) -> EventsIngested:
    try:
        return svc.ingestor.ingest_events(tenant, app, data)
    except StoreRefusal:
        raise
    except InvalidLines as exc:
        items = [ErrorItem(loc, msg) for loc, msg in exc.errors]
        raise ProblemError(400, "invalid-events", exc.message, items) from None
    except InputError as exc:
        raise ProblemError(
            400, "invalid-events", exc.message, [ErrorItem("body", exc.message)]
        ) from None
