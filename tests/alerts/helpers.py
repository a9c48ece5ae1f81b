"""Test helpers: an injectable clock, a recording wait, findings and runs to alert on."""

from __future__ import annotations

import datetime as dt
import hashlib
import zoneinfo
from typing import Any

from sentrail.model.finding import Category, Finding, Severity
from sentrail.model.trace import Run, Step, ToolCall, ToolResult


class FakeClock:
    """Epoch seconds that only move when told."""

    def __init__(self, now: float = 1_772_720_521.0) -> None:  # 2026-03-05T14:22:01Z
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Waits:
    """A ``Wait`` that records the delays asked for and never sleeps."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> bool:
        self.delays.append(seconds)
        return False


def local_epoch(tz: str, *args: int) -> float:
    """Epoch seconds of a wall-clock time in ``tz`` (year, month, day, hour, minute)."""
    year, month, day, hour, minute = args
    return dt.datetime(year, month, day, hour, minute, tzinfo=zoneinfo.ZoneInfo(tz)).timestamp()


def finding(
    rule: str = "data_exfiltration.untrusted_transfer",
    severity: Severity = Severity.CRITICAL,
    step: int | None = 2,
    category: Category = Category.DATA_EXFILTRATION,
    evidence: dict[str, Any] | None = None,
    message: str = "Data sent to an untrusted destination",
) -> Finding:
    return Finding(
        id="F-" + hashlib.sha256(repr((rule, step, evidence)).encode()).hexdigest()[:16],
        rule=rule,
        category=category,
        severity=severity,
        step_index=step,
        message=message,
        evidence=evidence
        if evidence is not None
        else {"tool": "http.post", "destination": "https://drop.example"},
        tags=["OWASP-ASI02", "AML.T0025"],
    )


def run(n_steps: int = 4, agent: str = "prod-triage-au-east", run_id: str = "run-1") -> Run:
    steps = [
        Step(
            step_index=i,
            action=f"action_{i}",
            tool_call=ToolCall(tool=f"tool.op{i}", parameters={"i": i}),
            result=ToolResult(status="success"),
            timestamp=f"2026-03-05T14:22:{10 + i:02d}.000Z",
            resource=f"host-{i}",
        )
        for i in range(n_steps)
    ]
    return Run(
        run_id=run_id,
        agent_id=agent,
        tenant_id="acme",
        started_at="2026-03-05T14:22:01.440Z",
        steps=steps,
    )
