"""The CLI as a user meets it: an isolated sentrail home, the commands run in process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sentrail.cli.app import app
from tests.conftest import EXAMPLES

POLICY = EXAMPLES / "policy.yaml"
TRACES = EXAMPLES / "traces"
TRIAGE = TRACES / "triage-restart.json"


class Cli:
    """``sentrail ...`` through typer's runner, with ``SENTRAIL_HOME`` set to ``home`` and
    no ``SENTRAIL_DATABASE``: every default resolves under the test's own directory."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def __call__(self, *args: str | Path, input: bytes | str | None = None) -> Any:
        env = {"SENTRAIL_HOME": str(self.home), "SENTRAIL_DATABASE": None}
        return CliRunner().invoke(app, [str(a) for a in args], input=input, env=env)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("SENTRAIL_HOME", str(path))
    monkeypatch.delenv("SENTRAIL_DATABASE", raising=False)
    return path


@pytest.fixture
def cli(home: Path) -> Cli:
    return Cli(home)
