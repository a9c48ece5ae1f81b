"""``sentrail replay``: a stored run judged again under another policy bundle, baseline or
sentrail version, and what that changes (docs/forensics.md).

    sentrail replay --run ID [--tenant T] [--app A] [--policy NEW.yaml] [--baseline B.json]
                    [--diff] [--format text|json] [--evidence DIR]
    sentrail replay --trace-id ID --audit-file events.jsonl [--policy NEW.yaml] [--diff] ...
    sentrail replay --since 7d --policy NEW.yaml [--agent GLOB] [--jobs N] [--format json]

The run is the exact bytes the log holds, folded by the one fold
(:mod:`sentrail.runtime.replay`). ``--audit-file`` takes an NDJSON event file
(docs/trace-format.md; or one trace document) instead of a store: the run's lines are
stored in a private in-memory log first, judged under ``--base-policy`` (default: the
built-in policy), then replayed like a stored run. ``--since`` is the fleet what-if: every
indexed run of the tenant (and ``--app``, ``--agent``) since then, replayed and summed.
"""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer

from sentrail.cli.common import EXIT_OK, fail, progress_bar, stderr_interactive
from sentrail.cli.defaults import store_url
from sentrail.cli.investigate import app_of_run, emit_json, export_bundle, since_epoch
from sentrail.cli.store_access import Database, key_store, open_migrated
from sentrail.engine.engine import Engine
from sentrail.errors import InputError, SentrailError
from sentrail.evidence.bundle import REPLAY_DIFF
from sentrail.evidence.note import Signer
from sentrail.forensics.fleet import render_fleet
from sentrail.forensics.replay import diff_part, encode_diff, render_diff
from sentrail.model.decode import decode_event, decode_run
from sentrail.policy.compiled import Policy
from sentrail.policy.load import load_policy
from sentrail.report.escape import safe_text
from sentrail.report.text import render_run
from sentrail.runtime.framing import ndjson_lines
from sentrail.runtime.ingest import Ingestor
from sentrail.runtime.replay import Replay, Replayer, ReplaySpec, fleet_runs, replay_fleet
from sentrail.runtime.sources import is_event_stream_name, looks_like_event_stream, read_document
from sentrail.runtime.store_writer import StoreWriter
from sentrail.store.core import LogStore
from sentrail.store.factory import open_store

BUNDLE = "evidence.zip"
MAX_LINE_ERRORS = 5


class Format(enum.StrEnum):
    text = "text"
    json = "json"


def replay(
    run_id: Annotated[str | None, typer.Option("--run", help="The stored run to replay")] = None,
    trace_id: Annotated[
        str | None, typer.Option("--trace-id", help="Same as --run (with --audit-file)")
    ] = None,
    audit_file: Annotated[
        Path | None,
        typer.Option("--audit-file", help="An NDJSON event file (or a trace) instead of a store"),
    ] = None,
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id")] = "default",
    app: Annotated[
        str | None, typer.Option("--app", help="App id (default: the one app holding the run)")
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", "-p", help="Replay under this bundle (default: the run's own)"),
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option("--baseline", "-b", help="Baselines from `baseline learn`")
    ] = None,
    base_policy: Annotated[
        Path | None,
        typer.Option(
            "--base-policy",
            help="The bundle a run was judged with when the store does not hold it "
            "(and for --audit-file; default: the built-in policy)",
        ),
    ] = None,
    diff: Annotated[
        bool, typer.Option("--diff", help="Print what changed against the stored judgement")
    ] = False,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="text, or json")] = Format.text,
    evidence: Annotated[
        Path | None,
        typer.Option("--evidence", help="Write a signed evidence package (with the diff) here"),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Fleet what-if: every run since (ISO time, or 24h, 7d)"),
    ] = None,
    agent: Annotated[
        str | None, typer.Option("--agent", help="Fleet: only this agent id or glob")
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=64, help="Fleet workers")] = 1,
    database: Database = None,
) -> None:
    """Judge a stored run again under another policy, baseline or sentrail version.

    Exit 0 done; 2 usage or input error (unknown run, unreadable policy, bad --since)."""
    if run_id is not None and trace_id is not None and run_id != trace_id:
        fail("--run and --trace-id name the same thing: give one")
    run = run_id or trace_id
    spec = ReplaySpec(
        policy_path=str(policy) if policy else None,
        baseline_path=str(baseline) if baseline else None,
        base_policy_path=str(base_policy) if base_policy else None,
    )
    if since is not None:
        if run is not None or audit_file is not None or evidence is not None:
            fail("--since replays the fleet: give no --run, --audit-file or --evidence with it")
        _fleet(spec, tenant, app, since, agent, jobs, fmt, database)
        return
    if run is None:
        fail("give --run ID (or --trace-id ID), or --since for the fleet what-if")
    if not run.strip() or len(run) > 1024:
        fail("the run id must be 1-1024 characters")
    signer: Signer | None = None
    keys = key_store()
    if evidence is not None:
        try:
            signer = keys.ensure()
        except SentrailError as exc:
            fail(str(exc))
    if audit_file is not None:
        store = _audit_store(audit_file, run, tenant, app or "default", spec, signer)
        app = app or "default"
    else:
        store = open_migrated(database, signer)
    try:
        chosen = app_of_run(store, tenant, app, run)
        done = Replayer.open(store, spec).replay(tenant, chosen, run)
        if audit_file is not None:  # judged just now, from the file, under --base-policy
            done.diff.before.source = "audit_file"
        if evidence is not None:
            assert signer is not None
            _evidence(store, keys, signer, done, evidence)
    except SentrailError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {evidence}: {exc.strerror}")
    finally:
        store.close()
    for note in done.notes:
        typer.echo(f"note: {safe_text(note, limit=2000)}", err=True)
    _print(done, diff, fmt)
    if evidence is not None:
        typer.echo(
            f"Evidence package: {safe_text(evidence / BUNDLE)} (signed; replay-diff.json and "
            f"summary.json inside), {safe_text(evidence / REPLAY_DIFF)}",
            err=fmt is Format.json,
        )
    raise typer.Exit(EXIT_OK)


def _print(done: Replay, diff: bool, fmt: Format) -> None:
    if fmt is Format.json:
        if diff:
            sys.stdout.buffer.write(encode_diff(done.diff) + b"\n")
            sys.stdout.buffer.flush()
        else:
            emit_json(
                {
                    "format": "sentrail.replay/1",
                    "trace_id": done.run_id,
                    "tenant_id": done.tenant,
                    "app_id": done.app,
                    "before": done.diff.before,
                    "after": done.diff.after,
                    "result": done.after,
                }
            )
        return
    if diff:
        typer.echo(render_diff(done.diff), nl=False)
        return
    a = done.diff.after
    typer.echo(render_run(done.after, policy_sha256=a.policy_sha256), nl=False)
    b = done.diff.before
    typer.echo(
        f"Replayed (sentrail {a.sentrail_version}); {b.source} judgement: {b.verdict}, "
        f"risk {b.risk_score}, {b.findings} finding(s)"
        + ("" if done.diff.changed else " (the same)")
        + ("; --diff shows what changed" if done.diff.changed else "")
    )


def _evidence(store: LogStore, keys: Any, signer: Signer, done: Replay, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = encode_diff(done.diff)
    (out / REPLAY_DIFF).write_bytes(data + b"\n")
    part = diff_part(done.diff, REPLAY_DIFF)
    export_bundle(
        store, keys, signer, done.tenant, done.app, done.run_id, out / BUNDLE, replay=(data, part)
    )


# -- an audit file instead of a store --------------------------------------------------------
def _audit_store(
    path: Path, run: str, tenant: str, app: str, spec: ReplaySpec, signer: Signer | None
) -> LogStore:
    """A private in-memory log holding ``run``'s lines of the audit file, judged under
    ``--base-policy`` (the built-in policy without it), as if ingested."""
    where = str(path)
    try:
        data = read_document(where)
    except SentrailError as exc:
        fail(f"{where}: {exc}" if where not in str(exc) else str(exc))
    try:
        base = Policy(load_policy(spec.base_policy_path)) if spec.base_policy_path else Policy()
    except SentrailError as exc:
        fail(str(exc))
    store = open_store("memory://", signer)
    try:
        store.migrate()
        writer = StoreWriter(store, policy_sha256=base.sha256)
        ingestor = Ingestor(store, Engine(base), writer=writer)
        if base.sha256 is not None and spec.base_policy_path is not None:
            from sentrail.cli.store_access import keep_policy

            keep_policy(store, base.sha256, spec.base_policy_path)
        if is_event_stream_name(where) or looks_like_event_stream(data):
            ingestor.ingest_events(tenant, app, _run_lines(data, run, where))
        else:
            doc = decode_run(data)
            if doc.run_id != run:
                fail(f"{where}: holds run {doc.run_id!r}, not {run!r}")
            ingestor.ingest_trace(tenant, app, data)
        if signer is not None:
            store.checkpoint(tenant)
    except SentrailError as exc:
        store.close()
        fail(str(exc))
    return store


def _run_lines(data: bytes, run: str, where: str) -> bytes:
    """The lines of ``run`` (exact bytes); a line that is not an event is a located error."""
    kept: list[bytes] = []
    errors: list[str] = []
    for lineno, line in ndjson_lines(data):
        try:
            event = decode_event(line)
        except InputError as exc:
            errors.append(f"{where}: line {lineno}: {exc}")
            continue
        if event.run_id == run:
            kept.append(line)
    if errors:
        more = f" (and {len(errors) - MAX_LINE_ERRORS} more)" if len(errors) > 5 else ""
        fail("; ".join(errors[:MAX_LINE_ERRORS]) + more)
    if not kept:
        fail(f"{where}: no events of run {run!r}")
    return b"\n".join(kept)


# -- the fleet what-if ------------------------------------------------------------------------
def _fleet(
    spec: ReplaySpec,
    tenant: str,
    app: str | None,
    since: str,
    agent: str | None,
    jobs: int,
    fmt: Format,
    database: str | None,
) -> None:
    when = since_epoch(since)
    store = open_migrated(database)
    try:
        replayer = Replayer.open(store, spec)
        rows = fleet_runs(store, tenant, app=app, since=when, agent=agent)
        url = store_url(database)
        scope: dict[str, object] = {
            "app": app,
            "since": since,
            "agent": agent,
            "runs_selected": len(rows),
        }
        with _Progress(len(rows)) as progress:
            summary = replay_fleet(
                replayer,
                tenant,
                rows,
                jobs=jobs if url != "memory://" else 1,
                url=url,
                spec=spec,
                progress=progress,
                scope=scope,
            )
    except SentrailError as exc:
        fail(str(exc))
    finally:
        store.close()
    if fmt is Format.json:
        sys.stdout.buffer.write(msgspec.json.encode(summary) + b"\n")
        sys.stdout.buffer.flush()
    else:
        typer.echo(render_fleet(summary), nl=False)
    raise typer.Exit(EXIT_OK)


class _Progress:
    """A progress bar on stderr when it is a terminal; always a final count there."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> _Progress:
        if stderr_interactive() and self.total:
            self.bar = progress_bar()
            self.task = self.bar.add_task("replaying", total=self.total)
            self.bar.start()
        return self

    def __call__(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.advance(self.task, n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
        typer.echo(f"Replayed {self.done} of {self.total} run(s)", err=True)
