"""The run page's replay audit tab, and the cross-run graph of one value.

The tab replays the run (the exact stored bytes, :mod:`sentrail.runtime.replay`) under a
stored policy bundle the app may use — the ones its runs were judged with and the
service's current one, picked with a GET form (``?tab=replay&policy=SHA256``; no state
changes) — or under its own, and shows:

- the replay diff step by step: every step whose findings or decision differ, and every
  step with findings on either side, each marked *changed* or *unchanged* in words (colour
  is never the only signal);
- why each step is blocked, held or flagged (:func:`sentrail.forensics.explain.explain`):
  the recorded decisions (what the decision point did) and the findings under the
  replayed bundle;
- the run's execution graph (:func:`sentrail.forensics.graph.run_graph`) as lists of nodes
  and edges, each value linking to the runs of the app that used it
  (``/ui/apps/{app}/graph``, the dashboard's ``sentrail graph --value``).

Every string from the trace or a bundle is rendered through the ``inert`` filters.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from fastapi import APIRouter, Request
from starlette.responses import Response

from sentrail.enforce.model import decode_decisions
from sentrail.engine.scoring import call_outcome
from sentrail.forensics.explain import Explanation, explain
from sentrail.forensics.graph import Graph, Node, run_graph, value_graph
from sentrail.forensics.replay import FindingRef, StepChange
from sentrail.model.finding import Finding, RunResult
from sentrail.runtime.logged_runs import value_uses
from sentrail.runtime.replay import Replay
from sentrail.service.problems import ProblemError
from sentrail.service.replay import Bundle, replay_run
from sentrail.store.records import records
from sentrail.ui.runs import LoadedRun
from sentrail.ui.web import Dashboard, UiError

SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_NODES = 600  # graph nodes listed on the page (the API has them all)
MAX_EDGES = 1_000
MAX_VALUE_RUNS = 200
VALUE_KINDS = ("account", "recipient", "url", "host", "path", "command", "credential")
KIND_ORDER = (
    "run",
    "agent",
    "attestation",
    "policy",
    "trigger",
    "step",
    "result",
    "value",
    "finding",
    "decision",
    "approval",
)


class StepRow(msgspec.Struct):
    """One step of the diff as the tab shows it (``index`` None: the run as a whole)."""

    index: int | None
    tool: str | None
    changed: bool
    decision_before: str | None
    decision_after: str | None
    added: list[FindingRef]
    gone: list[FindingRef]
    severity_changed: list[Any]
    kept: list[FindingRef]  # findings on both sides, unchanged


def _ref(f: Finding) -> FindingRef:
    return FindingRef(f.id, f.rule, f.severity.value, f.category.value, f.message[:300])


def step_rows(replay: Replay) -> list[StepRow]:
    """The diff's changed steps, and the unchanged steps that hold findings on both sides."""
    changed: dict[int | None, StepChange] = {s.step_index: s for s in replay.diff.steps}
    before: dict[int | None, list[Finding]] = {}
    for f in replay.before.findings:
        before.setdefault(f.step_index, []).append(f)
    after_ids = {f.id for f in replay.after.findings}
    tools = {s.step_index: s.tool_call.tool for s in replay.run.steps if s.tool_call is not None}
    keys = sorted(set(changed) | set(before), key=lambda k: -1 if k is None else k)
    rows = []
    for index in keys:
        was = before.get(index, [])
        c = changed.get(index)
        if c is not None:
            moved = {m.id for m in c.severity_changed}
            kept = [_ref(f) for f in was if f.id in after_ids and f.id not in moved]
            rows.append(
                StepRow(
                    index,
                    c.tool,
                    True,
                    c.decision_before,
                    c.decision_after,
                    c.added,
                    c.gone,
                    list(c.severity_changed),
                    kept,
                )
            )
        else:
            decision = call_outcome(was) if index is not None else None
            rows.append(
                StepRow(
                    index,
                    tools.get(index) if index is not None else None,
                    False,
                    decision,
                    decision,
                    [],
                    [],
                    [],
                    [_ref(f) for f in was],
                )
            )
    return rows


def _explanations(loaded: LoadedRun, replay: Replay) -> list[Explanation]:
    """Recorded decisions that blocked, held or modified, and the replayed findings."""
    payloads = [e.payload for e in loaded.events if e.kind == "decision" and e.payload]
    return explain(replay.run, replay.after, decode_decisions(payloads))


class GraphView(msgspec.Struct):
    groups: list[tuple[str, list[Node]]]
    edges: list[Any]
    labels: dict[str, str]
    nodes: int
    edges_total: int
    truncated: bool


def graph_view(graph: Graph) -> GraphView:
    """The graph for the page: nodes grouped by kind, edges with their ends' labels."""
    by_kind: dict[str, list[Node]] = {}
    for n in graph.nodes[:MAX_NODES]:
        by_kind.setdefault(n.kind, []).append(n)
    order = {k: i for i, k in enumerate(KIND_ORDER)}
    groups = sorted(by_kind.items(), key=lambda kv: (order.get(kv[0], 99), kv[0]))
    labels = {n.id: n.label for n in graph.nodes}
    return GraphView(
        groups,
        graph.edges[:MAX_EDGES],
        labels,
        len(graph.nodes),
        len(graph.edges),
        graph.truncated or len(graph.nodes) > MAX_NODES or len(graph.edges) > MAX_EDGES,
    )


def value_link_params(node: Node) -> dict[str, str] | None:
    """The query of the value's cross-run graph (a value node's id is ``value:KIND:KEY``)."""
    if node.kind != "value":
        return None
    _, kind, key = node.id.split(":", 2)
    return {"kind": kind, "key": key} if kind in VALUE_KINDS else None


def replay_context(dash: Dashboard, loaded: LoadedRun, request: Request) -> dict[str, Any]:
    raw = request.query_params.get("policy", "")
    if raw not in ("", "own") and not SHA256.fullmatch(raw):
        raise UiError(400, "policy: expected the SHA-256 of a stored bundle (64 hex digits)")
    chosen = raw if SHA256.fullmatch(raw) else None
    row = loaded.row
    svc = dash.svc
    bundles: list[Bundle] = svc.bundles.listing(row.tenant_id, row.app_id)
    ctx: dict[str, Any] = {
        "bundles": bundles,
        "chosen": chosen,
        "own_sha": row.policy_sha256,
        "audit": None,
        "audit_error": None,
        "value_link": value_link_params,
    }
    if loaded.run is None:
        return ctx
    try:
        done = replay_run(svc, row.tenant_id, row.app_id, row.run_id, chosen)
    except ProblemError as exc:
        if exc.status in (400, 404) and chosen is not None:
            raise UiError(exc.status, exc.detail) from None
        ctx["audit_error"] = exc.detail
        return ctx
    payloads = [e.payload for e in loaded.events if e.kind == "decision" and e.payload]
    stored: RunResult = done.before
    graph = run_graph(done.run, stored, decode_decisions(payloads), policy_sha256=row.policy_sha256)
    rows = step_rows(done)
    ctx["audit"] = {
        "diff": done.diff,
        "notes": done.notes,
        "rows": rows,
        "explanations": _explanations(loaded, done),
        "graph": graph_view(graph),
        "quiet_steps": len(done.run.steps) - sum(1 for r in rows if r.index is not None),
    }
    return ctx


def router(dash: Dashboard) -> APIRouter:
    r = APIRouter()

    @r.get("/apps/{app}/graph")
    def value_runs(
        request: Request, app: str, kind: str = "", key: str = "", value: str = ""
    ) -> Response:
        """The runs of this app that used one value (``sentrail graph --value``)."""
        session = dash.for_app(request, app)
        if kind or key:
            if kind not in VALUE_KINDS or not 0 < len(key) <= 4096:
                raise UiError(400, "kind and key: a value of the execution graph")
            exact: tuple[str, str] | None = (kind, key)
            shown = key
        else:
            if not 0 < len(value) <= 4096:
                raise UiError(400, "value: 1 to 4,096 characters")
            exact, shown = None, value
        uses, cut = value_uses(
            dash.svc.store,
            session.tenant_id,
            shown,
            app=app,
            limit=MAX_VALUE_RUNS,
            exact=exact,
        )
        if exact is not None and uses:
            shown = uses[0].display
        graph = value_graph(shown, uses, truncated=cut)
        hashes: dict[str, str] = {}
        with records(dash.svc.store) as rtx:
            for run_id in dict.fromkeys(u.run_id for u in uses):
                row = rtx.get_run(session.tenant_id, app, run_id)
                if row is not None:
                    hashes[run_id] = row.trace_hash
        return dash.render(
            request,
            "value_graph.html",
            session,
            app=app,
            nav="runs",
            shown=shown,
            kind=kind,
            uses=uses,
            hashes=hashes,
            graph=graph_view(graph),
            truncated=cut,
        )

    return r
