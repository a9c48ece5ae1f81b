"""Helpers for the watch and emit tests: the commands in process, and in a subprocess.

NATS is real (``SENTRAIL_TEST_NATS``, default nats://127.0.0.1:4222): when it is down the
NATS tests fail; they never skip.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from typer.testing import CliRunner

from sentrail.cli.watch import standalone

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TRACES = EXAMPLES / "traces"
TRIAGE = TRACES / "triage-restart.json"
TRIAGE_EVENTS = EXAMPLES / "events" / "triage-restart.ndjson"
NATS_URL = os.environ.get("SENTRAIL_TEST_NATS", "nats://127.0.0.1:4222")
# A hang guard for reading a child's output, never an assertion about speed.
PATIENCE = 120.0

runner = CliRunner()


def invoke(*args: str, input: bytes | str | None = None) -> Any:
    return runner.invoke(standalone, list(args), input=input)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own SENTRAIL_HOME and no colour."""
    home = tmp_path / "home"
    monkeypatch.setenv("SENTRAIL_HOME", str(home))
    monkeypatch.setenv("NO_COLOR", "1")
    return home


def child_env(home: Path) -> dict[str, str]:
    env = {**os.environ, "SENTRAIL_HOME": str(home), "NO_COLOR": "1"}
    env.pop("SENTRAIL_API_KEY", None)
    return env


def module_cmd(*args: str) -> list[str]:
    """``sentrail watch|emit`` through the module's own entry point."""
    return [sys.executable, "-m", "sentrail.cli.watch", *args]


class LineReader:
    """Reads a child's stream on a thread, so the test can wait for a line with a guard."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, needle: str) -> list[str]:
        while not any(needle in line for line in self.seen):
            line = self.lines.get(timeout=PATIENCE)
            assert line is not None, f"stream ended before {needle!r}: {self.seen}"
            self.seen.append(line)
        return self.seen

    def rest(self) -> list[str]:
        self._thread.join(PATIENCE)
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return self.seen
            if line is not None:
                self.seen.append(line)


@pytest.fixture
def child() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; killed (by their own pid) if the test leaves them running."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(PATIENCE)
