"""Install / uninstall on real config files of each client's documented shape."""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from typer.testing import CliRunner

from sentrail.cli.mcp import standalone
from sentrail.gateway.install import (
    Action,
    McpClient,
    WrapOptions,
    default_config,
    install,
    is_wrapped,
    uninstall,
    unwrap,
)
from tests.gateway.conftest import POLICY, SERVER, Box, run

PROXY = "/opt/sentrail/bin/sentrail"
STDIO = {
    "command": "npx",
    "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/me/docs"],
    "env": {"API_KEY": "k"},
}
REMOTE = {"type": "http", "url": "https://mcp.example.com/mcp"}


def config_for(client: McpClient) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "mcpServers": {"filesystem": copy.deepcopy(STDIO), "notion": copy.deepcopy(REMOTE)}
    }
    if client is McpClient.CLAUDE_CODE:  # ~/.claude.json: user scope, local scope, other state
        doc["numStartups"] = 42
        doc["projects"] = {
            "/home/me/app": {
                "allowedTools": [],
                "mcpServers": {"db": {"type": "stdio", "command": "uvx", "args": ["db-mcp"]}},
            }
        }
    if client is McpClient.CLAUDE_DESKTOP:
        doc["globalShortcut"] = "Ctrl+Space"
    return doc


def write(path: Path, doc: dict[str, Any], mode: int = 0o600) -> bytes:
    data = (json.dumps(doc, indent=2) + "\n").encode()
    path.write_bytes(data)
    path.chmod(mode)
    return data


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".sentrail-backup-*"))


@pytest.mark.parametrize("client", list(McpClient))
def test_install_is_idempotent_backed_up_and_reversible(client: McpClient, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    original = config_for(client)
    original_bytes = write(path, original)
    options = WrapOptions(proxy_command=PROXY, policy=str(POLICY), tenant="acme")

    result = install(path, client, options)
    assert result.written
    [backup] = backups(path)
    assert backup.read_bytes() == original_bytes and backup.stat().st_mode & 0o777 == 0o600
    assert path.stat().st_mode & 0o777 == 0o600
    doc = json.loads(path.read_text())
    fs = doc["mcpServers"]["filesystem"]
    assert fs["command"] == PROXY and fs["env"] == {"API_KEY": "k"}
    assert fs["args"] == [
        "mcp-proxy", "--agent-id", "filesystem", "--policy", str(POLICY), "--tenant", "acme",
        "--", "npx", "-y", "@modelcontextprotocol/server-filesystem", "/home/me/docs",
    ]  # fmt: skip
    assert doc["mcpServers"]["notion"] == REMOTE
    actions = {c.name: c.action for c in result.changes}
    assert actions["filesystem"] is Action.WRAPPED and actions["notion"] is Action.REMOTE
    if client is McpClient.CLAUDE_CODE:
        assert is_wrapped(doc["projects"]["/home/me/app"]["mcpServers"]["db"])
        assert actions["db"] is Action.WRAPPED and doc["numStartups"] == 42

    again = install(path, client, options)
    assert not again.written and len(backups(path)) == 1
    assert {c.action for c in again.changes} <= {Action.ALREADY_WRAPPED, Action.REMOTE}

    restored = uninstall(path, client)
    assert restored.written and len(backups(path)) == 2
    assert json.loads(path.read_text()) == original
    assert not uninstall(path, client).written  # nothing left to restore


def test_uninstall_restores_from_the_entry_not_from_a_stale_backup(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    write(path, config_for(McpClient.CURSOR))
    install(path, McpClient.CURSOR, WrapOptions(proxy_command=PROXY))
    doc = json.loads(path.read_text())
    doc["mcpServers"]["added-later"] = {"command": "other-server"}
    doc["mcpServers"]["filesystem"]["env"]["NEW"] = "1"
    write(path, doc)
    uninstall(path, McpClient.CURSOR)
    after = json.loads(path.read_text())
    assert after["mcpServers"]["added-later"] == {"command": "other-server"}
    assert after["mcpServers"]["filesystem"]["command"] == "npx"
    assert after["mcpServers"]["filesystem"]["env"] == {"API_KEY": "k", "NEW": "1"}


def test_entries_that_are_not_ours_are_left_alone(tmp_path: Path) -> None:
    other_proxy = {"command": "mcp-proxy-tool", "args": ["mcp-proxy", "--", "npx", "x"]}
    assert not is_wrapped(other_proxy) and unwrap(other_proxy) is None
    path = tmp_path / "mcp.json"
    doc = {"mcpServers": {"other": other_proxy, "odd": {"command": 3}, "list": [1]}}
    write(path, doc)
    result = install(path, McpClient.CURSOR, WrapOptions(proxy_command=PROXY, servers=None))
    actions = {c.name: c.action for c in result.changes}
    assert actions == {"other": Action.WRAPPED, "odd": Action.MALFORMED, "list": Action.MALFORMED}
    assert uninstall(path, McpClient.CURSOR).written
    assert json.loads(path.read_text())["mcpServers"]["other"] == other_proxy


def test_a_symlinked_config_is_written_through(tmp_path: Path) -> None:
    target = tmp_path / "dotfiles" / "mcp.json"
    target.parent.mkdir()
    write(target, config_for(McpClient.CURSOR), mode=0o644)
    link = tmp_path / "mcp.json"
    link.symlink_to(target)
    install(link, McpClient.CURSOR, WrapOptions(proxy_command=PROXY))
    assert link.is_symlink() and target.stat().st_mode & 0o777 == 0o644
    assert is_wrapped(json.loads(link.read_text())["mcpServers"]["filesystem"])


def test_default_config_locations() -> None:
    home = Path("/home/me")
    assert default_config(McpClient.CLAUDE_CODE, home=home) == home / ".claude.json"
    assert default_config(McpClient.CURSOR, home=home) == home / ".cursor" / "mcp.json"
    mac = default_config(McpClient.CLAUDE_DESKTOP, home=home, platform="darwin")
    assert mac == home / "Library/Application Support/Claude/claude_desktop_config.json"
    win = default_config(McpClient.CLAUDE_DESKTOP, home=home, platform="win32", appdata="C:/A")
    assert win == Path("C:/A/Claude/claude_desktop_config.json")
    linux = default_config(McpClient.CLAUDE_DESKTOP, home=home, platform="linux")
    assert linux == home / ".config/Claude/claude_desktop_config.json"


def test_the_cli_round_trip_and_its_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    path = tmp_path / ".mcp.json"
    doc = {"mcpServers": {"evil\x1b[31mname": {"command": "srv"}, "ok": {"command": "srv2"}}}
    write(path, doc)
    common = ["--client", "claude-code", "--config", str(path)]
    dry = runner.invoke(standalone, ["install", *common, "--proxy-command", PROXY, "--dry-run"])
    assert dry.exit_code == 0 and "Dry run" in dry.output and not backups(path)
    assert "\x1b" not in dry.output and "\\x1b[31m" in dry.output
    done = runner.invoke(standalone, ["install", *common, "--proxy-command", PROXY])
    assert done.exit_code == 0, done.output
    assert "Backup:" in done.output and len(backups(path)) == 1
    wrapped = json.loads(path.read_text())["mcpServers"]
    assert wrapped["evil\x1b[31mname"]["args"][:3] == ["mcp-proxy", "--agent-id", "evil--31mname"]
    missing = runner.invoke(standalone, ["uninstall", *common, "--server", "nope"])
    assert missing.exit_code == 2 and "not found" in missing.output
    back = runner.invoke(standalone, ["uninstall", *common])
    assert back.exit_code == 0 and json.loads(path.read_text()) == doc
    bad_proxy = runner.invoke(standalone, ["install", *common, "--proxy-command", "/bin/sh"])
    assert bad_proxy.exit_code == 2
    path.write_text("{ not json")
    broken = runner.invoke(standalone, ["install", *common, "--proxy-command", PROXY])
    assert broken.exit_code == 2 and "not a JSON MCP config" in broken.output
    assert path.read_text() == "{ not json"
    bad_policy = tmp_path / "bad.yaml"
    bad_policy.write_text("agents: 3\n")
    rejected = runner.invoke(standalone, ["install", *common, "--policy", str(bad_policy)])
    assert rejected.exit_code == 2


def test_a_wrapped_entry_runs_as_written(box: Box) -> None:
    path = box.root / "claude_desktop_config.json"
    server_env = {"SENTRAIL_TEST_CALLS": str(box.calls)}
    doc = {
        "mcpServers": {
            "payments-agent": {"command": sys.executable, "args": [str(SERVER)], "env": server_env}
        }
    }
    write(path, doc)
    install(path, McpClient.CLAUDE_DESKTOP, WrapOptions(proxy_command=PROXY, policy=str(POLICY)))
    entry = json.loads(path.read_text())["mcpServers"]["payments-agent"]
    assert entry["command"] == PROXY
    # As the client would start it, with the sentrail executable of this checkout:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "sentrail.cli.mcp", *entry["args"]],
        env={**entry["env"], "SENTRAIL_HOME": str(box.home)},
    )

    async def go() -> None:
        async with Client(params, mode="legacy") as client:
            ok = await client.call_tool("read_file", {"path": "/a"})
            assert not ok.is_error
            denied = await client.call_tool("send_money", {"account": "1", "amount": 50000})
            assert denied.is_error

    run(go)
    assert [c["tool"] for c in box.server_calls()] == ["read_file"]
    [log] = list((box.home / "decisions").glob("*.ndjson"))
    assert os.stat(log).st_mode & 0o777 == 0o600
    assert [json.loads(x)["agent_id"] for x in log.read_text().splitlines()] == [
        "payments-agent"
    ] * 2
