"""Replay and the replay diff: a stored run under the policy it was judged with reproduces the
stored judgement exactly; under a changed bundle the diff names each change (golden files)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings

from sentrail.engine.engine import Engine
from sentrail.forensics.replay import render_diff, replay_diff
from sentrail.model.decode import decode_run
from sentrail.model.events import RunCompleted, RunStarted, events_of
from sentrail.model.finding import Category, Finding, RunResult, Severity
from sentrail.policy.compiled import Policy
from sentrail.policy.load import load_policy
from sentrail.runtime.ingest import Ingestor
from sentrail.runtime.replay import (
    Replayer,
    ReplayError,
    ReplaySpec,
    fleet_runs,
    judge_stored,
    replay_fleet,
)
from sentrail.runtime.store_writer import StoreWriter
from sentrail.store.core import LogStore
from sentrail.store.records import records
from sentrail.store.sqlite import SqliteStore
from tests.conftest import EXAMPLES
from tests.forensics.conftest import TRACES, check_golden
from tests.store.conftest import SIGNER, Backend
from tests.strategies import traces

POLICY = EXAMPLES / "policy.yaml"
CHANGED = Path(__file__).parent / "replay-policy.yaml"
EVENTS = EXAMPLES / "events" / "triage-restart.ndjson"
TENANT, APP = "acme", "pay"


def ingest_all(store: LogStore, policy: Path | None = POLICY) -> list[str]:
    """Every example trace (and the example event stream) stored and judged under
    ``policy``, whose bundle the store keeps by hash (as ``ingest --policy`` does)."""
    bundle = Policy(load_policy(str(policy))) if policy is not None else Policy()
    if policy is not None and bundle.sha256 is not None:
        with records(store, write=True) as rtx:
            rtx.put_policy(bundle.sha256, policy.read_bytes(), 1.0)
    ingestor = Ingestor(
        store, Engine(bundle), writer=StoreWriter(store, policy_sha256=bundle.sha256)
    )
    ids = []
    for name in TRACES:
        ids.append(
            ingestor.ingest_trace(TENANT, APP, (EXAMPLES / "traces" / name).read_bytes()).run_id
        )
    done = ingestor.ingest_events(TENANT, APP, EVENTS.read_bytes())
    return ids + done.completed_runs


def plain(result: RunResult) -> Any:
    return msgspec.to_builtins(result)


@pytest.fixture
def memory() -> Iterator[LogStore]:
    store = SqliteStore(":memory:", SIGNER)
    store.migrate()
    yield store
    store.close()


# -- replay under its own policy reproduces the stored judgement exactly -------------------
@pytest.mark.parametrize("policy", [POLICY, None], ids=["example-policy", "built-in"])
def test_replay_under_its_own_policy_reproduces_the_stored_judgement(
    backend: Backend, policy: Path | None
) -> None:
    store = backend.open()
    ids = ingest_all(store, policy)
    assert len(ids) == len(TRACES) + 1
    replayer = Replayer.open(store, ReplaySpec())
    for run_id in ids:
        r = replayer.replay(TENANT, APP, run_id)
        stored = msgspec.json.decode(store.get_result(TENANT, APP, run_id) or b"", type=RunResult)
        assert plain(r.after) == plain(stored), run_id  # verdict, findings, risk: everything
        assert not r.diff.changed and r.diff.steps == [] and r.notes == []
        assert r.diff.before.source == "stored"
        assert r.diff.after.policy_sha256 == r.diff.before.policy_sha256


def test_the_before_side_is_the_stored_judgement_not_a_refold(memory: LogStore) -> None:
    ingest_all(memory)
    run_id = "run-0f6c2a88-b514"
    with records(memory, write=True) as rtx:  # the index says what it says; replay shows it
        rtx.tx.put_result(TENANT, APP, run_id, msgspec.json.encode(_empty(run_id)))
    r = Replayer.open(memory, ReplaySpec()).replay(TENANT, APP, run_id)
    assert r.diff.before.verdict == "allowed" and r.diff.after.verdict == "unauthorized"
    assert r.diff.counts.findings_added == len(r.after.findings)


def _empty(run_id: str) -> RunResult:
    from sentrail.model.finding import Verdict

    return RunResult(
        run_id=run_id,
        agent_id="finance-ap-assistant",
        verdict=Verdict.ALLOWED,
        risk_score=0,
        findings=[],
    )


# -- golden diffs under a changed bundle ----------------------------------------------------
def diffs_under(store: LogStore, ids: list[str], policy: Path) -> dict[str, Any]:
    replayer = Replayer.open(store, ReplaySpec(policy_path=str(policy)))
    out = {}
    for run_id in ids:
        d = msgspec.to_builtins(replayer.replay(TENANT, APP, run_id).diff)
        d["after"].pop("sentrail_version")  # the version is not part of the claim
        out[run_id] = d
    return out


def test_golden_diffs_under_a_changed_bundle(memory: LogStore) -> None:
    ids = ingest_all(memory)
    diffs = diffs_under(memory, ids, CHANGED)
    check_golden("replay/diffs.json", {k: v for k, v in diffs.items() if v["changed"]})
    unchanged = sorted(k for k, v in diffs.items() if not v["changed"])
    check_golden("replay/unchanged.json", unchanged)
    transfer = diffs["run-0f6c2a88-b514"]  # the rule removed: its finding is gone
    assert [r["rule"] for r in transfer["rules"]] == ["policy.rule.no-large-transfers"]
    assert transfer["rules"][0]["gone"] == 1
    restart = diffs["run-a4f8c312-9e7b"]  # a deny added: the restart is now blocked
    (step,) = restart["steps"]
    assert (step["decision_before"], step["decision_after"]) == ("approval_required", "deny")
    assert [f["rule"] for f in step["added"]] == ["policy.rule.no-prod-restart"]
    assert restart["before"]["verdict"] == "suspicious"
    assert restart["after"]["verdict"] == "unauthorized"


def test_golden_text_form(memory: LogStore) -> None:
    ingest_all(memory)
    r = Replayer.open(memory, ReplaySpec(policy_path=str(CHANGED))).replay(
        TENANT, APP, "run-a4f8c312-9e7b"
    )
    text = render_diff(r.diff).replace(r.diff.after.sentrail_version or "", "VERSION")
    path = Path(__file__).parent / "golden" / "replay" / "triage-restart.txt"
    import os

    if os.environ.get("SENTRAIL_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text()


def test_a_severity_change_is_one_change_not_a_finding_gone_and_one_added(
    memory: LogStore,
) -> None:
    ingest_all(memory)
    r = Replayer.open(memory, ReplaySpec(policy_path=str(CHANGED))).replay(
        TENANT,
        APP,
        "run-8d5e17b3-f0c4",  # data-fix: a shell in prod, now a critical
    )
    moved = [m for s in r.diff.steps for m in s.severity_changed]
    assert moved and {m.rule for m in moved} == {"policy.rule.no-shell-in-prod"}
    assert all((m.before, m.after) == ("warning", "critical") for m in moved)
    assert not any(f.rule == "policy.rule.no-shell-in-prod" for s in r.diff.steps for f in s.added)


def test_hostile_strings_are_escaped_in_the_text_form() -> None:
    evil = Finding(
        id="F-1\x1b[2J",
        rule="x.\u202erule",
        category=Category.POLICY_VIOLATION,
        severity=Severity.CRITICAL,
        step_index=0,
        message="boom\x1b]8;;http://evil\x07\nforged line",
    )
    from sentrail.forensics.replay import judgement
    from sentrail.model.finding import Verdict

    before = RunResult("run-\x1b[31m", "agent\x1b", Verdict.ALLOWED, 0, [])
    after = RunResult("run-\x1b[31m", "agent\x1b", Verdict.UNAUTHORIZED, 45, [evil])
    d = replay_diff(
        before,
        after,
        judgement(before, "stored"),
        judgement(after, "replayed"),
        tenant="t\x1b",
        app="a\u202e",
    )
    text = render_diff(d)
    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert "forged line" in text and "\nforged line" not in text


# -- the fleet --------------------------------------------------------------------------------
def test_fleet_summary_counts_each_change(memory: LogStore) -> None:
    ids = ingest_all(memory)
    spec = ReplaySpec(policy_path=str(CHANGED))
    rows = fleet_runs(memory, TENANT)
    assert {r.run_id for r in rows} == set(ids)
    s = replay_fleet(Replayer.open(memory, spec), TENANT, rows)
    assert s.runs == len(set(ids)) and s.skipped == []
    assert s.newly_unauthorized >= 1 and s.newly_blocked >= 1
    rules = {r.rule: r for r in s.rules}
    assert rules["policy.rule.no-large-transfers"].gone >= 1
    assert rules["policy.rule.no-prod-restart"].added >= 1
    assert {(v.before, v.after) for v in s.verdict_changes} >= {("suspicious", "unauthorized")}
    only = fleet_runs(memory, TENANT, agent="finance-*")
    assert only and all(r.agent_id.startswith("finance-") for r in only)


def test_fleet_with_worker_processes_equals_one_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = SqliteStore(str(tmp_path / "s.db"), SIGNER)
    store.migrate()
    ingest_all(store)
    spec = ReplaySpec(policy_path=str(CHANGED))
    rows = fleet_runs(store, TENANT)
    one = replay_fleet(Replayer.open(store, spec), TENANT, rows)
    seen: list[int] = []
    two = replay_fleet(
        Replayer.open(store, spec),
        TENANT,
        rows,
        jobs=2,
        url=url,
        spec=spec,
        chunk=3,
        progress=seen.append,
    )
    store.close()
    assert msgspec.to_builtins(one) == msgspec.to_builtins(two)
    assert sum(seen) == len(rows)


def test_unknown_and_erased_runs_are_replay_errors(memory: LogStore) -> None:
    ingest_all(memory)
    replayer = Replayer.open(memory, ReplaySpec())
    with pytest.raises(ReplayError, match="no such run"):
        replayer.replay(TENANT, APP, "run-nope")
    memory.redact(TENANT, APP, "run-0f6c2a88-b514", by="soc", reason="gdpr")
    with pytest.raises(ReplayError, match="erased"):
        replayer.replay(TENANT, APP, "run-0f6c2a88-b514")
    s = replay_fleet(replayer, TENANT, fleet_runs(memory, TENANT))
    assert [(k.run_id, k.reason.split(":")[0]) for k in s.skipped] == [
        ("run-0f6c2a88-b514", "redacted")
    ]


def test_a_bundle_the_store_does_not_hold_is_named(memory: LogStore) -> None:
    ingest_all(memory)
    with records(memory, write=True) as rtx:
        rtx.tx.all("DELETE FROM policies", ())
    r = Replayer.open(memory, ReplaySpec()).replay(TENANT, APP, "run-0f6c2a88-b514")
    assert any("is not in the store" in n for n in r.notes)


# -- property: any trace, stored as a document or as events, replays to its stored judgement --
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=traces())
def test_property_replay_reproduces_what_ingest_stored(doc: dict[str, Any]) -> None:
    store = SqliteStore(":memory:", SIGNER)
    store.migrate()
    try:
        engine = Engine(Policy(load_policy(str(POLICY))))
        policy_sha = engine.policy.sha256
        assert policy_sha is not None
        with records(store, write=True) as rtx:
            rtx.put_policy(policy_sha, POLICY.read_bytes(), 1.0)
        ingestor = Ingestor(store, engine, writer=StoreWriter(store, policy_sha256=policy_sha))
        data = json.dumps(doc).encode()
        ingestor.ingest_trace(TENANT, "doc", data)
        lines = [msgspec.json.encode(e) for e in events_of(decode_run(data))]
        ingestor.ingest_events(TENANT, "events", b"\n".join(lines))
        replayer = Replayer.open(store, ReplaySpec())
        for app in ("doc", "events"):
            r = replayer.replay(TENANT, app, doc["run_id"])
            stored = store.get_result(TENANT, app, doc["run_id"])
            assert stored is not None
            assert plain(r.after) == plain(msgspec.json.decode(stored, type=RunResult))
            assert not r.diff.changed
    finally:
        store.close()


def test_judge_stored_takes_the_current_version(memory: LogStore) -> None:
    """A stream still open is closed as it stands; a trace stored after it wins."""
    engine = Engine()
    run = decode_run((EXAMPLES / "traces" / "triage-restart.json").read_bytes())
    events = list(events_of(run))
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunCompleted)
    ingestor = Ingestor(memory, engine)
    ingestor.ingest_events(TENANT, APP, b"\n".join(msgspec.json.encode(e) for e in events[:3]))
    judged = judge_stored(engine, memory.run_events(TENANT, APP, run.run_id))
    assert judged is not None and judged.result.steps == 2
    data = (EXAMPLES / "traces" / "triage-restart.json").read_bytes()
    ingestor.ingest_trace(TENANT, APP, data)
    judged = judge_stored(engine, memory.run_events(TENANT, APP, run.run_id))
    assert judged is not None and judged.result.steps == len(run.steps)
    assert judged.trace_hash == hashlib.sha256(data).hexdigest()
