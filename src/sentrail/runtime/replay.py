"""Replay: a stored run's exact logged bytes folded again under another policy bundle,
baseline or sentrail version, and the diff against what the store concluded.

- The run is read from the log (``store.run_events``: the exact stored payloads) and
  folded by the one fold as the writers folded it (:func:`judge_stored`: the run's
  current version — its last ``trace`` event, or its stream events up to the last
  ``run_completed``; a stream the worker closed on its idle timeout is closed
  ``incomplete`` again, one still open is closed as it stands).
- *Before* is the stored judgement (the ``results`` row written when the run was
  analysed). A run never analysed (still open) is folded under the policy it cites
  instead. *After* is the fold under the replay's engine: the ``--policy`` given, else the
  policy the run was judged with — its index row names the bundle by SHA-256 and the store
  keeps the bundle by that hash (``sentrail serve --policy``, ``ingest --policy``,
  ``worker --policy``) — so a replay with no new policy shows what the sentrail version
  (or ``--baseline``) changes. A run judged with a bundle the store does not hold is
  replayed under the fallback and says so (:attr:`Replay.notes`).
- The diff is :func:`sentrail.forensics.replay.replay_diff`; :func:`replay_fleet` replays
  many runs (``--jobs`` worker processes) into a :class:`~sentrail.forensics.fleet.FleetSummary`.

Replaying a run under the policy it was judged with reproduces the stored verdict,
findings and risk exactly (tests/forensics/test_replay.py holds it to that on every
example trace).
"""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from fnmatch import fnmatchcase
from pathlib import Path

import msgspec

from sentrail import __version__
from sentrail.engine.config import load_baselines
from sentrail.engine.engine import Engine
from sentrail.errors import InputError, SentrailError
from sentrail.forensics.fleet import FleetSummary, FleetTally
from sentrail.forensics.replay import ReplayDiff, judgement, replay_diff
from sentrail.model.finding import RunResult
from sentrail.model.status import INCOMPLETE
from sentrail.model.trace import Run
from sentrail.policy.compiled import Policy
from sentrail.policy.load import load_policy, parse_policy
from sentrail.runtime.stored import STREAM_KINDS, LeftOut, fold_stored
from sentrail.store.base import StoredEvent
from sentrail.store.core import LogStore
from sentrail.store.records import RunRow, records


class ReplayError(InputError):
    """A run that cannot be replayed: unknown, erased, or with no readable start."""


@dataclasses.dataclass(frozen=True)
class Judged:
    """A stored run's current version, folded: the trace, its judgement, what was left out."""

    run: Run
    result: RunResult
    trace_hash: str
    left_out: list[LeftOut]


def judge_stored(engine: Engine, events: Sequence[StoredEvent], status: str = "") -> Judged | None:
    """The run's current version judged by ``engine`` as the writers judged it (see the
    module docstring); ``status`` is the run's index status. None: no readable start."""
    last_trace = next((e for e in reversed(events) if e.kind == "trace" and e.payload), None)
    stream = [e for e in events if e.kind in STREAM_KINDS]
    ends = [e.seq for e in stream if e.kind == "run_completed"]
    stream_seq = ends[-1] if ends else (stream[-1].seq if stream else -1)
    if last_trace is not None and last_trace.seq > stream_seq:
        chosen: Sequence[StoredEvent] = [last_trace]
    else:
        chosen = [e for e in stream if e.seq <= stream_seq]
    stored = fold_stored(engine, chosen)
    folder = stored.folder
    if folder is None:
        return None
    if folder.result is None:
        folder.close(INCOMPLETE if status == INCOMPLETE else None)
    assert folder.result is not None
    return Judged(folder.run, folder.result, stored.trace_hash, stored.left_out)


class PolicyPicker:
    """The engine a run was judged with, by the policy hash its index row cites: the
    store's copy of that bundle (checked against the hash), else ``fallback``; the hashes
    asked for that the store does not hold are in :attr:`missing`. ``baselines`` (None:
    none) go with every engine it builds."""

    def __init__(self, store: LogStore, fallback: Engine) -> None:
        self.store = store
        self.fallback = fallback
        self.missing: set[str] = set()
        self._by_hash: dict[str, Engine] = {}
        if fallback.policy.sha256 is not None:
            self._by_hash[fallback.policy.sha256] = fallback

    def __call__(self, policy_sha256: str | None) -> Engine:
        if policy_sha256 is None:
            return self.fallback
        engine = self._by_hash.get(policy_sha256)
        if engine is None:
            with records(self.store) as rtx:
                body = rtx.get_policy(policy_sha256)
            if body is not None and hashlib.sha256(body).hexdigest() == policy_sha256:
                policy = Policy(parse_policy(body, f"stored policy {policy_sha256[:12]}"))
                engine = Engine(policy, self.fallback.baselines, today=self.fallback.today)
            else:
                self.missing.add(policy_sha256)
                engine = self.fallback
            self._by_hash[policy_sha256] = engine
        return engine

    def holds(self, policy_sha256: str | None) -> bool:
        self(policy_sha256)
        return policy_sha256 is None or policy_sha256 not in self.missing


class ReplaySpec(msgspec.Struct, frozen=True):
    """What to replay under (a small value, passed to worker processes).

    ``policy_path``: the new bundle (None: each run's own). ``baseline_path``: baselines
    for the replay (None: none; baselines are not recorded per run). ``base_policy_path``:
    the bundle of runs whose own the store does not hold, and of the *before* side of a
    run never analysed (None: the built-in policy)."""

    policy_path: str | None = None
    baseline_path: str | None = None
    base_policy_path: str | None = None


@dataclasses.dataclass
class Replayer:
    """Replays the runs of one store under one :class:`ReplaySpec` (see the module
    docstring). Build it with :meth:`open`: the files are read and validated once."""

    store: LogStore
    original: PolicyPicker  # before: the policy each run was judged with
    after_for: Callable[[str | None], Engine]
    policy_sha256: str | None  # the new bundle's hash (None: each run's own, or built-in)
    baseline_sha256: str | None
    pinned: bool  # a new bundle was given

    @classmethod
    def open(cls, store: LogStore, spec: ReplaySpec) -> Replayer:
        base = Policy(load_policy(spec.base_policy_path)) if spec.base_policy_path else Policy()
        baselines = load_baselines(spec.baseline_path) if spec.baseline_path else None
        baseline_sha = _file_sha256(spec.baseline_path) if spec.baseline_path else None
        original = PolicyPicker(store, Engine(base))
        if spec.policy_path is not None:
            after = Engine(Policy(load_policy(spec.policy_path)), baselines)
            return cls(store, original, lambda _: after, after.policy.sha256, baseline_sha, True)
        own = PolicyPicker(store, Engine(base, baselines))
        return cls(store, original, own, None, baseline_sha, False)

    @classmethod
    def under(cls, store: LogStore, fallback: Engine, after: Engine | None) -> Replayer:
        """A replayer over engines already built (the service's): ``after`` is the bundle
        to replay under (None: each run's own, found in the store by the hash the run
        cites, else ``fallback``); ``fallback`` also judges the *before* side of a run never
        analysed whose bundle the store does not hold. Its baselines go with every engine."""
        original = PolicyPicker(store, fallback)
        if after is not None:
            return cls(store, original, lambda _: after, after.policy.sha256, None, True)
        return cls(store, original, PolicyPicker(store, fallback), None, None, False)

    def replay(self, tenant: str, app: str, run_id: str) -> Replay:
        """Replay one run of ``tenant``'s ``app`` (ReplayError when it cannot be)."""
        if self.store.is_erased(tenant, app, run_id):
            raise ReplayError(
                "its payloads were erased (redacted): nothing to replay", _at(app, run_id)
            )
        events = self.store.run_events(tenant, app, run_id)
        if not events:
            raise ReplayError("no such run in the log", _at(app, run_id))
        with records(self.store) as rtx:
            row = rtx.get_run(tenant, app, run_id)
        stored = self.store.get_result(tenant, app, run_id)
        return self.replay_events(tenant, app, run_id, events, row, stored)

    def replay_events(
        self,
        tenant: str,
        app: str,
        run_id: str,
        events: Sequence[StoredEvent],
        row: RunRow | None,
        stored_result: bytes | None,
    ) -> Replay:
        cited = row.policy_sha256 if row is not None else None
        status = row.status if row is not None else ""
        notes: list[str] = []
        after_engine = self.after_for(cited)
        after = judge_stored(after_engine, events, status)
        if after is None:
            raise ReplayError("its logged events hold no readable run_started", _at(app, run_id))
        own = self.after_for if isinstance(self.after_for, PolicyPicker) else None
        if own is not None and cited is not None and cited in own.missing:
            notes.append(
                f"the policy bundle that judged this run (sha256 {cited}) is not in the store: "
                "replayed under the fallback policy; give --policy or --base-policy"
            )
        before = _decode_result(stored_result)
        source = "stored"
        if before is None:
            judged = judge_stored(self.original(cited), events, status)
            assert judged is not None
            before, source = judged.result, "replayed"
            notes.append("the store holds no judgement of this run: before is a fold now")
        for lo in after.left_out:
            notes.append(f"left out: {lo}")
        before_side = judgement(before, source, policy_sha256=cited)
        after_side = judgement(
            after.result,
            "replayed",
            policy_sha256=self.policy_sha256 if self.pinned else after_engine.policy.sha256,
            baseline_sha256=self.baseline_sha256,
            sentrail_version=__version__,
        )
        diff = replay_diff(
            before, after.result, before_side, after_side, tenant=tenant, app=app, run=after.run
        )
        return Replay(tenant, app, run_id, after.run, before, after.result, diff, notes)


@dataclasses.dataclass(frozen=True)
class Replay:
    tenant: str
    app: str
    run_id: str
    run: Run
    before: RunResult
    after: RunResult
    diff: ReplayDiff
    notes: list[str]


def _at(app: str, run_id: str) -> str:
    return f"run {run_id!r} of app {app!r}"


def _file_sha256(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path) from None


_result_decoder = msgspec.json.Decoder(RunResult)


def _decode_result(raw: bytes | None) -> RunResult | None:
    if raw is None:
        return None
    try:
        return _result_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


# -- the fleet --------------------------------------------------------------------------------
def fleet_runs(
    store: LogStore,
    tenant: str,
    *,
    app: str | None = None,
    since: float | None = None,
    agent: str | None = None,
) -> list[RunRow]:
    """The indexed runs of ``tenant`` (and ``app``) started at or after ``since`` whose
    agent matches ``agent`` (an id or a glob), oldest first."""
    with records(store) as rtx:
        rows = rtx.runs_of(tenant)
    out = [
        r
        for r in rows
        if (app is None or r.app_id == app)
        and (since is None or r.started_at >= since)
        and (agent is None or fnmatchcase(r.agent_id, agent))
    ]
    out.sort(key=lambda r: (r.started_at, r.app_id, r.run_id))
    return out


Outcome = ReplayDiff | tuple[str, str, str]  # a diff, or (app, run, why it was skipped)
CHUNK = 200  # runs a worker process replays per task
READ_PIECE = 100  # runs read in one transaction


def replay_rows(replayer: Replayer, tenant: str, rows: Sequence[RunRow]) -> Iterator[Outcome]:
    """Each row's run replayed, or why it was skipped (the rest go on). Runs are read a
    piece at a time, each piece in one read transaction."""
    store = replayer.store
    for i in range(0, len(rows), READ_PIECE):
        piece = rows[i : i + READ_PIECE]
        erased: set[tuple[str, str]] = set()
        for app in dict.fromkeys(r.app_id for r in piece):
            ids = [r.run_id for r in piece if r.app_id == app]
            erased.update((app, run_id) for run_id in store.erased_runs(tenant, app, ids))
        read: list[tuple[RunRow, list[StoredEvent], bytes | None]] = []
        with store.transaction() as tx:
            for row in piece:
                if (row.app_id, row.run_id) in erased:
                    continue
                events = tx.run_events(tenant, row.app_id, row.run_id)
                read.append((row, events, tx.get_result(tenant, row.app_id, row.run_id)))
        got = iter(read)
        for row in piece:
            if (row.app_id, row.run_id) in erased:
                yield (row.app_id, row.run_id, "redacted: its payloads are gone")
                continue
            _, events, stored = next(got)
            try:
                if not events:
                    raise ReplayError("no such run in the log", _at(row.app_id, row.run_id))
                yield replayer.replay_events(
                    tenant, row.app_id, row.run_id, events, row, stored
                ).diff
            except SentrailError as exc:
                yield (row.app_id, row.run_id, str(exc))


_worker: tuple[Replayer, str] | None = None
_encode = msgspec.msgpack.Encoder().encode
_decode_outcomes = msgspec.msgpack.Decoder(list[ReplayDiff | tuple[str, str, str]]).decode


def _init_worker(url: str, spec: ReplaySpec, tenant: str) -> None:
    from sentrail.store.factory import open_store

    global _worker
    _worker = (Replayer.open(open_store(url), spec), tenant)


def _work(rows: list[RunRow]) -> bytes:
    assert _worker is not None
    replayer, tenant = _worker
    return _encode(list(replay_rows(replayer, tenant, rows)))


def replay_fleet(
    replayer: Replayer,
    tenant: str,
    rows: Sequence[RunRow],
    *,
    jobs: int = 1,
    url: str | None = None,
    spec: ReplaySpec | None = None,
    progress: Callable[[int], None] | None = None,
    scope: dict[str, object] | None = None,
    chunk: int = CHUNK,
) -> FleetSummary:
    """Replay ``rows`` and sum the diffs. ``jobs`` > 1 (with the store's ``url`` and the
    ``spec``) uses that many worker processes, each with its own connection; ``progress``
    is told how many runs each finished piece held."""
    tally = FleetTally()

    def take(outcome: Outcome) -> None:
        if isinstance(outcome, ReplayDiff):
            tally.add(outcome)
        else:
            tally.skip(*outcome)

    if jobs <= 1 or url is None or spec is None or len(rows) < 2 * chunk:
        for i, outcome in enumerate(replay_rows(replayer, tenant, rows), start=1):
            take(outcome)
            if progress is not None and (i % 100 == 0 or i == len(rows)):
                progress(100 if i % 100 == 0 else i % 100)
    else:
        pieces = [list(rows[i : i + chunk]) for i in range(0, len(rows), chunk)]
        ctx = multiprocessing.get_context("forkserver")
        with ctx.Pool(jobs, initializer=_init_worker, initargs=(url, spec, tenant)) as pool:
            for piece, blob in zip(pieces, pool.imap(_work, pieces), strict=True):
                for outcome in _decode_outcomes(blob):
                    take(outcome)
                if progress is not None:
                    progress(len(piece))
    after = {
        "policy_sha256": replayer.policy_sha256,
        "baseline_sha256": replayer.baseline_sha256,
        "sentrail_version": __version__,
        "policy": "given" if replayer.pinned else "each run's own",
    }
    return tally.summary(tenant, dict(scope or {}), after)
