"""One engine for both modes: a trace file is replayed as events through the same session
a live stream uses, so ``analyze(run) == fold(events_of(run))`` by construction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import msgspec

from sentrail.detect.base import (
    DENIED_STATUSES,
    FAILED_STATUSES,
    Detector,
    RunContext,
    StepFacts,
    parse_time,
)
from sentrail.detect.registry import DETECTORS
from sentrail.engine.checks import policy_checks
from sentrail.engine.scoring import risk_of, verdict_of
from sentrail.errors import InputError
from sentrail.model.baseline import Baselines
from sentrail.model.events import Event, RunCompleted, RunStarted, StepEvent
from sentrail.model.finding import Finding, RunResult
from sentrail.model.trace import Run, RunHeader, Step, ToolResult
from sentrail.policy.compiled import Policy


class RunSession:
    """The state of one run being analysed, step by step."""

    def __init__(self, engine: Engine, header: RunHeader) -> None:
        self.engine = engine
        self.header = header
        self.suppressed: list[Finding] = []
        self._ids: set[str] = set()
        self._new: list[Finding] = []
        self.ctx = RunContext(
            header,
            engine.policy,
            self._accept,
            baseline=engine.baselines.get(header.agent_id) if engine.baselines else None,
        )
        started = parse_time(header.started_at)
        self._on = started.date() if started is not None else engine.today
        self.detectors: list[Detector] = [cls(self.ctx) for cls in engine.detectors]
        self.steps = 0
        self._finished = False

    def _accept(self, finding: Finding, facts: StepFacts | None) -> None:
        tool = facts.tool if facts is not None and facts.tool else "*"
        exc = self.engine.policy.exception_for(
            finding.rule, finding.category.value, self.header.agent_id, tool, self._on
        )
        if exc is not None:
            finding.evidence["suppressed_by"] = {
                "rule": exc.rule,
                "owner": exc.owner,
                "reason": exc.reason,
                "expires": exc.expires.isoformat(),
            }
            self.suppressed.append(finding)
            return
        if finding.id in self._ids:  # a trace that repeats a step_index repeats ids
            n = 2
            while f"{finding.id}-{n}" in self._ids:
                n += 1
            finding.id = f"{finding.id}-{n}"
        self._ids.add(finding.id)
        self.ctx.findings.append(finding)
        self._new.append(finding)

    def on_step(self, step: Step) -> list[Finding]:
        """Analyse one step; returns the findings it produced (after exceptions)."""
        if self._finished:
            raise InputError("step after the run was completed", f"step {step.step_index}")
        ctx = self.ctx
        facts = StepFacts(step, self.engine.policy, self.header.environment)
        self._new = []
        for det in self.detectors:
            det.on_step(facts)
        ctx.history.append(facts)
        if facts.tool is not None:
            ctx.calls += 1
            ctx.writes += facts.is_write
        ctx.failures += facts.failed
        ctx.denied_count += facts.denied
        self.steps += 1
        return self._new

    def mark_last(self, status: str) -> None:
        """Set the outcome of the last step after it was analysed (a decision point denied
        it, or sent it to approval): later steps see it as denied, as in a trace."""
        if self.ctx.history:
            self.mark_last_facts(self.ctx.history[-1], status)

    def attach_result(self, step_index: int, result: ToolResult) -> bool:
        """Give an analysed step its result after the fact (a decision point sees the call
        before it runs). Detectors that read results lazily (data reads, taint sources)
        see it; feed the result as its own step too for those that read it on arrival."""
        for facts in reversed(self.ctx.history):
            if facts.index == step_index:
                break
        else:
            return False
        facts.step.result = result
        facts._result_text = None
        self.mark_last_facts(facts, result.status or "")
        return True

    def mark_last_facts(self, facts: StepFacts, status: str) -> None:
        denied, failed = facts.denied, facts.failed
        facts.status = status.lower()
        facts.denied = facts.status in DENIED_STATUSES
        facts.failed = facts.status in FAILED_STATUSES
        self.ctx.denied_count += facts.denied - denied
        self.ctx.failures += facts.failed - failed

    @property
    def findings(self) -> list[Finding]:
        """Every finding so far (after exceptions)."""
        return self.ctx.findings

    def complete(self, event: RunCompleted) -> None:
        h = self.header
        self.header = msgspec.structs.replace(
            h,
            completed_at=event.completed_at or h.completed_at,
            status=event.status or h.status,
            permissions_summary=event.permissions_summary or h.permissions_summary,
        )
        self.ctx.update_header(self.header)

    def finish(self) -> RunResult:
        """Close the run: end-of-run checks, then the verdict."""
        self._new = []
        for det in self.detectors:
            det.finish()
        self._finished = True
        ctx = self.ctx
        findings = sorted(
            ctx.findings,
            key=lambda f: (
                -1 if f.step_index is None else f.step_index,
                -f.severity.rank,
                f.rule,
                f.id,
            ),
        )
        score, contributions = risk_of(findings)
        used = sorted({p for f in ctx.history for p in f.permissions})
        boundary = ctx.boundary
        baseline_perms = sorted(boundary.patterns) if boundary is not None else []
        if boundary is not None:
            escalated = [p for p in used if p not in boundary]
        elif self.header.permissions_summary is not None:
            escalated = sorted(self.header.permissions_summary.escalated)
        else:
            escalated = []
        start, end = parse_time(self.header.started_at), parse_time(self.header.completed_at)
        duration = (end - start).total_seconds() if start and end else None
        profile = ctx.profile
        policy = self.engine.policy
        return RunResult(
            run_id=self.header.run_id,
            agent_id=self.header.agent_id,
            verdict=verdict_of(findings),
            risk_score=score,
            findings=findings,
            risk_contributions=contributions,
            policy_checks=policy_checks(policy, profile, findings),
            suppressed=self.suppressed,
            steps=self.steps,
            status=self.header.status,
            duration_s=duration,
            permissions_baseline=baseline_perms,
            permissions_used=used,
            permissions_escalated=escalated,
            policy_name=(f"{profile.name} ({policy.name})" if profile.matched else policy.name),
        )


class Engine:
    """Holds what is shared across runs: the policy, baselines and the detector set."""

    def __init__(
        self,
        policy: Policy | None = None,
        baselines: Baselines | None = None,
        *,
        today: dt.date | None = None,
        detectors: Sequence[type[Detector]] = DETECTORS,
    ) -> None:
        self.policy = policy or Policy()
        self.baselines = baselines
        self.today = today
        self.detectors = tuple(detectors)

    def start(self, header: RunHeader) -> RunSession:
        return RunSession(self, header)

    def analyze(self, run: Run) -> RunResult:
        session = self.start(run.header())
        for step in run.steps:
            session.on_step(step)
        return session.finish()

    def replay(self, events: Iterable[Event]) -> list[RunResult]:
        """Fold an event stream; runs are closed by ``run_completed`` or the stream's end."""
        open_runs: dict[str, RunSession] = {}
        results: list[RunResult] = []
        for ev in events:
            if isinstance(ev, RunStarted):
                if ev.run_id in open_runs:
                    raise InputError("run_started twice", f"run {ev.run_id}")
                header = msgspec.convert(msgspec.to_builtins(ev), RunHeader)
                open_runs[ev.run_id] = self.start(header)
            elif isinstance(ev, StepEvent):
                session = open_runs.get(ev.run_id)
                if session is None:
                    raise InputError("step for a run that was not started", f"run {ev.run_id}")
                session.on_step(ev.step)
            else:
                session = open_runs.pop(ev.run_id, None)
                if session is None:
                    raise InputError("run_completed for an unknown run", f"run {ev.run_id}")
                session.complete(ev)
                results.append(session.finish())
        results.extend(s.finish() for s in open_runs.values())
        return results
