"""The one fold: a run's events in, its state and its judgement out, one event at a time.

Every producer turns events into runs here and nowhere else: ``trace analyze`` (a trace
document is folded as the events a live producer would have sent), NDJSON files, ``trace
watch``, the stream worker (live, and when it restores a run from the store), HTTP ingest,
the decision point (and so the MCP gateway, the hooks and the SDK) and replay. So
``analyze(trace) == fold(events_of(trace))`` holds by construction, and a Hypothesis test
holds every producer to it.

The fold is side-effect free: :meth:`RunFolder.feed` returns a :class:`FoldStep` — the
findings the event raised (after suppressions), and the run's result when the event
closed it — and does nothing else. What happens to that output (stored, alerted,
printed) is decided by whoever feeds it (see :mod:`sentrail.runtime.pipeline`); restoring
a run from the store is feeding its stored events with nothing attached to the output.

How one event is folded:

1. ``run_started`` opens a run (:class:`Fold`; a :class:`RunFolder` is opened with it);
   its fields are the run's header.
2. ``step`` appends the step to the folded :class:`~sentrail.model.trace.Run` and runs
   the detectors on it, in arrival order; an event id seen before in the run is a
   duplicate and changes nothing.
3. ``run_completed`` (or :meth:`RunFolder.close` when the input ends first) takes the end
   fields, runs the end-of-run checks and gives the :class:`RunResult`.
4. A decision point folds a proposed call as a ``step`` before it runs, then
   :class:`StepDecided` (the call was denied or held: later steps see its status) and
   :class:`ResultObserved` (the tool's result, scanned as its own step and attached to the
   call) — the same detectors, the same state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING

import msgspec

from sentrail.detect.base import Detector, RunContext, StepFacts
from sentrail.engine.checks import policy_checks
from sentrail.engine.scoring import risk_of, verdict_of
from sentrail.errors import InputError
from sentrail.model.events import Event, RunCompleted, RunStarted, StepEvent
from sentrail.model.finding import Finding, RunResult
from sentrail.model.status import DENIED_STATUSES, FAILED_STATUSES
from sentrail.model.timestamps import parse_time
from sentrail.model.trace import Run, RunHeader, Step, ToolResult

if TYPE_CHECKING:
    from sentrail.engine.engine import Engine

MAX_EVENT_IDS = 100_000  # event ids remembered per run for deduplication (a bound)


class StepDecided(msgspec.Struct, frozen=True):
    """A decision point's answer on a call it folded as a step: ``status`` (``denied``,
    ``pending_approval``) is what later steps see, as they would in a trace."""

    run_id: str
    step_index: int
    status: str


class ResultObserved(msgspec.Struct, frozen=True):
    """A tool's result that arrived after its call was folded. It is attached to the call
    (``step_index``; None: the run's last call) and scanned as a step of its own, so an
    instruction injected in it taints what later calls take from the call's step."""

    run_id: str
    result: ToolResult
    step_index: int | None = None
    timestamp: str | None = None


FoldInput = Event | StepDecided | ResultObserved


@dataclasses.dataclass(frozen=True, slots=True)
class FoldStep:
    """What one input did to its run.

    ``kind``: ``started`` | ``step`` | ``decided`` | ``observed`` | ``completed`` (a
    ``run_completed``) | ``closed`` (the input ended first) | ``duplicate`` (an event id
    seen before: nothing changed). ``findings``: the new findings, in the order raised.
    ``result``: the run's judgement, when this input closed it. ``step``: the step folded.
    """

    run_id: str
    kind: str
    findings: list[Finding] = dataclasses.field(default_factory=list)
    result: RunResult | None = None
    step: Step | None = None

    @property
    def closed(self) -> bool:
        return self.result is not None


class OutOfOrder(InputError):
    """An event that does not fit its run: ``run_started`` twice, an event of a run that
    was never started (or already completed). ``reason`` says which, for counting."""

    def __init__(self, reason: str, run_id: str) -> None:
        super().__init__(
            {
                "started_twice": "run_started twice",
                "not_started": "event before run_started",
            }.get(reason, reason),
            f"run {run_id}",
        )
        self.reason = reason
        self.run_id = run_id

    def at(self, location: str) -> OutOfOrder:
        err = OutOfOrder(self.reason, self.run_id)
        err.location = f"{location}: {self.location}"
        return err


def header_of(started: RunStarted) -> RunHeader:
    """The run header a ``run_started`` carries."""
    return msgspec.convert(msgspec.to_builtins(started), RunHeader)


class RunFolder:
    """One run being folded: its header, its steps so far, its detectors' state."""

    def __init__(self, engine: Engine, header: RunHeader) -> None:
        self.engine = engine
        self.header = header
        self.run = Run(**{f: getattr(header, f) for f in RunHeader.__struct_fields__})
        self.suppressed: list[Finding] = []
        self.result: RunResult | None = None
        self.steps = 0
        self._ids: set[str] = set()
        self._event_ids: set[str] = set()
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

    @property
    def run_id(self) -> str:
        return self.header.run_id

    @property
    def findings(self) -> list[Finding]:
        """Every finding so far (after suppressions)."""
        return self.ctx.findings

    @property
    def closed(self) -> bool:
        return self.result is not None

    def seen(self, event_id: str | None) -> bool:
        """Whether an event with this id was folded into the run already."""
        return bool(event_id) and event_id in self._event_ids

    def remember(self, event_id: str | None) -> None:
        """Count ``event_id`` as folded (the ``run_started`` that opened the run)."""
        if event_id and len(self._event_ids) < MAX_EVENT_IDS:
            self._event_ids.add(event_id)

    # -- the fold ---------------------------------------------------------------------------
    def feed(self, event: FoldInput) -> FoldStep:
        """Fold one input of this run (InputError for a step after the run closed)."""
        event_id = getattr(event, "event_id", None)
        if self.seen(event_id):
            return FoldStep(self.run_id, "duplicate")
        self.remember(event_id)
        if isinstance(event, StepEvent):
            return FoldStep(self.run_id, "step", self._step(event.step), step=event.step)
        if isinstance(event, RunCompleted):
            self._complete(event)
            return self._finish("completed")
        if isinstance(event, StepDecided):
            self._decided(event.step_index, event.status)
            return FoldStep(self.run_id, "decided")
        if isinstance(event, ResultObserved):
            found, step = self._observed(event)
            return FoldStep(self.run_id, "observed", found, step=step)
        return FoldStep(self.run_id, "duplicate")  # a second run_started of an open run

    def close(self, status: str | None = None) -> FoldStep:
        """The input ended without ``run_completed``: end-of-run checks, then the result.
        ``status`` (e.g. ``incomplete``, ``partial``) replaces the run's status."""
        if self.result is not None:
            return FoldStep(self.run_id, "duplicate")
        if status is not None:
            self._complete(RunCompleted(run_id=self.run_id, status=status))
        return self._finish("closed")

    # -- steps ------------------------------------------------------------------------------
    def _accept(self, finding: Finding, facts: StepFacts | None) -> None:
        tool = facts.tool if facts is not None and facts.tool else "*"
        held = self.engine.policy.suppression_for(
            finding.rule, finding.category.value, self.header.agent_id, tool, self._on
        )
        if held is not None:
            finding.evidence["suppressed_by"] = {
                "rule": held.rule,
                "owner": held.owner,
                "reason": held.reason,
                "expires": held.expires.isoformat(),
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

    def _step(self, step: Step, result_of: str | None = None) -> list[Finding]:
        if self.result is not None:
            raise InputError("step after the run was completed", f"step {step.step_index}")
        ctx = self.ctx
        facts = StepFacts(step, self.engine.policy, self.header.environment)
        facts.result_of = result_of
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
        self.run.steps.append(step)
        return self._new

    def _facts(self, step_index: int) -> StepFacts | None:
        for facts in reversed(self.ctx.history):
            if facts.index == step_index:
                return facts
        return None

    def _decided(self, step_index: int, status: str) -> None:
        facts = self._facts(step_index)
        if facts is None:
            return
        denied, failed = facts.denied, facts.failed
        facts.status = status.lower()
        facts.denied = facts.status in DENIED_STATUSES
        facts.failed = facts.status in FAILED_STATUSES
        self.ctx.denied_count += facts.denied - denied
        self.ctx.failures += facts.failed - failed

    def _observed(self, ev: ResultObserved) -> tuple[list[Finding], Step]:
        ctx = self.ctx
        index = ev.step_index
        if index is None:
            index = next((f.index for f in reversed(ctx.history) if f.tool), None)
        facts = self._facts(index) if index is not None else None
        if facts is not None:
            # Detectors that read results lazily (data reads, taint sources) see it there.
            facts.step.result = ev.result
            facts._result_text = None
            facts.result_cut = False
            self._decided(facts.index, ev.result.status or "")
        step = Step(
            step_index=self.steps, action="tool_result", result=ev.result, timestamp=ev.timestamp
        )
        seen = len(ctx.injections)
        found = self._step(step, facts.tool if facts is not None else None)
        if facts is not None:
            # The result is the call's too: an instruction injected in it taints the values
            # taken from the call's step, where the result was attached.
            ctx.move_injections(seen, step.step_index, facts.index)
        return found, step

    # -- the end ----------------------------------------------------------------------------
    def _complete(self, event: RunCompleted) -> None:
        h = self.header
        self.header = msgspec.structs.replace(
            h,
            completed_at=event.completed_at or h.completed_at,
            status=event.status or h.status,
            permissions_summary=event.permissions_summary or h.permissions_summary,
        )
        self.run.completed_at = self.header.completed_at
        self.run.status = self.header.status
        self.run.permissions_summary = self.header.permissions_summary
        self.ctx.update_header(self.header)

    def _finish(self, kind: str) -> FoldStep:
        if self.result is not None:
            return FoldStep(self.run_id, "duplicate")
        self._new = []
        for det in self.detectors:
            det.finish()
        self.result = judge(self)
        return FoldStep(self.run_id, kind, self._new, self.result)


def judge(folder: RunFolder) -> RunResult:
    """The run's result: findings in report order, the verdict, the risk and its reasons,
    the policy lines and the permission summary."""
    ctx = folder.ctx
    header = folder.header
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
    elif header.permissions_summary is not None:
        escalated = sorted(header.permissions_summary.escalated)
    else:
        escalated = []
    start, end = parse_time(header.started_at), parse_time(header.completed_at)
    duration = (end - start).total_seconds() if start and end else None
    profile = ctx.profile
    policy = folder.engine.policy
    return RunResult(
        run_id=header.run_id,
        agent_id=header.agent_id,
        verdict=verdict_of(findings),
        risk_score=score,
        findings=findings,
        risk_contributions=contributions,
        policy_checks=policy_checks(policy, profile, findings),
        suppressed=folder.suppressed,
        steps=folder.steps,
        status=header.status,
        duration_s=duration,
        permissions_baseline=baseline_perms,
        permissions_used=used,
        permissions_escalated=escalated,
        policy_name=(f"{profile.name} ({policy.name})" if profile.matched else policy.name),
    )


class Fold:
    """Many runs' events, interleaved as a stream delivers them: one folder per open run.

    A ``run_completed`` closes its run and forgets it; :meth:`close` and
    :meth:`close_all` end runs whose input stopped first. Events that do not fit a run
    raise :class:`OutOfOrder` (a producer counts, reports or skips them, and goes on).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.runs: dict[str, RunFolder] = {}

    def open(self, header: RunHeader) -> RunFolder:
        """Open a run from its header (a run restored, or begun by a decision point)."""
        if header.run_id in self.runs:
            raise OutOfOrder("started_twice", header.run_id)
        folder = self.runs[header.run_id] = RunFolder(self.engine, header)
        return folder

    def feed(self, event: FoldInput) -> FoldStep:
        run_id = event.run_id
        if isinstance(event, RunStarted):
            open_ = self.runs.get(run_id)
            if open_ is not None and open_.seen(event.event_id):
                return FoldStep(run_id, "duplicate")
            self.open(header_of(event)).remember(event.event_id)
            return FoldStep(run_id, "started")
        folder_or_none = self.runs.get(run_id)
        if folder_or_none is None:
            raise OutOfOrder("not_started", run_id)
        out = folder_or_none.feed(event)
        if out.result is not None:
            del self.runs[run_id]
        return out

    def close(self, run_id: str, status: str | None = None) -> FoldStep:
        """End one open run without ``run_completed`` (see :meth:`RunFolder.close`)."""
        folder = self.runs.pop(run_id)
        return folder.close(status)

    def close_all(self, status: str | None = None) -> list[FoldStep]:
        """End every open run (the input ended), in the order they were opened."""
        return [self.close(run_id, status) for run_id in list(self.runs)]


def fold_events(engine: Engine, events: Iterable[FoldInput]) -> list[RunResult]:
    """The judgement of every run in ``events``, in the order the runs ended (runs still
    open at the end are closed then). OutOfOrder for an event that does not fit."""
    fold = Fold(engine)
    results = [s.result for s in map(fold.feed, events) if s.result is not None]
    results.extend(s.result for s in fold.close_all() if s.result is not None)
    return results
