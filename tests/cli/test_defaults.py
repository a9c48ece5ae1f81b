"""One default store for every command (issue 10, item 12).

``sentrail contain`` and ``sentrail approvals`` open ``$SENTRAIL_HOME/sentrail.db`` by
default; a proxy or a hook started as the docs show (no ``--database``) must open the same
store, or a quarantine is silently ignored and an approval id never listed.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.types import TextContent

from sentrail.cli.defaults import pinned_store_url, shown_url, store_url
from tests.cli.conftest import Cli
from tests.gateway.conftest import POLICY as GATEWAY_POLICY
from tests.gateway.conftest import SERVER, run
from tests.hooks.conftest import FIXTURES

AGENT = "payments-agent"


def _text(result: Any) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def _proxy(home: Path, calls: Path, *extra: str) -> StdioServerParameters:
    """``sentrail mcp-proxy --policy P --agent-id A -- <server>``, as docs/mcp-gateway.md
    shows it: no --database, only the user's SENTRAIL_HOME."""
    argv = ["-m", "sentrail", "mcp-proxy", "--policy", str(GATEWAY_POLICY), "--agent-id", AGENT]
    return StdioServerParameters(
        command=sys.executable,
        args=[*argv, *extra, "--", sys.executable, str(SERVER)],
        env={"SENTRAIL_HOME": str(home), "SENTRAIL_TEST_CALLS": str(calls)},
    )


def _called(calls: Path) -> list[str]:
    if not calls.exists():
        return []
    return [json.loads(line)["tool"] for line in calls.read_text().splitlines()]


def test_the_store_is_the_option_then_the_environment_then_the_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTRAIL_HOME", str(tmp_path / "h"))
    monkeypatch.delenv("SENTRAIL_DATABASE", raising=False)
    assert store_url() == f"sqlite:///{tmp_path / 'h' / 'sentrail.db'}"
    assert store_url(home=tmp_path / "other") == f"sqlite:///{tmp_path / 'other' / 'sentrail.db'}"
    monkeypatch.setenv("SENTRAIL_DATABASE", "postgresql://db.internal/sentrail")
    assert store_url() == "postgresql://db.internal/sentrail"
    assert store_url("sqlite:///x.db") == "sqlite:///x.db"
    monkeypatch.chdir(tmp_path)
    assert pinned_store_url("sqlite:///rel/x.db") == f"sqlite:///{tmp_path / 'rel' / 'x.db'}"


def test_a_password_in_a_store_url_is_never_shown() -> None:
    assert shown_url("postgresql://alice:s3cret@db:5432/x") == "postgresql://alice:***@db:5432/x"
    assert "s3cret" not in shown_url("postgresql://alice:s3cret@[::1]/x")
    assert "s3cret" not in shown_url("postgresql://alice:s3cret@db:99999999/x")  # a bad port
    assert shown_url("sqlite:////var/lib/s.db") == "sqlite:////var/lib/s.db"


def test_a_quarantine_made_with_contain_binds_a_proxy_started_as_the_docs_show(
    cli: Cli, home: Path, tmp_path: Path
) -> None:
    q = cli("contain", "quarantine", AGENT, "--tenant", "default", "--by", "soc", "--reason", "x")
    assert q.exit_code == 0, q.output
    calls = tmp_path / "calls.ndjson"

    async def go() -> None:
        async with Client(_proxy(home, calls), mode="legacy") as client:
            read = await client.call_tool("read_file", {"path": "/a"})
            assert not read.is_error  # a quarantine leaves read-only calls alone
            pay = await client.call_tool("send_money", {"account": "1", "amount": 5})
            assert pay.is_error and "quarantine" in _text(pay).lower(), _text(pay)

    run(go)
    assert _called(calls) == ["read_file"]


def test_an_approval_a_proxy_asks_for_is_listed_by_approvals_list(
    cli: Cli, home: Path, tmp_path: Path
) -> None:
    calls = tmp_path / "calls.ndjson"
    held: list[str] = []

    async def go() -> None:
        async with Client(_proxy(home, calls, "--run-id", "run-held"), mode="legacy") as client:
            result = await client.call_tool("delete_file", {"path": "/srv/old"})
            assert result.is_error and "needs an approval" in _text(result)
            held.append(_text(result).split("approval id ")[1].split(")")[0])

    run(go)
    listed = cli("approvals", "list")
    assert listed.exit_code == 0 and held[0] in listed.output and "run-held" in listed.output
    ok = cli("approvals", "approve", held[0], "--tenant", "default", "--by", "alice")
    assert ok.exit_code == 0, ok.output
    assert _called(calls) == []


def _hook(home: Path, payload: dict[str, Any], *args: str) -> dict[str, Any] | None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRAIL_")}
    env["SENTRAIL_HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-m", "sentrail", "hook", "claude-code", *args],
        input=json.dumps(payload).encode(),
        capture_output=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None


def _decision(answer: dict[str, Any] | None) -> tuple[str | None, str]:
    out = (answer or {}).get("hookSpecificOutput") or {}
    return out.get("permissionDecision"), str(out.get("permissionDecisionReason", ""))


def _bash(command: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((FIXTURES / "claude_pre_bash.json").read_text())
    event["tool_input"] = {**event["tool_input"], "command": command}
    return event


def test_a_quarantine_made_with_contain_binds_a_hook_started_as_the_docs_show(
    cli: Cli, home: Path
) -> None:
    q = cli("contain", "quarantine", "claude-code", "--tenant", "default", "--by", "soc")
    assert q.exit_code == 2  # --reason is required: a usage error
    q = cli(
        "contain", "quarantine", "claude-code", "--tenant", "default", "--by", "soc",
        "--reason", "INC-9",
    )  # fmt: skip
    assert q.exit_code == 0, q.output
    decision, reason = _decision(_hook(home, _bash("npm test")))
    assert decision == "deny" and "quarantine" in reason.lower(), reason


def test_an_approval_a_hook_asks_for_is_listed_by_approvals_list(cli: Cli, home: Path) -> None:
    decision, reason = _decision(_hook(home, _bash("sudo systemctl restart nginx")))
    assert decision == "ask"
    approval_id = reason.split("approval id ")[1].split(" ")[0]
    listed = cli("approvals", "list")
    assert listed.exit_code == 0 and approval_id in listed.output


def test_installed_proxies_and_hooks_carry_the_home_and_store_into_the_client(
    cli: Cli, home: Path, tmp_path: Path
) -> None:
    """The client starts them without the user's environment: what install wrote must be
    enough to find the store that `sentrail contain` wrote to."""
    config = tmp_path / "claude_desktop_config.json"
    server = {"command": sys.executable, "args": [str(SERVER)]}
    config.write_text(json.dumps({"mcpServers": {AGENT: server}}))
    done = cli("mcp", "install", "--client", "claude-desktop", "--config", config)
    assert done.exit_code == 0, done.output
    args = json.loads(config.read_text())["mcpServers"][AGENT]["args"]
    store = f"sqlite:///{home / 'sentrail.db'}"
    assert args[args.index("--home") + 1] == str(home)
    assert args[args.index("--database") + 1] == store
    assert f"use the store {store}" in done.output
    again = cli("mcp", "install", "--client", "claude-desktop", "--config", config)
    assert "already wrapped" in again.output and "Nothing to change" in again.output
    moved = cli("mcp", "install", "--client", "claude-desktop", "--config", config,
                "--database", "sqlite:///elsewhere.db")  # fmt: skip
    assert moved.exit_code == 0 and "updated" in moved.output  # an old entry gets the store
    args = json.loads(config.read_text())["mcpServers"][AGENT]["args"]
    assert args[args.index("--database") + 1].endswith("/elsewhere.db")
    assert os.path.isabs(args[args.index("--database") + 1].removeprefix("sqlite:///"))

    settings = tmp_path / "settings.json"
    installed = cli("hook", "install", "--client", "claude-code", "--settings", settings)
    assert installed.exit_code == 0, installed.output
    command = json.loads(settings.read_text())["hooks"]["PreToolUse"][0]["hooks"][0]["command"]
    words = shlex.split(command)
    assert words[words.index("--home") + 1] == str(home)
    assert words[words.index("--database") + 1] == store
    q = cli("contain", "disable-tool", "shell.*", "--tenant", "default", "--by", "soc",
            "--reason", "INC-10")  # fmt: skip
    assert q.exit_code == 0, q.output
    # The installed command, run as the client runs it: no SENTRAIL_* in its environment,
    # and a HOME where no ~/.sentrail exists.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRAIL_")}
    env["HOME"] = str(tmp_path / "client-home")
    answer = subprocess.run(
        [sys.executable, "-m", "sentrail", *words[words.index("hook") :]],
        input=json.dumps(_bash("npm test")).encode(),
        capture_output=True,
        env=env,
        check=False,
        timeout=120,
    )
    decision, reason = _decision(json.loads(answer.stdout))
    assert decision == "deny" and "disabled" in reason, reason
    assert not (tmp_path / "client-home" / ".sentrail").exists()


def test_a_store_url_password_is_masked_in_what_install_prints(cli: Cli, tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    url = "postgresql://alice:s3cret@127.0.0.1:5432/test"
    done = cli("hook", "install", "--client", "codex", "--settings", settings, "--database", url)
    assert done.exit_code == 0, done.output
    assert "s3cret" not in done.output and "alice:***@127.0.0.1:5432" in done.output
    assert url in settings.read_text()  # the client needs the real URL
