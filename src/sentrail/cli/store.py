"""``sentrail db upgrade``, ``ingest``, ``log checkpoint|verify``, ``evidence export|verify``.

``ingest`` stores exactly what it reads (see :mod:`sentrail.runtime.ingest`): a trace
document is one log event of kind ``trace`` with the file's bytes; an NDJSON stream is one
event per line. Ingesting the same files twice stores nothing new.

Default database: :func:`sentrail.cli.defaults.store_url` (``--database``, else
``$SENTRAIL_DATABASE``, else ``sqlite:///$SENTRAIL_HOME/sentrail.db``); keys:
``$SENTRAIL_HOME/keys`` (:mod:`.store_access`); the ``log`` commands are in :mod:`.log_cli`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sentrail.cli.common import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, fail
from sentrail.cli.defaults import shown_url, store_url
from sentrail.cli.investigate import app_of_run, export_bundle
from sentrail.cli.log_cli import log_app
from sentrail.cli.store_access import Database, keep_policy, key_store, open_migrated
from sentrail.engine.config import EngineConfig
from sentrail.errors import InputError, SentrailError
from sentrail.evidence.note import Verifier
from sentrail.evidence.redaction import RedactionInfo
from sentrail.evidence.verify import verify_bundle
from sentrail.report.escape import safe_text
from sentrail.runtime.ingest import Ingestor
from sentrail.runtime.sources import (
    is_event_stream_name,
    iter_trace_paths,
    looks_like_event_stream,
    read_document,
)
from sentrail.runtime.store_writer import StoreWriter

db_app = typer.Typer(help="The evidence database.", no_args_is_help=True)
evidence_app = typer.Typer(help="Offline-verifiable evidence bundles.", no_args_is_help=True)

__all__ = ["Database", "db_app", "evidence_app", "ingest", "log_app"]

# The opening helpers live in :mod:`.store_access` (the log commands share them); these
# names stay for the command modules that import them from here.
_keys = key_store
_open = open_migrated


@db_app.command("upgrade")
def upgrade(database: Database = None) -> None:
    """Create or upgrade the schema (idempotent)."""
    store = _open(database)
    try:
        version = store.migrate()
        typer.echo(f"Schema version: {version} ({shown_url(store_url(database))})")
    finally:
        store.close()


def ingest(
    path: Annotated[str, typer.Argument(help="Trace file, directory or NDJSON stream")],
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id")] = "default",
    app_id: Annotated[str, typer.Option("--app", help="App id")] = "default",
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            "-p",
            help="Judge with this policy bundle (kept in the store; runs cite its SHA-256)",
        ),
    ] = None,
    database: Database = None,
) -> None:
    """Store every run under PATH in the log, analyse it, and index the result."""
    try:
        signer = _keys().ensure()
        engine = EngineConfig(policy_path=str(policy) if policy else None).build()
        paths = list(iter_trace_paths(path))
    except SentrailError as exc:
        fail(str(exc))
    store = _open(database, signer)
    keep_policy(store, engine.policy.sha256, policy)
    writer = StoreWriter(store, policy_sha256=engine.policy.sha256)
    ingestor = Ingestor(store, engine, writer=writer)
    errors: list[str] = []
    stored = duplicates = runs = 0
    try:
        for p in paths:
            try:
                data = read_document(p)
                if is_event_stream_name(p) or looks_like_event_stream(data):
                    done = ingestor.ingest_events(tenant, app_id, data)
                    acks = done.acks
                    runs += len(done.completed_runs)
                else:
                    acks = [ingestor.ingest_trace(tenant, app_id, data).ack]
                    runs += 1
            except InputError as exc:  # this file (an EventConflict too); the others go on
                errors.append(f"{p}: {exc}")
                continue
            stored += sum(not a.duplicate for a in acks)
            duplicates += sum(a.duplicate for a in acks)
        if stored:
            store.checkpoint(tenant)
    except SentrailError as exc:
        fail(str(exc))
    finally:
        store.close()
    for err in errors:
        typer.echo(f"invalid: {safe_text(err)}", err=True)
    typer.echo(
        f"Ingested {len(paths)} file(s): {runs} run(s), {stored} new event(s), "
        f"{duplicates} duplicate(s), {len(errors)} invalid"
    )
    raise typer.Exit(EXIT_USAGE if errors else EXIT_OK)


@evidence_app.command("export")
def export(
    run_id: Annotated[str, typer.Option("--run", help="Run id")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Bundle zip to write")],
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id")] = "default",
    app: Annotated[
        str | None,
        typer.Option("--app", help="App id of the run (default: the one app that holds it)"),
    ] = None,
    database: Database = None,
) -> None:
    """Write the evidence bundle of one run (the tenant log is verified first)."""
    keys = _keys()
    try:
        signer = keys.ensure()
    except SentrailError as exc:
        fail(str(exc))
    store = _open(database, signer)
    try:
        app_id = app_of_run(store, tenant, app, run_id)
        count = export_bundle(store, keys, signer, tenant, app_id, run_id, output)
    except SentrailError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}")
    finally:
        store.close()
    typer.echo(f"Wrote {count} event(s) of run {safe_text(run_id)} to {safe_text(output)}")
    typer.echo(f"Signer: {signer.verifier_key()}")


@evidence_app.command("verify")
def verify(
    bundle: Annotated[Path, typer.Argument(help="Bundle zip")],
    key: Annotated[
        str | None, typer.Option("--key", help="Trusted verifier key (or a file of them)")
    ] = None,
) -> None:
    """Verify a bundle offline. Exit 0 valid; 1 the bundle does not verify (tampered,
    corrupt, or not signed by --key); 2 the file cannot be read or --key is malformed."""
    trusted = trusted_keys(key) if key is not None else None
    if not bundle.is_file():
        why = (
            "a directory, not a bundle file"
            if bundle.is_dir()
            else "not a regular file"
            if bundle.exists()
            else "no such file"
        )
        fail(f"cannot read {bundle}: {why}")
    try:
        report = verify_bundle(bundle, trusted)
    except SentrailError as exc:
        typer.echo(f"FAIL: {safe_text(str(exc))}")
        raise typer.Exit(EXIT_FINDINGS) from None
    except OSError as exc:
        fail(f"cannot read {bundle}: {exc.strerror}")
    app = f" of app {safe_text(report.app)}" if report.app is not None else ""
    typer.echo(
        f"OK: run {safe_text(report.run_id)}{app} of tenant {safe_text(report.tenant)}: "
        f"{report.events} event(s) (seq {report.first_seq}..{report.last_seq}), "
        f"{len(report.redacted_seqs)} redacted, checkpoint {safe_text(report.checkpoint_origin)} "
        f"size {report.checkpoint_size}"
    )
    for r in report.redactions:
        typer.echo(_redaction_line(r))
    if not report.key_pinned:
        typer.echo(
            "WARNING: no --key given: the signer is NOT pinned. The bundle was checked "
            "against the keys it carries itself, which proves it is intact but not who "
            "signed it. Pass --key VERIFIER_KEY to pin the signer.",
            err=True,
        )


def trusted_keys(key: str) -> list[str]:
    """The verifier keys ``--key`` names (a key, or a file of them, one a line), each
    checked now: a malformed key is a usage error (2), not a bundle that fails (1)."""
    path = Path(key)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"--key: cannot read {key}: {getattr(exc, 'strerror', None) or exc}")
        keys = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if not keys:
            fail(f"--key: {key} holds no verifier key")
    elif path.is_dir():
        fail(f"--key: {key} is a directory, not a key or a file of keys")
    elif "+" not in key:  # neither a file nor a key: most likely a mistyped path
        fail(f"--key: {key}: no such file, and not a verifier key (name+keyid+base64)")
    else:
        keys = [key]
    for k in keys:
        try:
            Verifier.parse(k)
        except SentrailError as exc:
            fail(
                f"--key: not a verifier key (name+keyid+base64, as `sentrail evidence key` "
                f"prints): {exc}"
            )
    return keys


def _seqs(seqs: tuple[int, ...], limit: int = 20) -> str:
    shown = ", ".join(str(s) for s in seqs[:limit])
    more = f" and {len(seqs) - limit} more" if len(seqs) > limit else ""
    return (shown + more) or "none"


def _redaction_line(r: RedactionInfo) -> str:
    """What one redaction record of a verified bundle says, escaped for a terminal."""
    what = f"fields {', '.join(r.fields)}" if r.fields else "whole payloads"
    return (
        f"Redacted (seq {r.seq}) at {safe_text(r.redacted_at)} by {safe_text(r.by)}: "
        f"{safe_text(what)}; reason: {safe_text(r.reason)}; "
        f"erased seqs: {_seqs(r.erased_seqs)}; views kept: {_seqs(r.view_seqs)}"
    )
