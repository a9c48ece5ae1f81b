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
from typing import Annotated, Any

import msgspec
from fastapi import FastAPI, Path, Query, Request
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
from sentrail.evidence.checkpoint import Checkpoint as TreeHead
from sentrail.evidence.note import Signer, split_note
from sentrail.model.decode import MAX_DOCUMENT_BYTES, decode_event
from sentrail.model.events import fold_run
from sentrail.model.finding import Finding, Severity
from sentrail.model.trace import Run
from sentrail.runtime.ingest import Ingestor, InvalidLines
from sentrail.service.alerting import AlertCollector
from sentrail.service.auth import KeyVerifier
from sentrail.service.background import CheckpointTimer
from sentrail.service.deps import AppId, Ingest, LogRead, Metrics, Read, Triage
from sentrail.service.enforcement import add_enforcement_routes
from sentrail.service.http import b64, iso, json_response, parse_time, read_body
from sentrail.service.problems import ErrorItem, ProblemError, problem_response
from sentrail.store.base import StoreError
from sentrail.store.core import LogStore
from sentrail.store.records import (
    FindingFilter,
    FindingRow,
    RunFilter,
    RunRow,
    decode_cursor,
    encode_cursor,
    records,
)

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
def _run_item(row: RunRow) -> dict[str, Any]:
    return {
        "traceHash": row.trace_hash,
        "runId": row.run_id,
        "agent_id": row.agent_id,
        "status": row.status,
        "verdict": row.verdict,
        "riskScore": row.risk_score,
        "blockedBy": row.blocked_by,
        "durationMs": row.duration_ms,
        "startedAt": iso(row.started_at),
        "steps": row.steps,
        "findings": row.findings,
        "findingCounts": row.counts,
    }


def _finding_item(row: FindingRow) -> dict[str, Any]:
    return {
        "id": row.finding_id,
        "runId": row.run_id,
        "category": row.category,
        "severity": row.severity,
        "rule": row.rule_id,
        "step": row.step,
        "resolved": row.resolved,
        "resolvedAt": iso(row.resolved_at),
        "resolvedBy": row.resolved_by,
        "createdAt": iso(row.created_at),
        "finding": msgspec.Raw(row.body),
    }


_STEP_VERDICT = {Severity.CRITICAL: "unauthorized", Severity.WARNING: "suspicious"}


def _step_verdict(findings: list[Finding]) -> str:
    worst = max((f.severity for f in findings), key=lambda s: s.rank, default=None)
    return _STEP_VERDICT.get(worst, "allowed") if worst is not None else "allowed"


class FindingPatch(msgspec.Struct, forbid_unknown_fields=True):
    resolved: bool
    comment: str


# -- the application ----------------------------------------------------------------------
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

    # -- queries -----------------------------------------------------------------------------
    @app.get("/v1/apps/{app_id}/traces", tags=["query"])
    def list_traces(
        app_id: AppId,
        who: Read,
        status: Annotated[
            str | None, Query(pattern="^(executed|blocked|pending_approval|running)$")
        ] = None,
        agent: Annotated[str | None, Query(max_length=1024)] = None,
        verdict: Annotated[str | None, Query(pattern="^(allowed|suspicious|unauthorized)$")] = None,
        since: Annotated[str | None, Query(description="RFC 3339 or Unix seconds")] = None,
        until: Annotated[str | None, Query(description="RFC 3339 or Unix seconds")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=4096)] = None,
    ) -> Response:
        """Runs, newest first, with cursor pagination (pass ``nextCursor`` back)."""
        after = None
        if cursor is not None:
            try:
                after = decode_cursor(cursor)
            except ValueError as exc:
                raise ProblemError(
                    400, "invalid-query", str(exc), [ErrorItem("query.cursor", str(exc))]
                ) from None
        flt = RunFilter(
            status=status,
            agent=agent,
            verdict=verdict,
            since=parse_time(since, "since"),
            until=parse_time(until, "until"),
        )
        with records(svc.store) as rtx:
            rows = rtx.list_runs(who.tenant_id, app_id, flt, limit + 1, after)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].started_at, rows[-1].run_id) if more else None
        return json_response({"items": [_run_item(r) for r in rows], "nextCursor": next_cursor})

    @app.get("/v1/apps/{app_id}/traces/{trace_hash}", tags=["query"])
    def get_trace(
        app_id: AppId,
        trace_hash: Annotated[str, Path(pattern="^[0-9a-f]{64}$")],
        who: Read,
    ) -> Response:
        """The full trace, its findings, per-step verdicts, signed checkpoint and proofs."""
        tenant = who.tenant_id
        with records(svc.store) as rtx:
            row = rtx.run_by_hash(tenant, app_id, trace_hash)
            if row is None:
                raise ProblemError(404, "not-found", "no trace with this hash in this app")
            steps = rtx.steps(tenant, row.run_id)
            finding_rows = rtx.list_findings(
                tenant, app_id, FindingFilter(run_id=row.run_id), 10_000
            )
        events = svc.store.run_events(tenant, row.run_id)
        checkpoint = svc.store.latest_checkpoint(tenant)
        if checkpoint is None or checkpoint.size <= max((e.seq for e in events), default=-1):
            checkpoint = svc.store.checkpoint(tenant)
        assert checkpoint is not None
        in_tree = [e for e in events if e.seq < checkpoint.size]
        paths, _ = svc.store.proofs(tenant, checkpoint.size, leaves=[e.seq for e in in_tree])
        findings = [msgspec.json.decode(f.body, type=Finding) for f in finding_rows]
        by_step: dict[int, list[Finding]] = {}
        for f in findings:
            if f.step_index is not None:
                by_step.setdefault(f.step_index, []).append(f)
        trace: Any = None
        for e in events:
            if e.kind == "trace" and e.payload is not None and e.payload_sha256.hex() == trace_hash:
                trace = msgspec.Raw(e.payload)
        if trace is None:
            trace = _rebuilt_trace(svc, tenant, row.run_id)
        head = TreeHead.parse(split_note(checkpoint.note)[0])
        body = {
            **_run_item(row),
            "trace": trace,
            "findings": [_finding_item(f) for f in finding_rows],
            "steps": [
                {
                    "step_index": s.idx,
                    "action": s.action,
                    "tool": s.tool,
                    "status": s.status,
                    "permissions": s.permissions,
                    "verdict": _step_verdict(by_step.get(s.idx, [])),
                    "findings": [f.id for f in by_step.get(s.idx, [])],
                }
                for s in steps
            ],
            "events": [
                {
                    "seq": e.seq,
                    "eventId": e.event_id,
                    "kind": e.kind,
                    "payloadSha256": e.payload_sha256.hex(),
                    "prevHash": e.prev_hash.hex(),
                    "chainHash": e.chain_hash.hex(),
                    "leafHash": e.leaf_hash.hex(),
                    "redacted": e.payload is None,
                }
                for e in events
            ],
            "checkpoint": {
                "origin": head.origin,
                "treeSize": head.size,
                "rootHash": b64(head.root_hash),
                "note": checkpoint.note,
            },
            "signatures": [
                {"keyName": name, "keyId": kid.hex(), "signature": b64(sig)}
                for name, kid, sig in split_note(checkpoint.note)[1]
            ],
            "inclusionProofs": [
                {
                    "seq": e.seq,
                    "leafIndex": e.seq,
                    "treeSize": checkpoint.size,
                    "path": [b64(h) for h in path],
                }
                for e, path in zip(in_tree, paths, strict=True)
            ],
            "verifierKey": svc.signer.verifier_key(),
        }
        return json_response(body)

    @app.get("/v1/apps/{app_id}/findings", tags=["query"])
    def list_findings(
        app_id: AppId,
        who: Read,
        category: Annotated[str | None, Query(max_length=64)] = None,
        severity: Annotated[str | None, Query(pattern="^(info|warning|critical)$")] = None,
        resolved: bool | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=1024)] = None,
    ) -> Response:
        """Findings of the app's runs, by id; pass ``nextCursor`` back for the next page."""
        flt = FindingFilter(category=category, severity=severity, resolved=resolved)
        with records(svc.store) as rtx:
            rows = rtx.list_findings(who.tenant_id, app_id, flt, limit + 1, cursor)
        more = len(rows) > limit
        rows = rows[:limit]
        return json_response(
            {
                "items": [_finding_item(r) for r in rows],
                "nextCursor": rows[-1].finding_id if more else None,
            }
        )

    @app.patch("/v1/findings/{finding_id}", tags=["triage"])
    async def patch_finding(
        finding_id: Annotated[str, Path(max_length=1024)], request: Request, who: Triage
    ) -> Response:
        """Resolve or reopen a finding with a comment; the change is audited."""
        data = await read_body(request, 64 * 1024)
        try:
            patch = msgspec.json.decode(data, type=FindingPatch)
        except msgspec.DecodeError as exc:
            raise ProblemError(
                400, "invalid-body", str(exc), [ErrorItem("body", str(exc))]
            ) from None
        if not patch.comment.strip() or len(patch.comment) > 4096:
            raise ProblemError(
                400,
                "invalid-body",
                "a comment of 1-4096 characters is required",
                [ErrorItem("body.comment", "required, 1-4096 characters")],
            )
        with records(svc.store, write=True) as rtx:
            row = rtx.get_finding(who.tenant_id, finding_id)
            if row is None or not who.may_use_app(row.app_id):
                raise ProblemError(404, "not-found", "no such finding")
            rtx.resolve_finding(
                who.tenant_id,
                finding_id,
                patch.resolved,
                f"key:{who.key_id}",
                patch.comment,
                time.time(),
            )
            row = rtx.get_finding(who.tenant_id, finding_id)
            audit = rtx.audit(who.tenant_id, finding_id)
        assert row is not None
        item = _finding_item(row)
        item["audit"] = [
            {"at": iso(a.at), "actor": a.actor, "action": a.action, "comment": a.comment}
            for a in audit
        ]
        return json_response(item)

    # -- the log ---------------------------------------------------------------------------
    @app.get("/v1/log/checkpoint", tags=["log"])
    def get_checkpoint(who: LogRead) -> Response:
        """The latest signed checkpoint of the key's tenant log (C2SP signed note)."""
        cp = svc.store.latest_checkpoint(who.tenant_id)
        if cp is None:
            raise ProblemError(404, "not-found", "this tenant's log has no checkpoint yet")
        head = TreeHead.parse(split_note(cp.note)[0])
        return json_response(
            {
                "origin": head.origin,
                "treeSize": head.size,
                "rootHash": b64(head.root_hash),
                "note": cp.note,
                "verifierKey": svc.signer.verifier_key(),
            }
        )

    @app.get("/v1/log/proof/inclusion", tags=["log"])
    def get_inclusion(
        who: LogRead,
        leaf_index: Annotated[int, Query(ge=0)],
        tree_size: Annotated[int, Query(ge=1)],
    ) -> Response:
        """RFC 9162 inclusion proof of leaf ``leaf_index`` in the tree of ``tree_size``."""
        if leaf_index >= tree_size:
            raise ProblemError(
                400,
                "invalid-query",
                "leaf_index must be below tree_size",
                [ErrorItem("query.leaf_index", "must be < tree_size")],
            )
        paths = _proofs(svc, who.tenant_id, tree_size, leaves=[leaf_index])[0]
        (event,) = list(svc.store.events(who.tenant_id, leaf_index, leaf_index + 1))
        return json_response(
            {
                "leafIndex": leaf_index,
                "treeSize": tree_size,
                "leafHash": b64(event.leaf_hash),
                "path": [b64(h) for h in paths[0]],
            }
        )

    @app.get("/v1/log/proof/consistency", tags=["log"])
    def get_consistency(
        who: LogRead,
        first: Annotated[int, Query(ge=0)],
        second: Annotated[int, Query(ge=0)],
    ) -> Response:
        """RFC 9162 consistency proof from tree size ``first`` to ``second``."""
        if first > second:
            raise ProblemError(
                400,
                "invalid-query",
                "first must not exceed second",
                [ErrorItem("query.first", "must be <= second")],
            )
        proof = _proofs(svc, who.tenant_id, second, old_size=first)[1]
        return json_response({"first": first, "second": second, "path": [b64(h) for h in proof]})

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


def _proofs(
    svc: Services,
    tenant: str,
    size: int,
    *,
    leaves: Sequence[int] = (),
    old_size: int | None = None,
) -> tuple[list[list[bytes]], list[bytes]]:
    try:
        return svc.store.proofs(tenant, size, leaves=leaves, old_size=old_size)
    except ValueError as exc:
        raise ProblemError(400, "invalid-query", str(exc), [ErrorItem("query", str(exc))]) from None


def _rebuilt_trace(svc: Services, tenant: str, run_id: str) -> Any:
    """A streamed run's trace document, folded from its stored events (None if redacted)."""
    decoded = [
        decode_event(e.payload)
        for e in svc.store.run_events(tenant, run_id)
        if e.payload is not None and e.kind in ("run_started", "step", "run_completed")
    ]
    run = fold_run(decoded)
    return None if run is None else msgspec.to_builtins(run)
