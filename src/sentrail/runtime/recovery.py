"""Which stored runs a starting worker must fold again: stored, but not (or not as they
ended) in the run index.

A worker writes a run's events, findings and index rows in one transaction, and only
acknowledges what it stored, so a run of its own is normally either indexed or delivered
again. What is left over — runs stored by a worker that lost them (the cumulative
acknowledgement defect of earlier versions), runs whose last event was acknowledged by a
worker that died before their idle timeout — is found here, by one pass over the tenant's
log: every run of the worker's app and partition that has no index row in that app
(events and index rows are both keyed by (tenant, app, run), and HTTP ingest writes its
rows with its events, so a run of the app without one is a stream worker's), or whose
row still says ``running`` although the log holds its ``run_completed``.

The pass reads the whole tenant log once, at start; its cost grows with the log.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from sentrail.errors import SentrailError
from sentrail.model.decode import decode_event, decode_run
from sentrail.model.events import RunStarted
from sentrail.model.status import RUNNING
from sentrail.runtime.stored import RUN_KINDS
from sentrail.store.core import LogStore
from sentrail.store.records import records


@dataclasses.dataclass
class _Seen:
    agent_id: str | None = None
    completed: bool = False


def stale_runs(store: LogStore, tenant: str, app: str, mine: Callable[[str], bool]) -> list[str]:
    """Runs of ``tenant``'s ``app`` (agents for which ``mine`` holds) to fold again, in
    log order."""
    seen: dict[str, _Seen] = {}
    for e in store.events(tenant):
        if e.kind not in RUN_KINDS or e.app_id != app:
            continue
        run = seen.setdefault(e.run_id, _Seen())
        if e.kind == "run_completed" or e.kind == "trace":
            run.completed = True
        if run.agent_id is None and e.payload is not None and e.kind in ("run_started", "trace"):
            try:
                if e.kind == "trace":
                    run.agent_id = decode_run(e.payload).agent_id
                else:
                    ev = decode_event(e.payload)
                    run.agent_id = ev.agent_id if isinstance(ev, RunStarted) else None
            except SentrailError:
                continue
    candidates = [r for r, s in seen.items() if s.agent_id is not None and mine(s.agent_id)]
    with records(store) as rtx:
        indexed = rtx.run_statuses(tenant, app, candidates)
    stale: list[str] = []
    for run_id in candidates:
        status = indexed.get(run_id)
        if status is None or (status == RUNNING and seen[run_id].completed):
            stale.append(run_id)
    return stale
