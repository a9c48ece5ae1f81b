"""One stored run as the run page needs it: its index row, the trace (the stored document,
or the run folded from its stored events by the one fold), its findings, and which log
event carries each step (for the provenance badges).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from sentrail.model.finding import Finding
from sentrail.model.trace import Run
from sentrail.runtime.stored import STREAM_KINDS, document_of
from sentrail.store.base import StoredEvent
from sentrail.store.core import LogStore
from sentrail.store.records import FindingFilter, FindingRow, RunRow, records

MAX_FINDINGS = 10_000


class LoadedRun(msgspec.Struct):
    row: RunRow
    run: Run | None  # None when every payload was redacted
    events: list[StoredEvent]
    finding_rows: list[FindingRow]
    findings: list[Finding]
    step_events: dict[int, int]  # step_index -> seq of the event that carries it
    source_seq: int | None  # the trace document's event, when the run was sent whole


def _fold(events: Sequence[StoredEvent]) -> tuple[Run | None, dict[int, int]]:
    """The run its stream events describe (the one fold; what no longer decodes is left
    out of the page) and which event carries each step."""
    stored = document_of(e for e in events if e.kind in STREAM_KINDS)
    if stored.folder is None:
        return None, stored.steps_at
    return stored.folder.run, stored.steps_at


def load_run(store: LogStore, tenant: str, app: str, trace_hash: str) -> LoadedRun | None:
    """The run of ``app`` with this trace hash (None when there is none)."""
    with records(store) as rtx:
        row = rtx.run_by_hash(tenant, app, trace_hash)
        if row is None:
            return None
        finding_rows = rtx.list_findings(
            tenant, app, FindingFilter(run_id=row.run_id), MAX_FINDINGS
        )
    return load_run_row(store, row, finding_rows)


def load_run_row(store: LogStore, row: RunRow, finding_rows: list[FindingRow]) -> LoadedRun:
    events = store.run_events(row.tenant_id, row.app_id, row.run_id)
    run: Run | None = None
    step_events: dict[int, int] = {}
    source: int | None = None
    for e in events:
        if e.kind == "trace" and e.payload is not None and e.payload_sha256.hex() == row.trace_hash:
            try:
                run = msgspec.json.decode(e.payload, type=Run)
            except msgspec.DecodeError:
                continue
            source = e.seq
            step_events = {s.step_index: e.seq for s in run.steps}
    if run is None:
        run, step_events = _fold(events)
    findings = []
    for f in finding_rows:
        try:
            findings.append(msgspec.json.decode(f.body, type=Finding))
        except msgspec.DecodeError:
            continue
    return LoadedRun(row, run, events, finding_rows, findings, step_events, source)


def finding_message(body: bytes) -> str:
    """A stored finding's message (empty when the body is not a finding)."""
    try:
        msg = msgspec.json.decode(body, type=dict[str, object]).get("message", "")
    except msgspec.DecodeError:
        return ""
    return msg if isinstance(msg, str) else ""
