"""The FastAPI application: ``create_app(config)``; endpoints under ``/v1`` (docs/service.md).

Every endpoint but ``/healthz`` needs ``Authorization: Bearer <API key>`` and a scope;
every query is bounded by the key's tenant, and ``/v1/apps/{app_id}/...`` also by the
key's app. Responses are JSON encoded by msgspec; errors are RFC 9457 problems.

Request bodies are read as a stream and refused with 413 past ``max_body_bytes`` (also
after ``Content-Encoding: gzip`` decompression); nothing is written before the whole
body has been read and validated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from sentrail import __version__
from sentrail.alerts.router import AlertRouter
from sentrail.enforce.pdp import DecisionPoint
from sentrail.enforce.persist import StoreApprovals, StoreContainment, store_recorder
from sentrail.engine.engine import Engine
from sentrail.errors import InputError, SentrailError
from sentrail.evidence.note import Signer
from sentrail.model.decode import MAX_DOCUMENT_BYTES
from sentrail.model.finding import Finding
from sentrail.model.trace import Run
from sentrail.runtime.ingest import Ingestor, InvalidLines
from sentrail.service.alerting import AlertCollector
from sentrail.service.auth import KeyVerifier
from sentrail.service.background import CheckpointTimer
from sentrail.service.deps import AppId, Ingest, Metrics
from sentrail.service.enforcement import add_enforcement_routes
from sentrail.service.http import json_response, read_body
from sentrail.service.problems import ErrorItem, ProblemError, problem_response
from sentrail.service.queries import add_query_routes
from sentrail.store.base import EventConflict, StoreError
from sentrail.store.core import LogStore

log = logging.getLogger("sentrail.service")
DEFAULT_MAX_BODY = 16 * 1024 * 1024


class ServiceConfig(msgspec.Struct, frozen=True):
    """What ``create_app`` needs; the store is opened and migrated by the caller."""

    max_body_bytes: int = DEFAULT_MAX_BODY
    checkpoint_interval_s: float = 1.0
    base_url: str = ""
    decide_timeout_s: float = 1.0


class Services:
    """What the endpoints share (one per app instance)."""

    def __init__(
        self,
        store: LogStore,
        engine: Engine,
        signer: Signer,
        config: ServiceConfig,
        policy_sha256: str | None,
    ) -> None:
        self.store = store
        self.signer = signer
        self.config = config
        self.ingestor = Ingestor(store, engine, policy_sha256=policy_sha256)
        self.keys = KeyVerifier(store)
        self.timer = CheckpointTimer(store, config.checkpoint_interval_s)
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sentrail_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "sentrail_http_request_seconds",
            "HTTP request latency by route",
            ["route"],
            registry=self.registry,
        )
        self.ingested_events = Counter(
            "sentrail_ingested_events", "Log events stored (not duplicates)", registry=self.registry
        )
        self.duplicate_events = Counter(
            "sentrail_duplicate_events", "Log events received again", registry=self.registry
        )
        self.analysed_runs = Counter(
            "sentrail_analysed_runs", "Runs analysed on ingest", registry=self.registry
        )
        self.findings = Counter(
            "sentrail_findings", "Findings produced on ingest", ["severity"], registry=self.registry
        )
        self.checkpoints = Counter(
            "sentrail_checkpoints_signed",
            "Checkpoints signed by the timer",
            registry=self.registry,
        )
        self.timer.on_signed = self.checkpoints.inc
        self.alerts: AlertRouter | None = None
        self.containment = StoreContainment(store)
        self.approvals = StoreApprovals(store)
        self.pdp = DecisionPoint(
            engine,
            signer,
            recorder=store_recorder(store),
            containment=self.containment,
            approvals=self.approvals,
        )
        self.approval_latency = Histogram(
            "sentrail_approval_latency_seconds",
            "From an approval's request to a person's answer",
            ["verdict"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600),
            registry=self.registry,
        )
        self.decisions = Counter(
            "sentrail_decisions", "Decisions by outcome", ["outcome"], registry=self.registry
        )

    def alert(self, app: str, run: Run, findings: Sequence[Finding], trace_hash: str) -> None:
        """Hand new findings to the alert router (never blocks: it queues)."""
        if self.alerts is None:
            return
        header = run.header()
        for f in findings:
            self.alerts.submit(f, header, run.steps, trace_hash=trace_hash)


# -- helpers ------------------------------------------------------------------------------
def create_app(
    store: LogStore,
    engine: Engine,
    signer: Signer,
    config: ServiceConfig | None = None,
    *,
    policy_sha256: str | None = None,
    alerts: AlertRouter | None = None,
) -> FastAPI:
    cfg = config or ServiceConfig()
    if not 0 < cfg.max_body_bytes <= MAX_DOCUMENT_BYTES:
        raise ValueError(f"max_body_bytes must be in 1..{MAX_DOCUMENT_BYTES}")
    svc = Services(store, engine, signer, cfg, policy_sha256)
    svc.alerts = alerts
    if alerts is not None:
        svc.registry.register(AlertCollector(alerts))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        svc.timer.start()
        try:
            yield
        finally:
            svc.timer.stop()
            if svc.alerts is not None:
                svc.alerts.close()

    app = FastAPI(
        title="sentrail",
        version=__version__,
        description="Ingest, analyse and prove what AI agents did.",
        lifespan=lifespan,
    )
    app.state.services = svc

    # -- errors as problems -----------------------------------------------------------
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> Response:
        return problem_response(
            exc.status, exc.slug, exc.detail, request.url.path, exc.errors, exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        items = [
            ErrorItem(".".join(str(p) for p in e.get("loc", ())), str(e.get("msg", "")))
            for e in exc.errors()
        ]
        return problem_response(
            400, "invalid-request", "the request is not valid", request.url.path, items
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return problem_response(exc.status_code, "http-error", str(exc.detail), request.url.path)

    @app.exception_handler(EventConflict)
    async def _conflict(request: Request, exc: EventConflict) -> Response:
        return problem_response(409, "event-conflict", exc.message, request.url.path)

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> Response:
        log.error("store error on %s: %s", request.url.path, exc.message)
        return problem_response(
            503, "store-unavailable", "the evidence store failed; retry", request.url.path
        )

    @app.middleware("http")
    async def _metrics(request: Request, call_next: Callable[[Request], Any]) -> Response:
        start = time.perf_counter()
        response: Response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        svc.requests.labels(name, request.method, str(response.status_code)).inc()
        svc.latency.labels(name).observe(time.perf_counter() - start)
        return response

    # -- ingest ------------------------------------------------------------------------------
    @app.post("/v1/apps/{app_id}/traces", tags=["ingest"], status_code=201)
    async def post_trace(app_id: AppId, request: Request, who: Ingest) -> Response:
        """Store one whole trace document (its exact bytes), analyse it, index it."""
        data = await read_body(request, cfg.max_body_bytes)
        try:
            done = svc.ingestor.ingest_trace(who.tenant_id, app_id, data)
        except InputError as exc:
            raise ProblemError(
                400,
                "invalid-trace",
                f"not a valid trace document: {exc.message}",
                [ErrorItem(f"body: {exc.location}" if exc.location else "body", exc.message)],
            ) from None
        svc.timer.touch(who.tenant_id)
        if done.ack.duplicate:
            svc.duplicate_events.inc()
        else:
            svc.ingested_events.inc()
            svc.analysed_runs.inc()
            for f in done.result.findings:
                svc.findings.labels(f.severity.value).inc()
            svc.alert(app_id, done.run, done.result.findings, done.trace_hash)
        body = {
            "traceHash": done.trace_hash,
            "runId": done.run_id,
            "seq": done.ack.seq,
            "duplicate": done.ack.duplicate,
            "status": done.row.status,
            "riskScore": done.row.risk_score,
            "verdict": done.row.verdict,
            "findings": done.result.findings,
        }
        return json_response(body, 200 if done.ack.duplicate else 201)

    @app.post("/v1/apps/{app_id}/events", tags=["ingest"])
    async def post_events(app_id: AppId, request: Request, who: Ingest) -> Response:
        """Store NDJSON events (idempotent by event id); acknowledges each with its seq."""
        data = await read_body(request, cfg.max_body_bytes)
        try:
            done = svc.ingestor.ingest_events(who.tenant_id, app_id, data)
        except InvalidLines as exc:
            items = [ErrorItem(loc, msg) for loc, msg in exc.errors]
            raise ProblemError(400, "invalid-events", exc.message, items) from None
        except InputError as exc:
            raise ProblemError(
                400, "invalid-events", exc.message, [ErrorItem("body", exc.message)]
            ) from None
        svc.timer.touch(who.tenant_id)
        new = sum(not a.duplicate for a in done.acks)
        svc.ingested_events.inc(new)
        svc.duplicate_events.inc(len(done.acks) - new)
        svc.analysed_runs.inc(len(done.completed_runs))
        return json_response(
            {
                "acknowledged": [
                    {"eventId": a.event_id, "seq": a.seq, "duplicate": a.duplicate}
                    for a in done.acks
                ],
                "completedRuns": done.completed_runs,
            }
        )

    add_query_routes(app, svc)
    add_enforcement_routes(app, svc, cfg)

    # -- operations --------------------------------------------------------------------------
    @app.get("/healthz", tags=["operations"])
    def healthz() -> Response:
        """200 when the store answers, 503 otherwise (no authentication)."""
        try:
            svc.store.tenants()
        except SentrailError:
            return problem_response(503, "unhealthy", "the store does not answer", "/healthz")
        return json_response({"status": "ok", "version": __version__})

    @app.get("/metrics", tags=["operations"])
    def metrics(who: Metrics) -> Response:
        """Prometheus text exposition (needs a key with the ``metrics`` scope)."""
        return Response(generate_latest(svc.registry), media_type=CONTENT_TYPE_LATEST)

    return app
