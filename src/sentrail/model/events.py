"""The NDJSON event envelope: how a run is streamed step by step.

One JSON object per line::

    {"type": "run_started", "run_id": "r1", "agent_id": "a", "trigger": "...", ...}
    {"type": "step", "run_id": "r1", "step": {"step_index": 0, ...}}
    {"type": "run_completed", "run_id": "r1", "status": "completed", ...}

``run_started`` carries every run field except ``steps``; ``run_completed`` may carry the
final ``completed_at``, ``status`` and ``permissions_summary``. ``event_id`` is optional and
used for idempotent delivery by later transports.

Events become runs in one place only, the fold (:mod:`sentrail.engine.fold`).
"""

from __future__ import annotations

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
