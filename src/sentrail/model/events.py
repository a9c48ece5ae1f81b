"""The NDJSON event envelope: how a run is streamed step by step.

One JSON object per line::

    {"type": "run_started", "run_id": "r1", "agent_id": "a", "trigger": "...", ...}
    {"type": "step", "run_id": "r1", "step": {"step_index": 0, ...}}
    {"type": "run_completed", "run_id": "r1", "status": "completed", ...}

``run_started`` carries every run field except ``steps``; ``run_completed`` may carry the
final ``completed_at``, ``status`` and ``permissions_summary``. ``event_id`` is optional and
used for idempotent delivery by later transports.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from sentrail.model.trace import PermissionsSummary, Run, RunHeader, Step


class RunStarted(RunHeader, tag_field="type", tag="run_started", omit_defaults=True):
    event_id: str | None = None


class StepEvent(msgspec.Struct, tag_field="type", tag="step", omit_defaults=True):
    run_id: str
    step: Step
    event_id: str | None = None


class RunCompleted(msgspec.Struct, tag_field="type", tag="run_completed", omit_defaults=True):
    run_id: str
    completed_at: str | None = None
    status: str | None = None
    permissions_summary: PermissionsSummary | None = None
    event_id: str | None = None


Event = RunStarted | StepEvent | RunCompleted


def events_of(run: Run) -> list[Event]:
    """Replay a whole trace as the events a live producer would have sent."""
    header = run.header()
    started = msgspec.convert(msgspec.to_builtins(header), RunStarted)
    events: list[Event] = [started]
    events.extend(StepEvent(run_id=run.run_id, step=s) for s in run.steps)
    events.append(
        RunCompleted(
            run_id=run.run_id,
            completed_at=run.completed_at,
            status=run.status,
            permissions_summary=run.permissions_summary,
        )
    )
    return events


def fold_run(events: Iterable[Event]) -> Run | None:
    """The trace document a run's events describe (None without a ``run_started``).

    Steps are kept in arrival order; a later ``run_completed`` overrides the end fields.
    """
    run: Run | None = None
    steps: list[Step] = []
    completed: RunCompleted | None = None
    for ev in events:
        if isinstance(ev, RunStarted):
            fields = msgspec.to_builtins(ev)
            fields.pop("type", None)
            fields.pop("event_id", None)
            run = msgspec.convert(fields, Run)
        elif isinstance(ev, StepEvent):
            steps.append(ev.step)
        else:
            completed = ev
    if run is None:
        return None
    run.steps = steps
    if completed is not None:
        run.completed_at = completed.completed_at or run.completed_at
        run.status = completed.status or run.status
        run.permissions_summary = completed.permissions_summary or run.permissions_summary
    return run
