"""``sentrail graph``: the execution graph of one run, or every run that used a value.

    sentrail graph --run ID [--tenant T] [--app A] [--format json|dot]
    sentrail graph --value VALUE [--since 30d] [--tenant T] [--app A] [--format json|dot]
    sentrail graph --reindex [--tenant T]     # backfill the value index (schema v4)

JSON is documented in docs/forensics.md; DOT renders with Graphviz (``| dot -Tsvg``).
Every query is bounded by ``--tenant`` (and ``--app`` when given; ``--run`` without it
finds the one app of the tenant that holds the run id).
"""

from __future__ import annotations

import enum
import sys
from typing import Annotated

import typer

from sentrail.cli.common import EXIT_OK, fail
from sentrail.cli.investigate import emit_json, find_run, since_epoch
from sentrail.cli.store_access import Database, open_migrated
from sentrail.errors import SentrailError
from sentrail.forensics.dot import render_dot
from sentrail.forensics.graph import Graph, run_graph, value_graph
from sentrail.report.escape import safe_text
from sentrail.runtime.logged_runs import reindex, value_uses


class Format(enum.StrEnum):
    json = "json"
    dot = "dot"


def graph(
    run_id: Annotated[str | None, typer.Option("--run", help="One run's execution graph")] = None,
    value: Annotated[
        str | None, typer.Option("--value", help="Every run that used this value")
    ] = None,
    rebuild: Annotated[
        bool, typer.Option("--reindex", help="Backfill the value index from stored runs")
    ] = False,
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id")] = "default",
    app: Annotated[
        str | None, typer.Option("--app", help="Only this app (default: every app)")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="--value: ISO time or 30m, 24h, 30d")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000)] = 1000,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.json,
    database: Database = None,
) -> None:
    """The execution graph of a run, or the runs, agents and apps linked by a value."""
    if sum((run_id is not None, value is not None, rebuild)) != 1:
        fail("give exactly one of --run ID, --value VALUE or --reindex")
    store = open_migrated(database)
    try:
        if rebuild:
            done = reindex(store, tenant)
            typer.echo(f"Indexed the values of {done} run(s) of tenant {safe_text(tenant)}")
            raise typer.Exit(EXIT_OK)
        if run_id is not None:
            found = find_run(store, tenant, app, run_id)
            s = found.stored
            if s.run is None:
                fail(f"run {run_id!r} has no readable trace (its payloads were erased)")
            g = run_graph(s.run, s.result, found.decisions, policy_sha256=s.policy_sha256)
        else:
            assert value is not None
            if not value.strip() or len(value) > 4096:
                fail("--value must be 1-4096 characters")
            uses, cut = value_uses(
                store, tenant, value, app=app, since=since_epoch(since), limit=limit
            )
            g = value_graph(value, uses, truncated=cut)
            g.scope.update({"tenant": tenant, "app": app, "since": since, "runs": _runs(g)})
    except SentrailError as exc:
        fail(str(exc))
    finally:
        store.close()
    _print(g, fmt)


def _runs(g: Graph) -> int:
    return sum(n.kind == "run" for n in g.nodes)


def _print(g: Graph, fmt: Format) -> None:
    if fmt is Format.dot:
        sys.stdout.write(render_dot(g))
        sys.stdout.flush()
    else:
        emit_json(g)
