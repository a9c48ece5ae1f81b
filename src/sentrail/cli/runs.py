"""``sentrail runs list|show`` and ``sentrail findings list|resolve|reopen``: finding what to
investigate without the HTTP service, with the API's filters (docs/forensics.md).

Text output escapes every stored string (it came from a trace); ``--format json`` prints one
JSON document for scripts. The store is the default one (``$SENTRAIL_HOME/sentrail.db``) or
``--database``; every query is bounded by ``--tenant`` (and ``--app`` when given).
"""

from __future__ import annotations

import enum
import time
from fnmatch import fnmatchcase
from typing import Annotated, Any

import msgspec
import typer

from sentrail.cli.common import EXIT_OK, fail
from sentrail.cli.investigate import emit_json, find_run, iso, since_epoch, tenant_apps
from sentrail.cli.store_access import Database, key_store, open_migrated
from sentrail.errors import SentrailError
from sentrail.forensics.explain import explain, explain_finding
from sentrail.model.finding import Finding
from sentrail.report.escape import safe_text
from sentrail.store.core import LogStore
from sentrail.store.records import FindingFilter, FindingRow, RunFilter, RunRow, records
from sentrail.store.triage import triage_finding

runs_app = typer.Typer(help="Stored runs: find what to investigate.", no_args_is_help=True)
findings_app = typer.Typer(help="Stored findings and their triage.", no_args_is_help=True)
PAGE = 500


class Format(enum.StrEnum):
    text = "text"
    json = "json"


class Verdict(enum.StrEnum):
    allowed = "allowed"
    suspicious = "suspicious"
    unauthorized = "unauthorized"


class Status(enum.StrEnum):
    executed = "executed"
    blocked = "blocked"
    pending_approval = "pending_approval"
    running = "running"


class Severity(enum.StrEnum):
    info = "info"
    warning = "warning"
    critical = "critical"


Tenant = Annotated[str, typer.Option("--tenant", help="Tenant id")]
App = Annotated[str | None, typer.Option("--app", help="Only this app (default: every app)")]
Fmt = Annotated[Format, typer.Option("--format", "-f", help="text, or json for scripts")]
Limit = Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000, help="At most N")]


def run_item(row: RunRow) -> dict[str, Any]:
    return {
        "run_id": row.run_id,
        "app_id": row.app_id,
        "agent_id": row.agent_id,
        "status": row.status,
        "verdict": row.verdict,
        "risk_score": row.risk_score,
        "blocked_by": row.blocked_by,
        "started_at": iso(row.started_at),
        "steps": row.steps,
        "findings": row.findings,
        "finding_counts": row.counts,
        "trace_hash": row.trace_hash,
    }


def _runs(
    store: LogStore, tenant: str, apps: list[str], flt: RunFilter, glob: str | None, limit: int
) -> list[RunRow]:
    """Newest first across ``apps``; an ``--agent`` glob is matched page by page."""
    out: list[RunRow] = []
    with records(store) as rtx:
        for app in apps:
            after: tuple[float, str] | None = None
            kept = 0
            while kept < limit:
                page = rtx.list_runs(tenant, app, flt, PAGE, after)
                for row in page:
                    if glob is None or fnmatchcase(row.agent_id, glob):
                        out.append(row)
                        kept += 1
                if len(page) < PAGE:
                    break
                after = (page[-1].started_at, page[-1].run_id)
    out.sort(key=lambda r: (r.started_at, r.run_id), reverse=True)
    return out[:limit]


@runs_app.command("list")
def list_runs(
    tenant: Tenant = "default",
    app: App = None,
    agent: Annotated[
        str | None, typer.Option("--agent", help="Agent id or glob (prod-triage-*)")
    ] = None,
    verdict: Annotated[Verdict | None, typer.Option("--verdict")] = None,
    status: Annotated[Status | None, typer.Option("--status")] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO time or 30m, 24h, 7d")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO time or 30m, 24h, 7d")] = None,
    limit: Limit = 50,
    fmt: Fmt = Format.text,
    database: Database = None,
) -> None:
    """Stored runs, newest first."""
    glob = agent if agent is not None and any(c in agent for c in "*?[") else None
    flt = RunFilter(
        status=status.value if status else None,
        agent=agent if glob is None else None,
        verdict=verdict.value if verdict else None,
        since=since_epoch(since),
        until=since_epoch(until),
    )
    store = open_migrated(database)
    try:
        rows = _runs(store, tenant, tenant_apps(store, tenant, app), flt, glob, limit)
    except SentrailError as exc:
        fail(str(exc))
    finally:
        store.close()
    if fmt is Format.json:
        emit_json({"tenant": tenant, "items": [run_item(r) for r in rows]})
        raise typer.Exit(EXIT_OK)
    if not rows:
        filtered = any(v is not None for v in (agent, verdict, status, since, until))
        typer.echo(f"No runs stored for {_where(tenant, app, filtered)}.")
    for r in rows:
        worst = (
            "critical" if r.counts.get("critical") else "warning" if r.counts.get("warning") else ""
        )
        typer.echo(
            f"{iso(r.started_at)}  {safe_text(r.run_id, limit=80)}  app={safe_text(r.app_id)}  "
            f"agent={safe_text(r.agent_id, limit=80)}  {r.verdict} risk={r.risk_score}  "
            f"{r.status}  findings={r.findings}{f' ({worst})' if worst else ''}"
        )


@runs_app.command("show")
def show_run(
    run_id: Annotated[str, typer.Argument(help="Run id")],
    tenant: Tenant = "default",
    app: App = None,
    fmt: Fmt = Format.text,
    database: Database = None,
) -> None:
    """One run: its index row, its steps, and why each flagged step was flagged."""
    store = open_migrated(database)
    try:
        found = find_run(store, tenant, app, run_id)
        with records(store) as rtx:
            row = rtx.get_run(tenant, found.stored.app_id, run_id)
    except SentrailError as exc:
        fail(str(exc))
    finally:
        store.close()
    s = found.stored
    explanations = explain(s.run, s.result, found.decisions)
    if fmt is Format.json:
        emit_json(
            {
                "run": run_item(row) if row is not None else None,
                "trace": s.run,
                "result": s.result,
                "decisions": found.decisions,
                "explanations": explanations,
            }
        )
        raise typer.Exit(EXIT_OK)
    typer.echo(f"Run: {safe_text(run_id)}")
    if row is not None:
        typer.echo(
            f"App: {safe_text(row.app_id)}  Agent: {safe_text(row.agent_id)}  "
            f"Started: {iso(row.started_at)}  Status: {row.status}"
        )
        typer.echo(f"Verdict: {row.verdict} (risk score {row.risk_score}/100)")
    if s.run is None and found.decisions and s.result is None:
        typer.echo("Trace: none stored (the decision point recorded its decisions only)")
    elif s.run is None:
        typer.echo("Trace: not available (its payloads were erased)")
    else:
        typer.echo(f"Trigger: {safe_text(s.run.trigger or '(none)')}")
        typer.echo("Steps:")
        for step in s.run.steps:
            call = step.tool_call
            status = step.result.status if step.result else None
            typer.echo(
                f"  [{step.step_index}] {safe_text(step.action or '-', limit=60)}  "
                f"{safe_text(call.tool if call else '-', limit=80)}  {safe_text(status or '-')}"
            )
    typer.echo("Why:" if explanations else "Why: nothing was blocked, held or flagged")
    for e in explanations:
        where = f"step {e.step_index}" if e.step_index is not None else "run"
        label = e.severity or e.outcome
        typer.echo(f"  [{label}] {where} {safe_text(e.rule_id)}: because {safe_text(e.because)}")
    for d in found.decisions:
        typer.echo(
            f"Decision {safe_text(d.decision_id)}: {d.outcome.value} by {d.control.value} "
            f"({safe_text(d.tool)}, step {d.step_index})"
        )


def finding_item(row: FindingRow, because: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": row.finding_id,
        "app_id": row.app_id,
        "run_id": row.run_id,
        "category": row.category,
        "severity": row.severity,
        "rule": row.rule_id,
        "step": row.step,
        "resolved": row.resolved,
        "resolved_at": iso(row.resolved_at),
        "resolved_by": row.resolved_by,
        "created_at": iso(row.created_at),
        "finding": msgspec.Raw(row.body),
    }
    if because is not None:
        item["because"] = because
    return item


def _where(tenant: str, app: str | None, filtered: bool) -> str:
    """Where an empty list looked: "tenant t, app a that match the filters"."""
    where = f"tenant {safe_text(tenant)}" + ("" if app is None else f", app {safe_text(app)}")
    return where + (" that match the filters" if filtered else "")


@findings_app.command("list")
def list_findings(
    tenant: Tenant = "default",
    app: App = None,
    run: Annotated[str | None, typer.Option("--run", help="Only this run")] = None,
    category: Annotated[str | None, typer.Option("--category")] = None,
    severity: Annotated[Severity | None, typer.Option("--severity")] = None,
    resolved: Annotated[
        bool | None, typer.Option("--resolved/--open", help="Only resolved, or only open")
    ] = None,
    limit: Limit = 50,
    fmt: Fmt = Format.text,
    database: Database = None,
) -> None:
    """Stored findings, by id, each with why it was raised."""
    flt = FindingFilter(
        category=category,
        severity=severity.value if severity else None,
        resolved=resolved,
        run_id=run,
    )
    store = open_migrated(database)
    try:
        rows: list[FindingRow] = []
        apps = tenant_apps(store, tenant, app)
        with records(store) as rtx:
            for a in apps:
                rows.extend(rtx.list_findings(tenant, a, flt, limit))
    except SentrailError as exc:
        fail(str(exc))
    finally:
        store.close()
    rows = sorted(rows, key=lambda r: r.finding_id)[:limit]
    items: list[tuple[FindingRow, str | None]] = []
    for r in rows:
        try:
            f = msgspec.json.decode(r.body, type=Finding)
        except (msgspec.DecodeError, msgspec.ValidationError):
            items.append((r, None))
            continue
        items.append((r, explain_finding(f).because))
    if fmt is Format.json:
        emit_json({"tenant": tenant, "items": [finding_item(r, b) for r, b in items]})
        raise typer.Exit(EXIT_OK)
    if not items:
        filtered = any(v is not None for v in (run, category, severity, resolved))
        typer.echo(f"No findings stored for {_where(tenant, app, filtered)}.")
    for r, because in items:
        state = f"resolved by {safe_text(r.resolved_by)}" if r.resolved else "open"
        typer.echo(
            f"{r.finding_id}  {r.severity:<8} {safe_text(r.rule_id, limit=80)}  "
            f"run={safe_text(r.run_id, limit=80)} step={r.step}  {state}"
        )
        if because:
            typer.echo(f"    because {safe_text(because)}")


def _triage(
    finding_id: str,
    resolve: bool,
    by: str,
    comment: str,
    tenant: str,
    app: str | None,
    db: str | None,
) -> None:
    """Resolve or reopen through the log: a ``triage`` event in the run's chain and the
    audit row, in one transaction (:mod:`sentrail.store.triage`), signed like any append."""
    if not by.strip() or not comment.strip() or len(comment) > 4096:
        fail("--by and a --comment of 1-4096 characters are required")
    try:
        signer = key_store().ensure()
    except SentrailError as exc:
        fail(str(exc))
    store = open_migrated(db, signer)
    try:
        with records(store) as rtx:
            apps = [app] if app is not None else rtx.finding_apps(tenant, finding_id)
        if len(apps) > 1:
            fail(f"apps {', '.join(apps)} each hold a finding {finding_id!r}: name one with --app")
        done = apps and triage_finding(
            store,
            tenant,
            apps[0],
            finding_id,
            resolved=resolve,
            by=f"cli:{by}",
            comment=comment,
            now=time.time(),
        )
        if not done:
            fail(f"no finding {finding_id!r} for tenant {tenant!r}")
    except SentrailError as exc:
        fail(str(exc))
    finally:
        store.close()
    typer.echo(f"{'Resolved' if resolve else 'Reopened'} {safe_text(finding_id)}")


By = Annotated[str, typer.Option("--by", help="Who (recorded in the audit trail)")]
Comment = Annotated[str, typer.Option("--comment", help="Why (recorded in the audit trail)")]


@findings_app.command("resolve")
def resolve(
    finding_id: Annotated[str, typer.Argument(help="Finding id")],
    by: By,
    comment: Comment,
    tenant: Tenant = "default",
    app: App = None,
    database: Database = None,
) -> None:
    """Mark a finding resolved (audited: who, when, why)."""
    _triage(finding_id, True, by, comment, tenant, app, database)


@findings_app.command("reopen")
def reopen(
    finding_id: Annotated[str, typer.Argument(help="Finding id")],
    by: By,
    comment: Comment,
    tenant: Tenant = "default",
    app: App = None,
    database: Database = None,
) -> None:
    """Reopen a resolved finding (audited)."""
    _triage(finding_id, False, by, comment, tenant, app, database)
