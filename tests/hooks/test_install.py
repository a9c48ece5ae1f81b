"""``sentrail hook install|uninstall``: entries written, kept idempotent, backed up, reversed."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from sentrail.cli import hook as hook_cli
from sentrail.hooks.install import hook_command, install, is_sentrail_command, uninstall
from sentrail.hooks.policy import DEFAULT_POLICY_YAML

OTHER_HOOK = {"matcher": "Bash", "hooks": [{"type": "command", "command": "./check.sh"}]}


def cli(*args: str) -> Any:
    return CliRunner().invoke(hook_cli.app, list(args))


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.sentrail-backup-*"))


def test_install_writes_the_documented_entries(tmp_path: Path) -> None:
    settings = tmp_path / ".claude" / "settings.json"
    policy = tmp_path / "policy.yaml"
    policy.write_text(DEFAULT_POLICY_YAML)
    result = cli(
        "install", "--client", "claude-code", "--settings", str(settings), "--policy", str(policy)
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(settings.read_text())
    hooks = doc["hooks"]
    assert set(hooks) == {"PreToolUse", "PostToolUse", "PostToolUseFailure", "UserPromptSubmit"}
    (pre,) = hooks["PreToolUse"]
    assert pre["matcher"] == "*"
    (entry,) = pre["hooks"]
    assert entry["type"] == "command" and entry["timeout"] == 30
    words = shlex.split(entry["command"])
    at = words.index("hook")
    assert words[at : at + 4] == ["hook", "claude-code", "--policy", str(policy.resolve())]
    options = dict(zip(words[at + 4 :: 2], words[at + 5 :: 2], strict=True))
    assert set(options) == {"--home", "--database"}  # the store the CLI uses, pinned
    assert "matcher" not in hooks["UserPromptSubmit"][0]
    assert backups(settings) == []  # nothing to back up: the file is new
    assert oct(settings.stat().st_mode & 0o777) == oct(0o600)


def test_install_is_idempotent_keeps_other_settings_and_backs_up(tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    original = {"model": "opus", "hooks": {"PreToolUse": [OTHER_HOOK]}}
    settings.write_text(json.dumps(original, indent=4))
    os.chmod(settings, 0o640)
    assert cli("install", "--client", "claude-code", "--settings", str(settings)).exit_code == 0
    (backup,) = backups(settings)
    assert json.loads(backup.read_text()) == original
    doc = json.loads(settings.read_text())
    assert doc["model"] == "opus"
    assert doc["hooks"]["PreToolUse"][0] == OTHER_HOOK
    assert len(doc["hooks"]["PreToolUse"]) == 2
    assert settings.read_text().startswith('{\n    "model"')  # indentation kept
    assert settings.stat().st_mode & 0o777 == 0o640

    again = cli("install", "--client", "claude-code", "--settings", str(settings))
    assert again.exit_code == 0 and "already installed" in again.output
    assert len(backups(settings)) == 1  # unchanged: no write, no backup

    changed = cli(
        "install",
        "--client",
        "claude-code",
        "--settings",
        str(settings),
        "--allow-mode",
        "allow",
        "--agent-id",
        "dev-laptop",
    )
    assert changed.exit_code == 0
    doc = json.loads(settings.read_text())
    assert len(doc["hooks"]["PreToolUse"]) == 2  # replaced, not added
    command = doc["hooks"]["PreToolUse"][1]["hooks"][0]["command"]
    assert "hook claude-code --agent-id dev-laptop --allow-mode allow --home " in command

    removed = cli("uninstall", "--client", "claude-code", "--settings", str(settings))
    assert removed.exit_code == 0 and "removed" in removed.output
    assert json.loads(settings.read_text()) == original
    nothing = cli("uninstall", "--client", "claude-code", "--settings", str(settings))
    assert "no sentrail hook" in nothing.output


def test_codex_and_cursor_shapes(tmp_path: Path) -> None:
    codex = tmp_path / ".codex" / "hooks.json"
    assert cli("install", "--client", "codex", "--settings", str(codex)).exit_code == 0
    doc = json.loads(codex.read_text())
    assert set(doc["hooks"]) == {"PreToolUse", "PostToolUse", "UserPromptSubmit"}
    assert all("matcher" not in e for entries in doc["hooks"].values() for e in entries)
    cursor = tmp_path / ".cursor" / "hooks.json"
    assert cli("install", "--client", "cursor", "--settings", str(cursor)).exit_code == 0
    doc = json.loads(cursor.read_text())
    assert doc["version"] == 1
    assert doc["hooks"]["beforeShellExecution"] == [
        {"command": doc["hooks"]["beforeReadFile"][0]["command"]}
    ]
    assert "hook cursor" in doc["hooks"]["beforeShellExecution"][0]["command"]
    assert cli("uninstall", "--client", "cursor", "--settings", str(cursor)).exit_code == 0
    assert json.loads(cursor.read_text()) == {"version": 1}


def test_only_sentrail_commands_for_that_client_are_recognised() -> None:
    assert is_sentrail_command(
        "/usr/local/bin/sentrail hook claude-code --policy p.yaml", "claude-code"
    )
    assert is_sentrail_command("/usr/bin/python3 -m sentrail hook codex", "codex")
    assert is_sentrail_command(hook_command("cursor", [], ["/opt/x/sentrail"]), "cursor")
    assert not is_sentrail_command("sentrail hook codex", "claude-code")
    assert not is_sentrail_command("./check.sh hook claude-code", "claude-code")
    assert not is_sentrail_command("echo 'unterminated", "claude-code")
    assert not is_sentrail_command(None, "claude-code")


def test_broken_settings_are_refused_and_left_alone(tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    for text in (
        '["not", "an", "object"]',
        '{"hooks": []}',
        '{"hooks": {"PreToolUse": {}}}',
        "{not json",
        '{"a": 1, "a": 2}',
    ):
        settings.write_text(text)
        result = cli("install", "--client", "claude-code", "--settings", str(settings))
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: ")
        assert settings.read_text() == text
    assert backups(settings) == []


def test_a_broken_policy_is_refused_at_install(tmp_path: Path) -> None:
    policy = tmp_path / "bad.yaml"
    policy.write_text("version: 1\nagents: [{id: x, retry_treshold: 3}]\n")
    settings = tmp_path / "settings.json"
    result = cli(
        "install", "--client", "claude-code", "--settings", str(settings), "--policy", str(policy)
    )
    assert result.exit_code == 2 and "retry_treshold" in result.output
    assert not settings.exists()


def test_settings_behind_a_symlink_are_written_through_it(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "settings.json"
    real.parent.mkdir()
    real.write_text("{}")
    link = tmp_path / "settings.json"
    os.symlink(real, link)
    result = install("claude-code", link, hook_command("claude-code", [], ["sentrail"]))
    assert result.changed and link.is_symlink()
    assert "PreToolUse" in json.loads(real.read_text())["hooks"]
    assert uninstall("claude-code", link).changed
    assert json.loads(real.read_text()) == {}


def test_the_default_policy_is_printed() -> None:
    result = cli("default-policy")
    assert result.exit_code == 0 and result.output == DEFAULT_POLICY_YAML
