"""``sentrail mcp-proxy`` (govern an MCP server's tool calls) and ``sentrail mcp
install|uninstall`` (put a client's MCP servers behind it). See docs/mcp-gateway.md.

Until they are registered in :mod:`sentrail.cli.app`, ``python -m sentrail.cli.mcp
mcp-proxy|install|uninstall ...`` runs them.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from sentrail.cli.common import EXIT_OK, fail
from sentrail.cli.defaults import pinned_store_url, sentrail_home, shown_url, store_url
from sentrail.errors import SentrailError
from sentrail.gateway.install import (
    Action,
    McpClient,
    Result,
    WrapOptions,
    default_config,
    install,
    uninstall,
)
from sentrail.gateway.lines import DEFAULT_LIMIT
from sentrail.gateway.names import check_name
from sentrail.report.escape import safe_text

app = typer.Typer(
    name="mcp",
    help="Put an MCP client's stdio servers behind the sentrail gateway (and back).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


PROXY_EXIT = (
    "Exit code: the MCP server's own (128 + N when signal N ended it); 2 when the server "
    "cannot be started, an option is wrong or the store cannot be opened."
)
HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        metavar="DIR",
        help="sentrail home: keys, decision logs and the default store "
        "(default: $SENTRAIL_HOME, else ~/.sentrail)",
    ),
]


def _notice(text: str) -> None:
    sys.stderr.write(f"sentrail: {safe_text(text, limit=4000)}\n")
    sys.stderr.flush()


def mcp_proxy(
    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="-- COMMAND [ARGS]...",
            help="The command that starts the MCP server over stdio, after --",
            show_default=False,
        ),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="Policy bundle (YAML); default: the built-in defaults"),
    ] = None,
    agent_id: Annotated[
        str | None,
        typer.Option("--agent-id", help="Agent id the policy sees (default: the command's name)"),
    ] = None,
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id")] = "default",
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Run id (default: a new mcp-<hex> id)")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds per decision; past it the call is denied")
    ] = 1.0,
    monitor: Annotated[
        bool,
        typer.Option("--monitor", help="Decide and record (enforced: false), let every call run"),
    ] = False,
    decisions: Annotated[
        Path | None,
        typer.Option(
            "--decisions",
            help="Decision log, one signed decision per line (0600); "
            "default: $SENTRAIL_HOME/decisions/<run>.ndjson",
        ),
    ] = None,
    max_message_bytes: Annotated[
        int,
        typer.Option("--max-message-bytes", min=1024, help="Largest message relayed, in bytes"),
    ] = DEFAULT_LIMIT,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            metavar="URL",
            help="Evidence store: decisions also go into the run's hash chain, and approvals "
            "and containment are shared with `sentrail approvals|contain` and the service "
            "(default: the store every sentrail command uses: $SENTRAIL_DATABASE, else "
            "sentrail.db under the sentrail home)",
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Relay an MCP server's stdio, deciding every tools/call before the server sees it."""
    if not command:
        fail("give the MCP server's command after --, e.g. sentrail mcp-proxy -- npx -y server")
    try:  # the proxy needs the optional mcp (and evidence) extras
        from sentrail.gateway.launch import ProxyOptions, open_gate
        from sentrail.gateway.proxy import serve
    except ImportError as exc:
        extras = "pip install 'sentrail[mcp,evidence]'"
        fail(f"mcp-proxy needs the mcp and evidence extras ({extras}): {exc}")
    url = store_url(database, home)
    options = ProxyOptions(
        command=list(command),
        policy=str(policy) if policy else None,
        agent_id=agent_id,
        tenant=tenant,
        run_id=run_id,
        timeout=timeout,
        monitor=monitor,
        decisions=str(decisions) if decisions else None,
        database=url,
        home=str(sentrail_home(home)),
    )
    try:
        gate, log = open_gate(options, notice=_notice)
    except SentrailError as exc:
        fail(str(exc))
    mode = " in monitor mode (nothing is blocked)" if monitor else ""
    _notice(
        f"governing {' '.join(command)} as agent {gate.agent_id} (tenant {gate.tenant}, "
        f"run {gate.run_id}){mode}; decisions: {log.path}; store: {shown_url(url)}"
    )
    try:
        code = asyncio.run(
            serve(command, gate, monitor=monitor, limit=max_message_bytes, notice=_notice)
        )
    except SentrailError as exc:
        fail(str(exc))
    finally:
        log.close()
    raise typer.Exit(code)


# -- install / uninstall ---------------------------------------------------------------
ClientOption = Annotated[McpClient, typer.Option("--client", help="Which MCP client's config")]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="The config file (default: the client's user config; Claude Code: "
        "~/.claude.json, or a project's .mcp.json)",
    ),
]
ServerOption = Annotated[
    list[str] | None,
    typer.Option("--server", help="Only this server entry, by name (repeatable)"),
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Show what would change, write nothing")
]


def _default_proxy_command() -> str:
    sibling = Path(sys.executable).with_name("sentrail")
    if sibling.is_file():
        return str(sibling)
    return shutil.which("sentrail") or "sentrail"


def _report(result: Result, dry_run: bool) -> None:
    if not result.changes:
        typer.echo(f"No MCP servers in {safe_text(result.path)}")
        return
    for c in result.changes:
        where = f"{safe_text(c.scope)}: " if c.scope else ""
        command = f"  ({safe_text(' '.join(c.command), limit=200)})" if c.command else ""
        typer.echo(f"  {c.action.value:<20} {where}{safe_text(c.name)}{command}")
    if result.backup:
        typer.echo(f"Backup: {safe_text(result.backup)}")
    if result.written:
        typer.echo(f"Wrote {safe_text(result.path)}; restart the client to apply.")
    elif dry_run:
        typer.echo("Dry run: nothing written.")
    else:
        typer.echo(f"Nothing to change in {safe_text(result.path)}.")


@app.command("install")
def install_command(
    client: ClientOption,
    config: ConfigOption = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="Policy bundle the proxies enforce")
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Tenant id")] = None,
    monitor: Annotated[bool, typer.Option("--monitor", help="Proxies in monitor mode")] = False,
    server: ServerOption = None,
    proxy_command: Annotated[
        str | None,
        typer.Option("--proxy-command", help="Path of the sentrail executable to run"),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            metavar="URL",
            help="Store the proxies share with `sentrail contain|approvals` "
            "(default: the one sentrail commands use now)",
        ),
    ] = None,
    home: HomeOption = None,
    dry_run: DryRunOption = False,
) -> None:
    """Wrap every stdio server of the config in `sentrail mcp-proxy` (backup first).

    The proxies get the sentrail home and the store written into their arguments, so they
    share quarantines and approvals with the sentrail commands you run."""
    policy_path = None
    if policy is not None:
        from sentrail.policy.load import load_policy

        policy_path = str(policy.expanduser().resolve())
        try:
            load_policy(policy_path)
        except SentrailError as exc:
            fail(str(exc))
    proxy = proxy_command or _default_proxy_command()
    if not Path(proxy).name.lower().startswith("sentrail"):
        fail("--proxy-command must be the sentrail executable (its name starts with sentrail)")
    try:
        if tenant is not None:
            check_name(tenant, "tenant")
        options = WrapOptions(
            proxy_command=proxy,
            policy=policy_path,
            tenant=tenant,
            monitor=monitor,
            servers=frozenset(server) if server else None,
            home=str(sentrail_home(home)),
            database=pinned_store_url(database, home),
        )
        result = install(config or default_config(client), client, options, dry_run=dry_run)
    except SentrailError as exc:
        fail(str(exc))
    _report(result, dry_run)
    if any(c.action in (Action.WRAPPED, Action.UPDATED) for c in result.changes):
        typer.echo(
            f"The proxies use the store {safe_text(shown_url(options.database or ''))} "
            f"and the sentrail home {safe_text(options.home)}."
        )
    if any(c.action is Action.NOT_FOUND for c in result.changes):
        raise typer.Exit(2)
    raise typer.Exit(EXIT_OK)


@app.command("uninstall")
def uninstall_command(
    client: ClientOption,
    config: ConfigOption = None,
    server: ServerOption = None,
    dry_run: DryRunOption = False,
) -> None:
    """Restore the servers' own commands from the wrapped entries (backup first)."""
    servers = frozenset(server) if server else None
    try:
        result = uninstall(
            config or default_config(client), client, servers=servers, dry_run=dry_run
        )
    except SentrailError as exc:
        fail(str(exc))
    _report(result, dry_run)
    if any(c.action is Action.NOT_FOUND for c in result.changes):
        raise typer.Exit(2)
    raise typer.Exit(EXIT_OK)


standalone = typer.Typer(
    name="sentrail-mcp",
    help="mcp-proxy, install and uninstall (until they are registered in sentrail.cli.app).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
standalone.command("mcp-proxy", epilog=PROXY_EXIT)(mcp_proxy)
standalone.command("install")(install_command)
standalone.command("uninstall")(uninstall_command)

if __name__ == "__main__":
    standalone()
