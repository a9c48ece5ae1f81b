"""What ``trace watch`` shows: one record per run start, step and run end, and problems.

:class:`WatchView` is the pipeline exporter that turns the fold's
:class:`~sentrail.runtime.pipeline.RunUpdate` s into these records for a view (the
compact lines or the JSON objects of :mod:`sentrail.cli.watch`); :class:`WatchProblem` records
(an invalid line, an orphan event) come from the watcher itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sentrail.model.finding import Category, Finding, RunResult, Severity
from sentrail.model.trace import RunHeader, Step
from sentrail.runtime.pipeline import RunUpdate


@dataclass(frozen=True)
class RunOpened:
    run_id: str
    agent_id: str
    header: RunHeader


@dataclass(frozen=True)
class StepSeen:
    run_id: str
    agent_id: str
    step: Step
    findings: list[Finding]  # new findings at or above the minimum severity
    escalated: bool


@dataclass(frozen=True)
class RunClosed:
    run_id: str
    agent_id: str
    result: RunResult
    findings: list[Finding]  # findings of the end-of-run checks, filtered like StepSeen's
    completed: bool  # False: the input ended first (closed as partial)


@dataclass(frozen=True)
class WatchProblem:
    where: str
    message: str
    kind: str = "invalid"  # invalid | orphan


WatchRecord = RunOpened | StepSeen | RunClosed | WatchProblem
RecordSink = Callable[[WatchRecord], None]


class WatchView:
    """Run updates as watch records, findings below ``min_severity`` left out."""

    def __init__(self, sink: RecordSink, min_severity: Severity = Severity.INFO) -> None:
        self.sink = sink
        self.min_rank = min_severity.rank

    def _shown(self, found: list[Finding]) -> list[Finding]:
        return [f for f in found if f.severity.rank >= self.min_rank]

    def export(self, updates: Sequence[RunUpdate]) -> None:
        for u in updates:
            kind, run = u.step.kind, u.run
            if kind == "started":
                self.sink(RunOpened(u.run_id, run.agent_id, run.header()))
            elif kind == "step" and u.step.step is not None:
                step = u.step.step
                summary = run.permissions_summary
                escalated = any(
                    f.category is Category.PERMISSION_ESCALATION and f.step_index == step.step_index
                    for f in u.findings
                ) or bool(summary and set(summary.escalated).intersection(step.permissions_used))
                self.sink(
                    StepSeen(u.run_id, run.agent_id, step, self._shown(u.findings), escalated)
                )
            elif u.result is not None:
                completed = kind == "completed"
                shown = self._shown(u.findings)
                self.sink(RunClosed(u.run_id, run.agent_id, u.result, shown, completed))

    def flush(self) -> None:
        return None

    def shutdown(self) -> None:
        return None
