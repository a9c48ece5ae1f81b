"""The FastAPI application: ``create_app(config)``; endpoints under ``/v1`` (docs/service.md).

Every endpoint but ``/healthz`` needs ``Authorization: Bearer <API key>`` and a scope;
every query is bounded by the key's tenant, and ``/v1/apps/{app_id}/...`` also by the
key's app. Responses are JSON encoded by msgspec, every field name in snake_case (like
the trace format); errors are RFC 9457 problems. A refusal of the store (an id too long,
an event for a redacted run) is the request's fault: 4xx naming it; any other store
error is 503 with ``Retry-After``. The OpenAPI document is :mod:`.openapi`'s.

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
from sentrail.errors import SentrailError
from sentrail.evidence.note import Signer
from sentrail.model.decode import MAX_DOCUMENT_BYTES
from sentrail.runtime.compose import service_pipeline
from sentrail.runtime.ingest import Ingestor
from sentrail.runtime.pipeline import RunUpdate
from sentrail.runtime.store_writer import StoreWriter
from sentrail.service.admission import IngestGate
from sentrail.service.alerting import AlertCollector
from sentrail.service.auth import KeyVerifier
from sentrail.service.deps import Metrics
from sentrail.service.enforcement import add_enforcement_routes
from sentrail.service.forensics import add_forensics_routes
from sentrail.service.http import json_response
from sentrail.service.ingestion import add_ingest_routes
from sentrail.service.openapi import describe
from sentrail.service.problems import ErrorItem, ProblemError, problem_response, refusal_status
from sentrail.service.queries import add_query_routes
from sentrail.service.replay import StoredBundles, add_replay_routes
from sentrail.store.base import StoreError, StoreRefusal
from sentrail.store.core import LogStore

log = logging.getLogger("sentrail.service")
DEFAULT_MAX_BODY = 16 * 1024 * 1024


class ServiceConfig(msgspec.Struct, frozen=True):
    """What ``create_app`` needs; the store is opened and migrated by the caller."""

    max_body_bytes: int = DEFAULT_MAX_BODY
    checkpoint_interval_s: float = 1.0
    base_url: str = ""
    decide_timeout_s: float = 1.0
    ingest_workers: int = 0  # threads that parse, analyse and store; 0: one per core
    ingest_queue: int = 8  # ingest requests admitted beyond those (then 503)
    dashboard: bool = True  # the web interface at /ui (docs/dashboard.md)
    session_ttl_s: float = 8 * 3600.0


class Services:
    """What the endpoints share (one per app instance)."""

    def __init__(
        self,
        store: LogStore,
        engine: Engine,
        signer: Signer,
        config: ServiceConfig,
        policy_sha256: str | None,
        alerts: AlertRouter | None = None,
    ) -> None:
        self.store = store
        self.signer = signer
        self.config = config
        # Ingest writes the evidence with its events; the pipeline then alerts (compose).
        self.pipeline = service_pipeline(store, router=alerts, policy_sha256=policy_sha256)
        writer = self.pipeline.evidence
        assert isinstance(writer, StoreWriter)
        self.ingestor = Ingestor(store, engine, writer=writer)
        self.bundles = StoredBundles(store, engine)  # what replay may use (service/replay.py)
        self.alerts = alerts
        self.keys = KeyVerifier(store)
        self.gate = IngestGate(config.ingest_workers, config.ingest_queue)
        self.timer = store.checkpoint_timer(config.checkpoint_interval_s)  # the store's one
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

    def judged(self, updates: Sequence[RunUpdate]) -> None:
        """Runs ingest judged (their evidence already stored): counted, then notified
        through the pipeline (the alert router queues: this never blocks)."""
        for u in updates:
            for f in u.findings:
                self.findings.labels(f.severity.value).inc()
        self.pipeline.emit(updates, stored=True)


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
    svc = Services(store, engine, signer, cfg, policy_sha256, alerts)
    if alerts is not None:
        svc.registry.register(AlertCollector(alerts))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        svc.timer.start()
        try:
            yield
        finally:
            svc.timer.stop()
            svc.pipeline.shutdown()

    app = FastAPI(
        title="sentrail",
        version=__version__,
        description="Ingest, analyse and prove what AI agents did.",
        lifespan=lifespan,
    )
    app.state.services = svc
    app.openapi = lambda: describe(app)  # type: ignore[method-assign]

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

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> Response:
        if isinstance(exc, StoreRefusal):  # the request's fault: say what, never "retry"
            status, slug = refusal_status(exc)
            where = [ErrorItem(exc.location or "body", exc.message)]
            return problem_response(status, slug, exc.message, request.url.path, where)
        log.error("store error on %s: %s", request.url.path, exc.message)
        return problem_response(
            503,
            "store-unavailable",
            "the evidence store failed; retry",
            request.url.path,
            headers={"Retry-After": "1"},
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

    add_ingest_routes(app, svc)
    add_query_routes(app, svc)
    add_forensics_routes(app, svc)
    add_replay_routes(app, svc)
    add_enforcement_routes(app, svc, cfg)
    if cfg.dashboard:
        from sentrail.ui import add_dashboard  # the front end sits above the service

        add_dashboard(app, svc, cfg.session_ttl_s)

    # -- operations --------------------------------------------------------------------------
    @app.get("/healthz", tags=["operations"])
    def healthz() -> Response:  # a sync route: the store is asked in a thread, not the loop
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
