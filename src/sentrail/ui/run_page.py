"""The run page: a header, then tabs (timeline, decision tree, provenance), and the proof
material the browser verifies itself.

Tabs are data (:data:`TABS`): each names its template and the function that adds what
that template needs, given the dashboard, the loaded run and the request (a tab may read
its own query parameters: the replay audit's ``policy``). The header, the tab bar, the
step anchors (``#step-N``) and the provenance badges are the same for every tab.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import msgspec
from fastapi import APIRouter, Request
from starlette.responses import Response

from sentrail.evidence.checkpoint import Checkpoint as TreeHead
from sentrail.evidence.note import split_note
from sentrail.service.http import b64, iso
from sentrail.store.records import records
from sentrail.ui import replay_audit, timeline
from sentrail.ui.runs import LoadedRun, load_run
from sentrail.ui.web import Dashboard, UiError

HASH_PATTERN = "^[0-9a-f]{64}$"


class RunTab(msgspec.Struct, frozen=True):
    slug: str
    title: str
    template: str
    context: Callable[[Dashboard, LoadedRun, Request], dict[str, Any]]


def timeline_context(dash: Dashboard, loaded: LoadedRun, request: Request) -> dict[str, Any]:
    steps = loaded.run.steps if loaded.run is not None else []
    registry = dash.svc.ingestor.engine.policy.registry
    return {"timeline": timeline.build(steps, loaded.findings, lambda t: registry.risk(t).value)}


def _decisions_ctx(dash: Dashboard, loaded: LoadedRun, request: Request) -> dict[str, Any]:
    steps = loaded.run.steps if loaded.run is not None else []
    return {"branching": [s for s in steps if s.alternatives]}


def _provenance_ctx(dash: Dashboard, loaded: LoadedRun, request: Request) -> dict[str, Any]:
    return {}


TABS: tuple[RunTab, ...] = (
    RunTab("timeline", "Timeline", "run_timeline.html", timeline_context),
    RunTab("decisions", "Decision tree", "run_decisions.html", _decisions_ctx),
    RunTab("provenance", "Provenance", "run_provenance.html", _provenance_ctx),
    RunTab("replay", "Replay audit", "run_replay.html", replay_audit.replay_context),
)


def load_for_app(dash: Dashboard, request: Request, app: str, trace_hash: str) -> LoadedRun:
    session = dash.for_app(request, app)
    if len(trace_hash) != 64 or any(c not in "0123456789abcdef" for c in trace_hash):
        raise UiError(404, "no such run")
    loaded = load_run(dash.svc.store, session.tenant_id, app, trace_hash)
    if loaded is None:
        raise UiError(404, "no run with this trace hash in this app")
    return loaded


def proof_document(dash: Dashboard, loaded: LoadedRun) -> dict[str, Any]:
    """What the browser needs to verify the run's events against a signed checkpoint
    itself: each event's leaf fields, the latest checkpoint note, and an inclusion proof
    per event the checkpoint covers (events after it are shown as not yet covered).

    ``leaf_version`` says which leaf encoding an event has (2 since schema v5: it commits
    to ``app_id``, ``received_at`` — exact Unix seconds, the binary64 the leaf holds —
    and ``sealed``; 1 for events stored before). ``received`` is ``received_at`` for
    people (RFC 3339)."""
    store = dash.svc.store
    tenant = loaded.row.tenant_id
    checkpoint = store.latest_checkpoint(tenant)
    events = loaded.events
    in_tree = [e for e in events if checkpoint is not None and e.seq < checkpoint.size]
    paths: list[list[bytes]] = []
    if checkpoint is not None and in_tree:
        paths, _ = store.proofs(tenant, checkpoint.size, leaves=[e.seq for e in in_tree])
    proofs = {e.seq: [b64(h) for h in p] for e, p in zip(in_tree, paths, strict=True)}
    head = TreeHead.parse(split_note(checkpoint.note)[0]) if checkpoint is not None else None
    return {
        "tenant": tenant,
        "app_id": loaded.row.app_id,
        "run_id": loaded.row.run_id,
        "trace_hash": loaded.row.trace_hash,
        "source_seq": loaded.source_seq,
        "step_events": {str(k): v for k, v in loaded.step_events.items()},
        "checkpoint": None
        if checkpoint is None or head is None
        else {"note": checkpoint.note, "tree_size": head.size, "origin": head.origin},
        "events": [
            {
                "seq": e.seq,
                "event_id": e.event_id,
                "kind": e.kind,
                "payload_sha256": e.payload_sha256.hex(),
                "prev_hash": e.prev_hash.hex(),
                "chain_hash": e.chain_hash.hex(),
                "redacted": e.payload is None,
                "leaf_version": e.leaf_version,
                "received_at": e.received_at,
                "received": iso(e.received_at),
                "sealed": e.sealed,
                "proof": proofs.get(e.seq),
            }
            for e in events
        ],
    }


def payload_stream(loaded: LoadedRun) -> bytes:
    """Every event's exact stored payload, in event order, each as u64 seq, u32 length
    (0xFFFFFFFF when redacted), bytes: one download the browser hashes itself."""
    out = bytearray()
    for e in loaded.events:
        if e.payload is None:
            out += struct.pack(">QI", e.seq, 0xFFFFFFFF)
        else:
            out += struct.pack(">QI", e.seq, len(e.payload)) + e.payload
    return bytes(out)


def router(dash: Dashboard) -> APIRouter:
    r = APIRouter()

    @r.get("/apps/{app}/runs/{trace_hash}")
    def run_view(request: Request, app: str, trace_hash: str, tab: str = "timeline") -> Response:
        session = dash.for_app(request, app)
        loaded = load_for_app(dash, request, app, trace_hash)
        chosen = next((t for t in TABS if t.slug == tab), None)
        if chosen is None:
            raise UiError(404, f"no tab {tab!r}")
        with records(dash.svc.store) as rtx:
            frozen = any(
                c.kind == "freeze_run" and c.target == loaded.row.run_id
                for c in rtx.containment_log(session.tenant_id)
            )
        return dash.render(
            request,
            "run.html",
            session,
            app=app,
            nav="runs",
            loaded=loaded,
            row=loaded.row,
            run=loaded.run,
            tabs=TABS,
            tab=chosen,
            frozen=frozen,
            by_step={
                i: [f for f in loaded.findings if f.step_index == i] for i in loaded.step_events
            },
            **chosen.context(dash, loaded, request),
        )

    @r.get("/apps/{app}/runs/{trace_hash}/provenance.json")
    def provenance(request: Request, app: str, trace_hash: str) -> Response:
        loaded = load_for_app(dash, request, app, trace_hash)
        return Response(
            msgspec.json.encode(proof_document(dash, loaded)),
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    @r.get("/apps/{app}/runs/{trace_hash}/payloads.bin")
    def payloads(request: Request, app: str, trace_hash: str) -> Response:
        loaded = load_for_app(dash, request, app, trace_hash)
        return Response(
            payload_stream(loaded),
            media_type="application/octet-stream",
            headers={
                "Cache-Control": "no-store",
                "Content-Disposition": "attachment; filename=payloads.bin",
            },
        )

    return r
