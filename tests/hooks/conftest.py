"""Helpers for the hook tests: documented payloads, an isolated SENTRAIL_HOME, the CLI."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sentrail.cli import hook as hook_cli

FIXTURES = Path(__file__).with_name("fixtures")


def payload(name: str, **changes: Any) -> dict[str, Any]:
    """A documented example payload (tests/hooks/fixtures/<name>.json) with fields changed;
    ``tool_input`` given as a dict is merged into the example's."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    for key, value in changes.items():
        if key == "tool_input" and isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**copy.deepcopy(data[key]), **value}
        else:
            data[key] = value
    return data


class Hook:
    """``sentrail hook <client>`` through typer's CliRunner."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.stderr = ""

    def raw(self, client: str, data: bytes | str, *args: str) -> str:
        result = CliRunner().invoke(
            hook_cli.app, [client, *args], input=data, env={"SENTRAIL_HOME": str(self.home)}
        )
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        assert result.exit_code == 0, result.output
        self.stderr = result.stderr
        return result.stdout

    def __call__(self, client: str, event: dict[str, Any], *args: str) -> dict[str, Any] | None:
        out = self.raw(client, json.dumps(event), *args)
        if not out.strip():
            return None
        answer: dict[str, Any] = json.loads(out)
        return answer


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "sentrail-home"


@pytest.fixture
def hook(home: Path) -> Hook:
    return Hook(home)


def decision_of(answer: dict[str, Any] | None) -> str | None:
    """``permissionDecision`` of a PreToolUse answer (None: no decision, the client's own)."""
    if answer is None:
        return None
    out = answer.get("hookSpecificOutput") or {}
    value = out.get("permissionDecision")
    return value if isinstance(value, str) else None


def reason_of(answer: dict[str, Any] | None) -> str:
    assert answer is not None
    return str(answer["hookSpecificOutput"]["permissionDecisionReason"])
