"""The query routes: runs, a run's proof-carrying detail, findings and their triage, and
the tenant log's checkpoint and proofs (docs/service.md).

Every run, event, finding and result read here is the caller's app's: queries are keyed
by (tenant, app, run), and a finding is triaged only within an app the key may use. A
triage change is a ``triage`` event in the run's log chain (:mod:`sentrail.store.triage`).
Actors are shown as :func:`public_actor` pseudonyms, never as other keys' ids.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from fastapi import FastAPI, Path, Query, Request
from starlette.responses import Response

from sentrail.evidence.checkpoint import Checkpoint as TreeHead
from sentrail.evidence.checkpoint import log_signer
from sentrail.evidence.note import split_note
from sentrail.model.finding import Finding, Severity
from sentrail.runtime.logged_runs import run_of
from sentrail.service.auth import Principal
from sentrail.service.deps import AppId, LogRead, Read, Triage
from sentrail.service.http import b64, iso, json_response, parse_time, read_body
from sentrail.service.problems import ErrorItem, ProblemError
from sentrail.store.records import (
    AuditRow,
    FindingFilter,
    FindingRow,
    RunFilter,
    RunRow,
    decode_cursor,
    encode_cursor,
    records,
)
from sentrail.store.triage import triage_finding

if TYPE_CHECKING:
    from sentrail.service.app import Services


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


def public_actor(actor: str | None) -> str | None:
    """An actor as an API response shows it: an API key as a pseudonym
    (``key-sha256:<12 hex of SHA-256 of its id>``), so that no response hands one app the
    key ids of another (key ids are half of a credential); anything else as recorded."""
    if actor is None or not actor.startswith("key:"):
        return actor
    return "key-sha256:" + hashlib.sha256(actor[4:].encode()).hexdigest()[:12]


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
        "resolvedBy": public_actor(row.resolved_by),
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
def add_query_routes(app: FastAPI, svc: Services) -> None:
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
            steps = rtx.steps(tenant, app_id, row.run_id)
            finding_rows = rtx.list_findings(
                tenant, app_id, FindingFilter(run_id=row.run_id), 10_000
            )
        events = svc.store.run_events(tenant, app_id, row.run_id)
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
            trace = _rebuilt_trace(svc, tenant, app_id, row.run_id)
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
            "verifierKey": log_signer(svc.signer, tenant).verifier_key(),
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
        finding_id: Annotated[str, Path(max_length=1024)],
        request: Request,
        who: Triage,
        app: Annotated[str | None, Query(max_length=128)] = None,
    ) -> Response:
        """Resolve or reopen a finding with a comment; the change is a ``triage`` event in
        the run's log chain and an audit row. Only a finding of an app the key may use;
        a key for every app names the app with ``?app=`` when two apps hold the id."""
        patch = await _finding_patch(request)
        with records(svc.store) as rtx:
            apps = [a for a in rtx.finding_apps(who.tenant_id, finding_id) if who.may_use_app(a)]
        if app is not None:
            apps = [a for a in apps if a == app]
        if not apps:
            raise ProblemError(404, "not-found", "no such finding")
        if len(apps) > 1:
            raise ProblemError(
                409,
                "ambiguous-finding",
                f"apps {', '.join(apps)} each hold a finding {finding_id}: name one with ?app=",
            )
        return _triage(svc, who, apps[0], finding_id, patch)

    @app.patch("/v1/apps/{app_id}/findings/{finding_id}", tags=["triage"])
    async def patch_app_finding(
        app_id: AppId,
        finding_id: Annotated[str, Path(max_length=1024)],
        request: Request,
        who: Triage,
    ) -> Response:
        """:func:`patch_finding` for a finding of one app."""
        patch = await _finding_patch(request)
        if not who.may_use_app(app_id):
            raise ProblemError(403, "forbidden", f"this key is not for app {app_id!r}")
        return _triage(svc, who, app_id, finding_id, patch)

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
                "verifierKey": log_signer(svc.signer, who.tenant_id).verifier_key(),
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


async def _finding_patch(request: Request) -> FindingPatch:
    data = await read_body(request, 64 * 1024)
    try:
        patch = msgspec.json.decode(data, type=FindingPatch)
    except msgspec.DecodeError as exc:
        raise ProblemError(400, "invalid-body", str(exc), [ErrorItem("body", str(exc))]) from None
    if not patch.comment.strip() or len(patch.comment) > 4096:
        raise ProblemError(
            400,
            "invalid-body",
            "a comment of 1-4096 characters is required",
            [ErrorItem("body.comment", "required, 1-4096 characters")],
        )
    return patch


def _triage(
    svc: Services, who: Principal, app: str, finding_id: str, patch: FindingPatch
) -> Response:
    done = triage_finding(
        svc.store,
        who.tenant_id,
        app,
        finding_id,
        resolved=patch.resolved,
        by=f"key:{who.key_id}",
        comment=patch.comment,
        now=time.time(),
    )
    if done is None:
        raise ProblemError(404, "not-found", "no such finding")
    svc.timer.touch(who.tenant_id)  # the triage event is checkpointed within a second
    row, audit = done
    item = _finding_item(row)
    item["audit"] = [_audit_item(a) for a in audit]
    return json_response(item)


def _audit_item(a: AuditRow) -> dict[str, Any]:
    return {
        "at": iso(a.at),
        "actor": public_actor(a.actor),
        "action": a.action,
        "comment": a.comment,
    }


def _rebuilt_trace(svc: Services, tenant: str, app: str, run_id: str) -> Any:
    """A streamed run's trace document, folded from its stored events (None if redacted)."""
    run = run_of(svc.store.run_events(tenant, app, run_id))
    return None if run is None else msgspec.to_builtins(run)
