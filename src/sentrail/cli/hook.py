"""``sentrail hook claude-code|codex|cursor`` and ``sentrail hook install|uninstall``.

The client runs ``sentrail hook <client>`` for every tool call with the event on stdin; the
command always exits 0 with the client's JSON answer on stdout (docs/hooks.md), failing
closed when anything goes wrong, and writes its reason to stderr.
"""

from __future__ import annotations

import enum
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from sentrail.cli.common import fail
from sentrail.cli.defaults import pinned_store_url, sentrail_home, shown_url, store_url
from sentrail.errors import SentrailError
from sentrail.hooks.dispatch import respond
from sentrail.hooks.install import DEFAULT_TIMEOUT, SETTINGS, hook_command, install, uninstall
from sentrail.hooks.policy import DEFAULT_POLICY_YAML
from sentrail.hooks.runner import HookOptions
from sentrail.policy.load import load_policy
from sentrail.report.escape import safe_text

app = typer.Typer(
    help="Govern coding agents (Claude Code, Codex, Cursor) through their hooks.",
    no_args_is_help=True,
)


class Client(enum.StrEnum):
    claude_code = "claude-code"
    codex = "codex"
    cursor = "cursor"


class AllowMode(enum.StrEnum):
    defer = "defer"
    allow = "allow"


class OnError(enum.StrEnum):
    deny = "deny"
    ask = "ask"


PolicyOpt = Annotated[
    Path | None,
    typer.Option("--policy", help="Policy bundle YAML (default: the built-in coding-agent policy)"),
]
AgentOpt = Annotated[
    str | None, typer.Option("--agent-id", help="Agent id to judge (default: the client's name)")
]
TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant id")]
AllowOpt = Annotated[
    AllowMode,
    typer.Option(
        "--allow-mode",
        help="defer: allowed calls keep the client's own permission prompts; "
        "allow: answer 'allow' (skips them)",
    ),
]
DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database",
        metavar="URL",
        help="Evidence store whose containment (quarantine, disabled tools, frozen runs) "
        "and approvals this hook obeys, shared with `sentrail contain|approvals` "
        "(default: $SENTRAIL_DATABASE, else sentrail.db under the sentrail home)",
    ),
]
HomeOpt = Annotated[
    Path | None,
    typer.Option(
        "--home",
        metavar="DIR",
        help="sentrail home: keys, session logs and the default store "
        "(default: $SENTRAIL_HOME, else ~/.sentrail)",
    ),
]
ErrorOpt = Annotated[
    OnError, typer.Option("--on-error", help="Answer when the hook itself fails: deny or ask")
]


def _hook(
    client: Client,
    policy: Path | None,
    agent_id: str | None,
    tenant: str,
    allow_mode: AllowMode,
    on_error: OnError,
    database: str | None = None,
    home: Path | None = None,
) -> None:
    options = HookOptions(
        client=client.value,
        agent_id=agent_id or client.value,
        tenant_id=tenant,
        policy_path=str(policy) if policy else None,
        allow_mode=allow_mode.value,
        on_error=on_error.value,
        home=str(sentrail_home(home)),
        database=store_url(database, home),
    )
    stream = getattr(sys.stdin, "buffer", None) or io.BytesIO()  # no stdin: an empty payload
    reply = respond(stream, options)
    if reply.stderr:
        sys.stderr.write(reply.stderr)
    sys.stdout.write(reply.stdout)
    sys.stdout.flush()


HOOK_EXIT = (
    "Exit code: 0 for every payload, also when the hook itself fails: the JSON answer on "
    "stdout carries the decision, failing closed (docs/hooks.md); 2 only for a wrong option."
)


def _client_command(client: Client, doc: str) -> Callable[..., None]:
    def command(
        policy: PolicyOpt = None,
        agent_id: AgentOpt = None,
        tenant: TenantOpt = "default",
        allow_mode: AllowOpt = AllowMode.defer,
        on_error: ErrorOpt = OnError.deny,
        database: DatabaseOpt = None,
        home: HomeOpt = None,
    ) -> None:
        _hook(client, policy, agent_id, tenant, allow_mode, on_error, database, home)

    command.__doc__ = doc
    return command


for _client, _doc in (
    (
        Client.claude_code,
        "Answer one Claude Code hook event (PreToolUse, PostToolUse, ...) read from stdin.",
    ),
    (Client.codex, "Answer one Codex hook event read from stdin."),
    (Client.cursor, "Answer one Cursor hook event read from stdin."),
):
    app.command(_client.value, epilog=HOOK_EXIT)(_client_command(_client, _doc))


SettingsOpt = Annotated[
    Path | None,
    typer.Option(
        "--settings",
        help="Settings file (default: .claude/settings.json, .codex/hooks.json or "
        ".cursor/hooks.json in the current directory)",
    ),
]
ClientOpt = Annotated[Client, typer.Option("--client", help="Which coding agent")]


@app.command("install")
def install_cmd(
    client: ClientOpt,
    settings: SettingsOpt = None,
    policy: PolicyOpt = None,
    agent_id: AgentOpt = None,
    tenant: TenantOpt = "default",
    allow_mode: AllowOpt = AllowMode.defer,
    on_error: ErrorOpt = OnError.deny,
    timeout: Annotated[
        int, typer.Option("--timeout", min=1, max=600, help="Seconds the client gives the hook")
    ] = DEFAULT_TIMEOUT,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            metavar="URL",
            help="Store the hook shares with `sentrail contain|approvals` "
            "(default: the one sentrail commands use now)",
        ),
    ] = None,
    home: HomeOpt = None,
) -> None:
    """Add the sentrail hook to a client's settings (backed up first; run it again to update).

    The hook command carries the sentrail home and the store, so that it obeys the
    quarantines and approvals of the sentrail commands you run."""
    args: list[str] = []
    if policy is not None:
        try:
            load_policy(policy)  # refuse a broken policy now, not at the first tool call
        except SentrailError as exc:
            fail(str(exc))
        args += ["--policy", str(policy.resolve())]
    if agent_id:
        args += ["--agent-id", agent_id]
    if tenant != "default":
        args += ["--tenant", tenant]
    if allow_mode is not AllowMode.defer:
        args += ["--allow-mode", allow_mode.value]
    if on_error is not OnError.deny:
        args += ["--on-error", on_error.value]
    store = pinned_store_url(database, home)
    args += ["--home", str(sentrail_home(home)), "--database", store]
    path = settings or Path(SETTINGS[client.value].path)
    command = hook_command(client.value, args)
    try:
        result = install(client.value, path, command, timeout=timeout)
    except (SentrailError, OSError) as exc:
        fail(str(exc))
    if not result.changed:
        typer.echo(f"{safe_text(path)}: sentrail hook for {client.value} already installed")
        return
    if result.backup:
        typer.echo(f"backup: {safe_text(result.backup)}")
    shown = hook_command(client.value, [shown_url(a) if a == store else a for a in args])
    typer.echo(
        f"{safe_text(path)}: {client.value} hooks {', '.join(result.events)} -> "
        f"{safe_text(shown, limit=2000)}"
    )


@app.command("uninstall")
def uninstall_cmd(client: ClientOpt, settings: SettingsOpt = None) -> None:
    """Take the sentrail hook out of a client's settings (backed up first)."""
    path = settings or Path(SETTINGS[client.value].path)
    try:
        result = uninstall(client.value, path)
    except (SentrailError, OSError) as exc:
        fail(str(exc))
    if not result.changed:
        typer.echo(f"{safe_text(path)}: no sentrail hook for {client.value}")
        return
    if result.backup:
        typer.echo(f"backup: {safe_text(result.backup)}")
    typer.echo(f"{safe_text(path)}: sentrail hook for {client.value} removed")


@app.command("default-policy")
def default_policy() -> None:
    """Print the built-in coding-agent policy (a start for a --policy file of your own)."""
    typer.echo(DEFAULT_POLICY_YAML, nl=False)


def main() -> None:  # ``python -m sentrail.cli.hook``, before ``sentrail hook`` is wired
    app()


if __name__ == "__main__":
    main()
