"""A run from its logged events: the one place the store's readers fold stream events.

``log verify --deep`` and the query API rebuild a streamed run from the events its log
holds. They do it here, through :func:`run_of`, so that a change to how events are folded
into a run (:func:`sentrail.model.events.fold_run`) has one call site to follow.
"""

from __future__ import annotations

from collections.abc import Sequence

from sentrail.model.decode import decode_event
from sentrail.model.events import Event, RunCompleted, fold_run
from sentrail.model.trace import Run
from sentrail.store.base import StoredEvent

STREAM_KINDS = frozenset({"run_started", "step", "run_completed"})


def run_of(events: Sequence[StoredEvent], completed_as: str = "") -> Run | None:
    """The run that a run's logged stream events describe (None without a
    ``run_started``, or when its payloads were redacted); with ``completed_as``, closed
    as the worker closes an idle run."""
    decoded: list[Event] = [
        decode_event(e.payload) for e in events if e.kind in STREAM_KINDS and e.payload is not None
    ]
    if completed_as and decoded:
        decoded.append(RunCompleted(run_id=decoded[0].run_id, status=completed_as))
    return fold_run(decoded)
