"""Entry point: ``sentrail <group> <command>``."""

from __future__ import annotations

import sys

import typer

from sentrail import __version__, _native
from sentrail.cli import (
    baseline,
    enforce,
    export,
    graph,
    policy,
    replay,
    runs,
    serve,
    store,
    trace,
    worker,
)
from sentrail.cli import hook as hook_cli
from sentrail.cli import keys as keys_cli
from sentrail.cli import mcp as mcp_cli
from sentrail.cli import redact as redact_cli
from sentrail.cli import watch as watch_cli
from sentrail.cli.common import EXIT_USAGE
from sentrail.cli.usage import plain_help
from sentrail.report.escape import safe_text

app = typer.Typer(
    name="sentrail",
    help="Watch, judge and govern what autonomous AI agents do.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
trace.app.command("watch")(watch_cli.watch)
app.add_typer(trace.app, name="trace")
app.add_typer(policy.app, name="policy")
app.add_typer(baseline.app, name="baseline")
app.add_typer(store.db_app, name="db")
app.add_typer(store.log_app, name="log")
app.add_typer(store.evidence_app, name="evidence")
store.evidence_app.command("key")(keys_cli.evidence_key)
app.command("ingest")(store.ingest)
app.command("serve")(serve.serve)
app.command("worker")(worker.worker)
app.command("export")(export.export)
app.add_typer(enforce.approvals_app, name="approvals")
app.add_typer(enforce.contain_app, name="contain")
app.command("mcp-proxy", epilog=mcp_cli.PROXY_EXIT)(mcp_cli.mcp_proxy)
app.command("emit")(watch_cli.emit_command)
app.add_typer(mcp_cli.app, name="mcp")
app.add_typer(hook_cli.app, name="hook")
app.add_typer(serve.apikey_app, name="apikey")
app.command("redact")(redact_cli.redact)
app.add_typer(redact_cli.retention_app, name="retention")
app.add_typer(runs.runs_app, name="runs")
app.add_typer(runs.findings_app, name="findings")
app.command("graph")(graph.graph)
app.command("replay")(replay.replay)


plain_help(app)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit"),
) -> None:
    if version:
        typer.echo(f"sentrail {__version__} ({_native.running()})")
        raise typer.Exit(0)


# What a shell reports for a program stopped by a closed pipe (128 + SIGPIPE).
EXIT_PIPE_CLOSED = 141


def main() -> None:
    try:
        app()
    except UnicodeEncodeError as exc:
        # A value that is not UTF-8 (an argument or environment variable given as raw bytes
        # Python could not decode) reached a store or an encoder: an input error.
        shown = safe_text(exc.object, limit=200) if isinstance(exc.object, str) else "?"
        typer.echo(f"error: not valid UTF-8: {shown} (check the arguments)", err=True)
        raise SystemExit(EXIT_USAGE) from None
    except SystemExit:
        # The reader stopped reading (``| head``): click then exits 1, which here means "the
        # check failed". Exit as Unix tools do instead, the output incomplete.
        if type(sys.stdout).__name__.endswith("PacifyFlushWrapper"):
            raise SystemExit(EXIT_PIPE_CLOSED) from None
        raise
