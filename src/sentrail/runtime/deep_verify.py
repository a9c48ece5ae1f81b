"""``log verify --deep``: hold the index tables to the log they were derived from.

The runs and findings tables are what the API shows, and they are not in the log: a
database editor could flip a verdict, delete a finding or mark one resolved, and the log
would still verify. This re-derives them from the logged events and names every index row
that disagrees. For each run ``(app, run_id)`` of the tenant's log:

1. its *versions*, each folded by the one fold exactly as the writers fold them
   (:func:`sentrail.runtime.stored.fold_stored`): every ``trace`` event is one (the
   document as received); its stream events (``run_started``, ``step``,
   ``run_completed``) folded together are another. The run's current version is the
   last one in seq order; it is complete when it is a trace, or a stream with a
   ``run_completed`` (a stream the worker closed as ``incomplete`` is closed with that
   status, as the worker did);
2. the fold judges it with the policy bundle the run's index row names by hash when the
   store holds that bundle (and its hash matches), else the default one, or the one
   given; baselines are not recorded per run: give the file the service used;
3. the index must agree: a complete run has a run row with the same verdict and risk
   score, and every finding of the analysis (with its severity); every finding row is
   derived from some logged version of its run; a finding is resolved exactly when the
   last ``triage`` event of it says so (:mod:`sentrail.store.triage`);
4. index rows of runs that have no logged events are named too (moved or invented).

Redacted runs are skipped (their payloads are gone) and runs with no ``run_started`` yet
are only checked for invented findings. Run it after ``log verify`` passed: it trusts the
events it reads because the log verified them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sentrail.engine.engine import Engine
from sentrail.engine.fold import RunFolder
from sentrail.errors import SentrailError
from sentrail.model.finding import Finding, RunResult
from sentrail.model.status import INCOMPLETE
from sentrail.policy.compiled import Policy
from sentrail.policy.load import parse_policy
from sentrail.runtime.stored import STREAM_KINDS, StoredRun, fold_stored
from sentrail.store.base import TRIAGE_KIND, StoredEvent
from sentrail.store.core import LogStore
from sentrail.store.records import FindingRow, RunRow, records
from sentrail.store.triage import parse_triage


@dataclass(frozen=True)
class Disagreement:
    """One index row that the log does not support."""

    app: str
    run_id: str
    detail: str

    def __str__(self) -> str:
        return f"app {self.app}: run {self.run_id}: {self.detail}"


@dataclass
class DeepReport:
    tenant: str
    runs: int = 0
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (app, run, why)
    disagreements: list[Disagreement] = field(default_factory=list)


@dataclass(frozen=True)
class _Version:
    seq: int
    result: RunResult
    complete: bool


def _versions(events: Sequence[StoredEvent], status: str, engine: Engine) -> list[_Version]:
    """The logged versions of a run, judged, in seq order (see the module docstring).
    SentrailError when a logged event of the run no longer decodes."""
    out: list[_Version] = []
    stream = [e for e in events if e.kind in STREAM_KINDS]
    for e in events:
        if e.kind == "trace" and e.payload is not None:
            folder = _folded(fold_stored(engine, [e]))
            if folder is not None and folder.result is not None:
                out.append(_Version(e.seq, folder.result, True))
    ends = [e.seq for e in stream if e.kind == "run_completed"]
    if ends:
        folder = _folded(fold_stored(engine, [e for e in stream if e.seq <= ends[-1]]))
        if folder is not None:
            result = folder.result or folder.close().result
            assert result is not None
            out.append(_Version(ends[-1], result, True))
    elif stream:
        folder = _folded(fold_stored(engine, stream))
        if folder is not None:
            incomplete = status == INCOMPLETE  # closed by the worker's idle timeout
            result = folder.close(INCOMPLETE if incomplete else None).result
            assert result is not None
            out.append(_Version(stream[-1].seq, result, incomplete))
    return sorted(out, key=lambda v: v.seq)


def _folded(stored: StoredRun) -> RunFolder | None:
    """The folder of a stored run; SentrailError naming the first event that no longer
    decodes (the index cannot be checked against what cannot be read)."""
    if stored.undecodable:
        first = stored.undecodable[0]
        raise first.error.at(f"event seq {first.seq}")
    return stored.folder


class EnginePicker:
    """The engine of a run: by its index row's policy hash when the store holds that
    bundle, else ``fallback`` (which ``--policy`` sets)."""

    def __init__(self, store: LogStore, fallback: Engine, *, pinned: bool = False) -> None:
        self.store = store
        self.fallback = fallback
        self.pinned = pinned
        self._by_hash: dict[str, Engine] = {}

    def __call__(self, policy_sha256: str | None) -> Engine:
        if self.pinned or policy_sha256 is None:
            return self.fallback
        engine = self._by_hash.get(policy_sha256)
        if engine is None:
            with records(self.store) as rtx:
                body = rtx.get_policy(policy_sha256)
            engine = self.fallback
            if body is not None and hashlib.sha256(body).hexdigest() == policy_sha256:
                policy = Policy(parse_policy(body, f"stored policy {policy_sha256[:12]}"))
                engine = Engine(policy, self.fallback.baselines, today=self.fallback.today)
            self._by_hash[policy_sha256] = engine
        return engine


def deep_verify(
    store: LogStore, tenant: str, engine_for: Callable[[str | None], Engine]
) -> DeepReport:
    """Re-derive ``tenant``'s runs and findings from its log; name every disagreement."""
    report = DeepReport(tenant)
    with records(store) as rtx:
        runs = {(r.app_id, r.run_id): r for r in rtx.runs_of(tenant)}
        findings: dict[tuple[str, str], list[FindingRow]] = {}
        for f in rtx.findings_of(tenant):
            findings.setdefault((f.app_id, f.run_id), []).append(f)
    logged = store.log_runs(tenant)
    erased = {(a, r) for a, r in logged if store.is_erased(tenant, a, r)}
    for app, run_id in logged:
        key = (app, run_id)
        if key in erased:
            report.skipped.append((app, run_id, "redacted: its payloads are gone"))
            continue
        events = store.run_events(tenant, app, run_id)
        row = runs.get(key)
        try:
            found = _check_run(events, row, findings.get(key, []), engine_for)
        except SentrailError as exc:
            found = [f"its logged events cannot be analysed: {exc}"]
        report.runs += 1
        report.disagreements.extend(Disagreement(app, run_id, d) for d in found)
    in_log = set(logged)
    for key, row in sorted(runs.items()):
        if key not in in_log:
            report.disagreements.append(
                Disagreement(
                    *key,
                    f"the index has a run row (verdict {row.verdict!r}) but "
                    "the log holds no event of this run (moved or invented)",
                )
            )
    for key, rows in sorted(findings.items()):
        if key not in in_log:
            ids = ", ".join(f.finding_id for f in rows[:5])
            report.disagreements.append(
                Disagreement(
                    *key,
                    f"the index has finding(s) {ids} of a run the log "
                    "does not hold (moved or invented)",
                )
            )
    return report


def _check_run(
    events: Sequence[StoredEvent],
    row: RunRow | None,
    rows: list[FindingRow],
    engine_for: Callable[[str | None], Engine],
) -> list[str]:
    out: list[str] = []
    engine = engine_for(row.policy_sha256 if row is not None else None)
    versions = _versions(events, row.status if row is not None else "", engine)
    if not versions:
        if row is not None or rows:
            out.append("the index has rows for a run whose logged events describe no run")
        return out
    derived: dict[str, Finding] = {}
    for v in versions:
        for f in v.result.findings:
            derived.setdefault(f.id, f)
    current = versions[-1]
    if current.complete:
        result = current.result
        if row is None:
            out.append("the log holds the run but the index has no row for it (deleted)")
        else:
            if row.verdict != result.verdict.value:
                out.append(
                    f"the verdict is {row.verdict!r} in the index, the logged events give "
                    f"{result.verdict.value!r}"
                )
            if row.risk_score != result.risk_score:
                out.append(
                    f"the risk score is {row.risk_score} in the index, the logged events "
                    f"give {result.risk_score}"
                )
        indexed = {f.finding_id: f for f in rows}
        for f in result.findings:
            have = indexed.get(f.id)
            if have is None:
                out.append(
                    f"finding {f.id} ({f.rule}, {f.severity.value}) is derived from the "
                    "logged events but missing from the index (deleted)"
                )
            elif have.severity != f.severity.value:
                out.append(
                    f"finding {f.id} is {have.severity!r} in the index, the logged events "
                    f"give {f.severity.value!r}"
                )
    for row_ in rows:
        if row_.finding_id not in derived:
            out.append(
                f"finding {row_.finding_id} in the index is not derived from the logged events"
            )
    out.extend(_resolutions(events, rows))
    return out


def _resolutions(events: Sequence[StoredEvent], rows: list[FindingRow]) -> list[str]:
    """Each finding is resolved exactly when its last triage event says so."""
    last: dict[str, tuple[bool, int]] = {}
    for e in events:
        if e.kind == TRIAGE_KIND and e.payload is not None:
            record = parse_triage(e.payload)
            last[record.finding_id] = (record.resolved, e.seq)
    out = []
    for f in rows:
        logged, seq = last.get(f.finding_id, (False, -1))
        if f.resolved and not logged:
            what = (
                "without a triage event"
                if seq < 0
                else f"but its last triage event (seq {seq}) reopened it"
            )
            out.append(f"finding {f.finding_id} is marked resolved in the index {what}")
        elif logged and not f.resolved:
            out.append(
                f"finding {f.finding_id} was resolved by the triage event at seq {seq}, "
                "but the index shows it open"
            )
    return out
