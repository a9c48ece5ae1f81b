"""The investigation routes (docs/service.md, docs/forensics.md): a run's execution graph,
the runs that used a value, and the explanations a trace's detail carries.

Every query is bounded by the key's tenant and by the app in the path (which the key must
be allowed to use); a run of another app of the tenant is "not found" here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import FastAPI, Path, Query
from starlette.responses import Response

from sentrail.enforce.model import decode_decisions
from sentrail.forensics.explain import Explanation, explain
from sentrail.forensics.graph import run_graph, value_graph
from sentrail.runtime.logged_runs import LoggedRun, load_run, value_uses
from sentrail.service.deps import AppId, Read
from sentrail.service.http import json_response, parse_time
from sentrail.service.problems import ProblemError
from sentrail.store.core import LogStore

if TYPE_CHECKING:
    from sentrail.service.app import Services

RUN_ID = r"^[^\x00-\x1f\x7f]{1,1024}$"


def stored_run(store: LogStore, tenant: str, app: str, run_id: str) -> LoggedRun:
    """The run of this tenant and app, or a 404 (another app's run of the same id is
    another run: it is never read here)."""
    stored = load_run(store, tenant, app, run_id)
    if stored is None:
        raise ProblemError(404, "not-found", "no run with this id in this app")
    return stored


def explanations_of(stored: LoggedRun) -> list[Explanation]:
    """The explanations of a stored run (JSON-ready): its decisions', and its findings' when
    it was analysed."""
    decisions = decode_decisions(stored.decision_payloads)
    return explain(stored.run, stored.result, decisions)


def add_forensics_routes(app: FastAPI, svc: Services) -> None:
    @app.get("/v1/apps/{app_id}/runs/{run_id}/graph", tags=["forensics"])
    def get_run_graph(
        app_id: AppId,
        run_id: Annotated[str, Path(pattern=RUN_ID)],
        who: Read,
    ) -> Response:
        """The execution graph of one run (docs/forensics.md)."""
        stored = stored_run(svc.store, who.tenant_id, app_id, run_id)
        if stored.run is None:
            raise ProblemError(410, "erased", "this run's payloads were erased (redacted)")
        decisions = decode_decisions(stored.decision_payloads)
        graph = run_graph(stored.run, stored.result, decisions, policy_sha256=stored.policy_sha256)
        return json_response(graph)

    @app.get("/v1/apps/{app_id}/graph", tags=["forensics"])
    def get_value_graph(
        app_id: AppId,
        who: Read,
        value: Annotated[str, Query(min_length=1, max_length=4096)],
        since: Annotated[str | None, Query(description="RFC 3339 or Unix seconds")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> Response:
        """The runs of this app that used ``value``, with their agents (docs/forensics.md)."""
        uses, cut = value_uses(
            svc.store,
            who.tenant_id,
            value,
            app=app_id,
            since=parse_time(since, "since"),
            limit=limit,
        )
        graph = value_graph(value, uses, truncated=cut)
        graph.scope.update({"app": app_id, "since": since})
        return json_response(graph)
