"""Shared pieces for the gateway tests: the test server, the proxy command, the logs."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import StdioServerParameters

HERE = Path(__file__).resolve().parent
SERVER = HERE / "mcp_server.py"
POLICY = HERE / "policy.yaml"
FAULTY = HERE / "faulty_proxy.py"
TEE = HERE / "tee.py"
AGENT = "payments-agent"
DEADLINE = 120  # a guard against a hung test, not a timing assertion


class Box:
    """Paths of one test's run: sentrail home, the server's call log, the decision log."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.calls = root / "calls.ndjson"
        self.decisions = root / "decisions.ndjson"

    @property
    def env(self) -> dict[str, str]:
        return {"SENTRAIL_HOME": str(self.home), "SENTRAIL_TEST_CALLS": str(self.calls)}

    def server_calls(self) -> list[dict[str, Any]]:
        if not self.calls.exists():
            return []
        return [json.loads(line) for line in self.calls.read_text().splitlines()]

    def decision_lines(self) -> list[dict[str, Any]]:
        if not self.decisions.exists():
            return []
        return [json.loads(line) for line in self.decisions.read_text().splitlines()]

    def proxy_argv(
        self, *options: str, agent: str = AGENT, server: list[str] | None = None
    ) -> list[str]:
        """argv (after the Python executable) of ``mcp-proxy`` in front of the test server."""
        return [
            "-m",
            "sentrail.cli.mcp",
            "mcp-proxy",
            "--policy",
            str(POLICY),
            "--agent-id",
            agent,
            "--decisions",
            str(self.decisions),
            *options,
            "--",
            *(server or [sys.executable, str(SERVER)]),
        ]

    def params(self, *options: str, **kw: Any) -> StdioServerParameters:
        return StdioServerParameters(
            command=sys.executable, args=self.proxy_argv(*options, **kw), env=self.env
        )


@pytest.fixture
def box(tmp_path: Path) -> Box:
    return Box(tmp_path)


def run(fn: Callable[[], Awaitable[None]]) -> None:
    async def guarded() -> None:
        with anyio.fail_after(DEADLINE):
            await fn()

    anyio.run(guarded)
