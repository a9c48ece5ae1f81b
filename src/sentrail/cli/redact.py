"""``sentrail redact`` and ``sentrail retention set|apply``: crypto-erasure of run payloads.

``redact`` erases a run's payloads (its data key), or with ``--field`` keeps a redacted
view of each JSON payload, and records who did it, when and why as an event in the run's
own hash chain (:mod:`sentrail.store.erasure`). ``retention set`` keeps a tenant's runs
for N days after their newest event; ``retention apply`` redacts every run past it
(``--dry-run`` only lists them). Both sign a fresh checkpoint of each tenant they change.
"""

from __future__ import annotations

from typing import Annotated

import typer

from sentrail.cli.common import EXIT_OK, fail
from sentrail.cli.store import Database, _keys, _open
from sentrail.errors import SentrailError
from sentrail.evidence.redaction import iso_time
from sentrail.report.escape import safe_text
from sentrail.store.base import Redaction
from sentrail.store.core import LogStore

retention_app = typer.Typer(
    help="How long each tenant's run payloads are kept.", no_args_is_help=True
)


def _open_signed(database: str | None) -> LogStore:
    try:
        signer = _keys().ensure()
    except SentrailError as exc:
        fail(str(exc))
    return _open(database, signer)


def _describe(r: Redaction) -> str:
    what = f"fields {', '.join(r.fields)}" if r.fields else "whole payloads"
    return (
        f"Redacted run {safe_text(r.run_id)} of app {safe_text(r.app_id)} of tenant "
        f"{safe_text(r.tenant_id)} "
        f"({safe_text(what)}): {len(r.erased_seqs)} payload(s) erased, {len(r.views)} "
        f"view(s) kept; recorded at seq {r.seq} by {safe_text(r.by)} at "
        f"{iso_time(r.redacted_at)}: {safe_text(r.reason)}"
    )


def redact(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id")],
    run_id: Annotated[str, typer.Option("--run", help="Run id")],
    by: Annotated[str, typer.Option("--by", help="Who redacts (recorded in the log)")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the log)")],
    field: Annotated[
        list[str] | None,
        typer.Option(
            "--field",
            help="Dotted path to redact (repeatable; '*' matches any key or index, a name "
            "without a dot matches at any depth). Without --field the whole payloads go.",
        ),
    ] = None,
    app_id: Annotated[str, typer.Option("--app", help="App id of the run")] = "default",
    database: Database = None,
) -> None:
    """Erase a run's payloads (or fields of them); verification still passes."""
    store = _open_signed(database)
    try:
        done = store.redact(tenant, app_id, run_id, by=by, reason=reason, fields=field or ())
        store.checkpoint(tenant)
    except SentrailError as exc:
        fail(str(exc))
    finally:
        store.close()
    typer.echo(_describe(done))


@retention_app.command("set")
def retention_set(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id")],
    days: Annotated[str, typer.Option("--days", help="Days to keep runs, or 'none' (forever)")],
    database: Database = None,
) -> None:
    """Keep a tenant's runs for N days after their newest event (or forever: none)."""
    text = days.strip().lower()
    value: int | None = None
    if text not in ("none", "forever"):
        if not text.isdigit():
            fail(f"--days takes a whole number of days or 'none', not {safe_text(days)!r}")
        value = int(text)
    store = _open(database)
    try:
        store.set_retention(tenant, value)
    except SentrailError as exc:
        fail(str(exc))
    finally:
        store.close()
    kept = "forever" if value is None else f"{value} day(s) after their newest event"
    typer.echo(f"Retention of tenant {safe_text(tenant)}: runs are kept {kept}")


@retention_app.command("apply")
def retention_apply(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list the runs that would be erased")
    ] = False,
    database: Database = None,
) -> None:
    """Redact every run whose newest event is older than its tenant's retention."""
    store = _open(database) if dry_run else _open_signed(database)
    try:
        if dry_run:
            due = store.retention_due(tenant=tenant)
            for d in due:
                typer.echo(
                    f"would erase: run {safe_text(d.run_id)} of app {safe_text(d.app_id)} of "
                    f"tenant {safe_text(d.tenant_id)} "
                    f"(newest event {iso_time(d.newest_at)}, retention {d.days} day(s))"
                )
            typer.echo(f"{len(due)} run(s) would be erased (dry run: nothing changed)")
            raise typer.Exit(EXIT_OK)
        done = store.apply_retention(tenant=tenant)
        for t in dict.fromkeys(r.tenant_id for r in done):
            store.checkpoint(t)
    except SentrailError as exc:
        fail(str(exc))
    finally:
        store.close()
    for r in done:
        typer.echo(_describe(r))
    typer.echo(f"{len(done)} run(s) erased by retention")
