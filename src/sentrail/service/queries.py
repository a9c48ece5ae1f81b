"""The query routes: runs, a run's proof-carrying detail, findings and their triage, and
the tenant log's checkpoint and proofs (docs/service.md).

Every run, event, finding and result read here is the caller's app's: queries are keyed
by (tenant, app, run). Triage (a ``triage`` event in the run's log chain) is in
:mod:`.triage`; actors are recorded as labels (:func:`.auth.actor_label`), never as key ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from fastapi import FastAPI, Path, Query
from starlette.responses import Response

from sentrail.evidence.checkpoint import Checkpoint as TreeHead
from sentrail.evidence.checkpoint import log_signer
from sentrail.evidence.note import split_note
from sentrail.model.finding import Finding, Severity
from sentrail.model.trace import INT64_MAX
from sentrail.runtime.stored import document_of
from sentrail.service.deps import AppId, LogRead, Read
from sentrail.service.forensics import explanations_of, stored_run
from sentrail.service.http import b64, iso, json_response, parse_time
from sentrail.service.problems import ErrorItem, ProblemError
from sentrail.service.run_pages import runs_page
from sentrail.service.triage import add_triage_routes, finding_item
from sentrail.store.records import (
    FindingFilter,
    RunFilter,
    RunRow,
    decode_cursor,
    encode_cursor,
    records,
)

if TYPE_CHECKING:
    from sentrail.service.app import Services


def _run_item(row: RunRow) -> dict[str, Any]:
    return {
        "trace_hash": row.trace_hash,
        "run_id": row.run_id,
        "agent_id": row.agent_id,
        "status": row.status,
        "verdict": row.verdict,
        "risk_score": row.risk_score,
        "blocked_by": row.blocked_by,
        "duration_ms": row.duration_ms,
        "started_at": iso(row.started_at),
        "steps": row.steps,
        "findings": row.findings,
        "finding_counts": row.counts,
    }


_STEP_VERDICT = {Severity.CRITICAL: "unauthorized", Severity.WARNING: "suspicious"}


def _step_verdict(findings: list[Finding]) -> str:
    worst = max((f.severity for f in findings), key=lambda s: s.rank, default=None)
    return _STEP_VERDICT.get(worst, "allowed") if worst is not None else "allowed"


# -- the application ----------------------------------------------------------------------
def add_query_routes(app: FastAPI, svc: Services) -> None:
    @app.get("/v1/apps/{app_id}/traces", tags=["query"])
    def list_traces(
        app_id: AppId,
        who: Read,
        status: Annotated[
            str | None, Query(pattern="^(executed|blocked|pending_approval|running)$")
        ] = None,
        agent: Annotated[
            str | None,
            Query(max_length=1024, description="Agent id glob (a plain value is a prefix)"),
        ] = None,
        verdict: Annotated[str | None, Query(pattern="^(allowed|suspicious|unauthorized)$")] = None,
        since: Annotated[str | None, Query(description="RFC 3339 or Unix seconds")] = None,
        until: Annotated[str | None, Query(description="RFC 3339 or Unix seconds")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=4096)] = None,
    ) -> Response:
        """Runs, newest first, with cursor pagination (pass ``next_cursor`` back)."""
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
            verdict=verdict,
            since=parse_time(since, "since"),
            until=parse_time(until, "until"),
        )
        with records(svc.store) as rtx:
            rows, more = runs_page(rtx, who.tenant_id, app_id, flt, agent, limit, after)
        next_cursor = encode_cursor(*more) if more is not None else None
        return json_response({"items": [_run_item(r) for r in rows], "next_cursor": next_cursor})

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
            "findings": [finding_item(f) for f in finding_rows],
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
                    "event_id": e.event_id,
                    "kind": e.kind,
                    "payload_sha256": e.payload_sha256.hex(),
                    "prev_hash": e.prev_hash.hex(),
                    "chain_hash": e.chain_hash.hex(),
                    "leaf_hash": e.leaf_hash.hex(),
                    "redacted": e.payload is None,
                    "leaf_version": e.leaf_version,  # 2 commits to the fields below
                    "received_at": e.received_at,  # exact Unix seconds (the leaf's binary64)
                    "sealed": e.sealed,
                }
                for e in events
            ],
            "checkpoint": {
                "origin": head.origin,
                "tree_size": head.size,
                "root_hash": b64(head.root_hash),
                "note": checkpoint.note,
            },
            "signatures": [
                {"key_name": name, "key_id": kid.hex(), "signature": b64(sig)}
                for name, kid, sig in split_note(checkpoint.note)[1]
            ],
            "inclusion_proofs": [
                {
                    "seq": e.seq,
                    "leaf_index": e.seq,
                    "tree_size": checkpoint.size,
                    "path": [b64(h) for h in path],
                }
                for e, path in zip(in_tree, paths, strict=True)
            ],
            "verifier_key": log_signer(svc.signer, tenant).verifier_key(),
            "explanations": explanations_of(stored_run(svc.store, tenant, app_id, row.run_id)),
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
        """Findings of the app's runs, by id; pass ``next_cursor`` back for the next page."""
        flt = FindingFilter(category=category, severity=severity, resolved=resolved)
        with records(svc.store) as rtx:
            rows = rtx.list_findings(who.tenant_id, app_id, flt, limit + 1, cursor)
        more = len(rows) > limit
        rows = rows[:limit]
        return json_response(
            {
                "items": [finding_item(r) for r in rows],
                "next_cursor": rows[-1].finding_id if more else None,
            }
        )

    add_triage_routes(app, svc)

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
                "tree_size": head.size,
                "root_hash": b64(head.root_hash),
                "note": cp.note,
                "verifier_key": log_signer(svc.signer, who.tenant_id).verifier_key(),
            }
        )

    @app.get("/v1/log/proof/inclusion", tags=["log"])
    def get_inclusion(
        who: LogRead,
        leaf_index: Annotated[int, Query(ge=0, le=INT64_MAX)],
        tree_size: Annotated[int, Query(ge=1, le=INT64_MAX)],
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
                "leaf_index": leaf_index,
                "tree_size": tree_size,
                "leaf_hash": b64(event.leaf_hash),
                "path": [b64(h) for h in paths[0]],
            }
        )

    @app.get("/v1/log/proof/consistency", tags=["log"])
    def get_consistency(
        who: LogRead,
        first: Annotated[int, Query(ge=0, le=INT64_MAX)],
        second: Annotated[int, Query(ge=0, le=INT64_MAX)],
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


def _rebuilt_trace(svc: Services, tenant: str, app: str, run_id: str) -> Any:
    """A streamed run's trace document, folded from its stored events (None if redacted;
    an event that no longer decodes is left out)."""
    folder = document_of(svc.store.run_events(tenant, app, run_id)).folder
    return None if folder is None else msgspec.to_builtins(folder.run)
