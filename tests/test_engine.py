from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings

from sentrail.detect.base import RunContext
from sentrail.detect.registry import DETECTORS
from sentrail.engine.engine import Engine
from sentrail.engine.fold import fold_events
from sentrail.engine.scoring import risk_of, verdict_of
from sentrail.errors import InputError
from sentrail.model.decode import decode_event, decode_run
from sentrail.model.events import events_of
from sentrail.model.finding import Category, Finding, Severity, Verdict
from sentrail.policy.compiled import Policy
from sentrail.policy.load import load_policy
from sentrail.runtime.batch import analyze_stream
from tests.conftest import EXAMPLES
from tests.strategies import traces

EXAMPLE_TRACES = sorted((EXAMPLES / "traces").glob("*.json"))


def policy() -> Policy:
    return Policy(load_policy(EXAMPLES / "policy.yaml"))


def ndjson(run_bytes: bytes) -> bytes:
    run = decode_run(run_bytes)
    return b"\n".join(msgspec.json.encode(e) for e in events_of(run)) + b"\n"


def assert_same(a: Any, b: Any) -> None:
    assert msgspec.to_builtins(a) == msgspec.to_builtins(b)


@settings(max_examples=150, deadline=None)
@given(traces())
def test_analyze_equals_fold_of_streamed_events(doc: dict[str, Any]) -> None:
    """DESIGN.md: analyze(trace) == fold(watch(events_of(trace))), through real NDJSON."""
    raw = json.dumps(doc).encode()
    engine = Engine(policy())
    whole = engine.analyze(decode_run(raw))
    streamed = [o.result for o in analyze_stream(engine, ndjson(raw), "<stream>")]
    assert len(streamed) == 1
    assert_same(whole, streamed[0])


@pytest.mark.parametrize(
    "path", [p for p in EXAMPLE_TRACES if p.name != "truncated.json"], ids=lambda p: p.name
)
def test_examples_analyze_equals_fold(path: Path) -> None:
    raw = path.read_bytes()
    engine = Engine(policy())
    assert_same(engine.analyze(decode_run(raw)), fold_events(engine, events_of(decode_run(raw)))[0])


def test_summary_arriving_only_at_completion_still_judges_escalation() -> None:
    doc = {
        "run_id": "r",
        "agent_id": "x",
        "steps": [
            {
                "step_index": 0,
                "tool_call": {"tool": "service.restart", "parameters": {}},
                "permissions_used": ["ssh:exec:write"],
            }
        ],
    }
    lines = [
        b'{"type":"run_started","run_id":"r","agent_id":"x"}',
        b'{"type":"step","run_id":"r","step":' + json.dumps(doc["steps"][0]).encode() + b"}",
        b'{"type":"run_completed","run_id":"r","status":"completed","permissions_summary":'
        b'{"granted":["metrics:read","ssh:exec:write"],"escalated":["ssh:exec:write"]}}',
    ]
    events = [decode_event(line) for line in lines]
    (result,) = fold_events(Engine(), events)
    esc = [f for f in result.findings if f.category is Category.PERMISSION_ESCALATION]
    assert [f.evidence["permission"] for f in esc] == ["ssh:exec:write"]


def test_stream_errors_are_located_and_the_rest_goes_on() -> None:
    data = (
        b'{"type":"run_started","run_id":"r","agent_id":"x"}\n'
        b'{"type":"step","run_id":"r","step":{"step_index":"zero"}}\n'
        b'{"type":"step","run_id":"r","step":{"step_index":1}}\n'
        b'{"type":"run_completed","run_id":"r"}\n'
    )
    outcomes = list(analyze_stream(Engine(), data, "s.ndjson"))
    assert outcomes[0].error == "s.ndjson:line 2: step.step_index: expected int, got str"
    assert outcomes[1].result is not None and outcomes[1].result.steps == 1


def _f(sev: Severity, cat: Category = Category.POLICY_VIOLATION, n: int = 0) -> Finding:
    return Finding(id=f"F{n}", rule="r", category=cat, severity=sev, step_index=n, message="m")


def test_verdict_and_risk() -> None:
    assert verdict_of([]) is Verdict.ALLOWED
    assert verdict_of([_f(Severity.INFO)]) is Verdict.ALLOWED
    assert verdict_of([_f(Severity.WARNING)]) is Verdict.SUSPICIOUS
    assert verdict_of([_f(Severity.INFO), _f(Severity.CRITICAL)]) is Verdict.UNAUTHORIZED
    score, parts = risk_of([_f(Severity.WARNING, n=i) for i in range(20)])
    assert score < 100 and parts[0].points == score  # repetition adds, with diminishing weight
    assert risk_of([_f(Severity.CRITICAL, c) for c in Category])[0] == 100
    assert risk_of([])[0] == 0


def test_exception_suppresses_until_expiry() -> None:
    from sentrail.policy.load import parse_policy

    yaml_text = b"""
rules:
  - id: no-prod-delete
    severity: critical
    condition: 'tool.risk == "destructive" && step.environment == "prod"'
exceptions:
  - rule: policy.rule.no-prod-delete
    agent: "dba-*"
    owner: alice@corp.example.com
    reason: migration window CHG-2291
    expires: 2026-06-30
"""
    engine = Engine(Policy(parse_policy(yaml_text)))
    base = {
        "agent_id": "dba-migrator",
        "steps": [
            {
                "step_index": 0,
                "environment": "prod",
                "reasoning": "Dropping the retired table.",
                "tool_call": {"tool": "db.drop_table", "parameters": {"table": "old"}},
                "result": {"status": "success", "data": None},
            }
        ],
    }
    before = engine.analyze(
        decode_run(
            json.dumps({**base, "run_id": "a", "started_at": "2026-06-01T00:00:00Z"}).encode()
        )
    )
    after = engine.analyze(
        decode_run(
            json.dumps({**base, "run_id": "b", "started_at": "2026-07-01T00:00:00Z"}).encode()
        )
    )
    assert not before.findings and before.suppressed
    assert before.suppressed[0].evidence["suppressed_by"]["owner"] == "alice@corp.example.com"
    assert before.verdict is Verdict.ALLOWED
    assert after.verdict is Verdict.UNAUTHORIZED and not after.suppressed


def test_finding_ids_are_deterministic() -> None:
    raw = (EXAMPLES / "traces" / "triage-restart.json").read_bytes()
    a = Engine(policy()).analyze(decode_run(raw))
    b = Engine(policy()).analyze(decode_run(raw))
    assert [f.id for f in a.findings] == [f.id for f in b.findings]
    assert len({f.id for f in a.findings}) == len(a.findings)


def test_a_rule_erroring_on_missing_fields_never_aborts_analysis() -> None:
    from sentrail.policy.load import parse_policy

    policy = Policy(
        parse_policy(b"""
rules:
  - id: external-mail
    severity: critical
    condition: '!params.to.endsWith("@corp.example.com") && tool.risk != "read_only"'
""")
    )
    doc = {
        "run_id": "r",
        "agent_id": "a",
        "steps": [
            {
                "step_index": 0,
                "reasoning": "x",
                "tool_call": {
                    "tool": "email.send",
                    "parameters": {"subject": "no recipient field"},
                },
                "result": {"status": "success"},
            },
            {
                "step_index": 1,
                "reasoning": "x",
                "tool_call": {"tool": "email.send", "parameters": {"to": "x@evil.io"}},
                "result": {"status": "success"},
            },
        ],
    }
    result = Engine(policy).analyze(decode_run(json.dumps(doc).encode()))
    hits = [f.step_index for f in result.findings if f.rule == "policy.rule.external-mail"]
    assert hits == [1]
    assert policy.rules[0].errors >= 1  # the error is counted, not raised


# -- the fold ------------------------------------------------------------------------------
def _events(raw: bytes) -> list[Any]:
    return list(events_of(decode_run(raw)))


def test_the_fold_says_what_each_event_did_and_nothing_else() -> None:
    from sentrail.engine.fold import Fold

    raw = (EXAMPLES / "traces" / "prod-delete.json").read_bytes()
    engine = Engine(policy())
    fold = Fold(engine)
    steps = [fold.feed(e) for e in _events(raw)]
    assert [s.kind for s in steps] == ["started"] + ["step"] * (len(steps) - 2) + ["completed"]
    assert all(s.result is None for s in steps[:-1]) and steps[-1].result is not None
    raised = [f.id for s in steps for f in s.findings]
    assert sorted(raised) == sorted(f.id for f in steps[-1].result.findings)  # each once
    assert not fold.runs  # a completed run is forgotten


def test_an_event_id_seen_before_in_a_run_changes_nothing() -> None:
    from sentrail.engine.fold import Fold

    raw = (EXAMPLES / "traces" / "prod-delete.json").read_bytes()
    events = _events(raw)
    for i, e in enumerate(events):
        e.event_id = f"e{i}"
    fold = Fold(Engine(policy()))
    once = [fold.feed(e) for e in events[:-1]]
    again = [fold.feed(e) for e in events[:-1]]  # redelivered
    assert {s.kind for s in again} == {"duplicate"} and not any(s.findings for s in again)
    end = fold.feed(events[-1])
    whole = Engine(policy()).analyze(decode_run(raw))
    assert_same(end.result, whole)
    assert len(once) == len(events) - 1


def test_events_that_do_not_fit_their_run_are_named() -> None:
    from sentrail.engine.fold import Fold, OutOfOrder

    fold = Fold(Engine())
    start = decode_event(b'{"type":"run_started","run_id":"r","agent_id":"x"}')
    fold.feed(start)
    with pytest.raises(OutOfOrder) as twice:
        fold.feed(decode_event(b'{"type":"run_started","run_id":"r","agent_id":"y"}'))
    assert twice.value.reason == "started_twice" and str(twice.value) == "run r: run_started twice"
    with pytest.raises(OutOfOrder) as orphan:
        fold.feed(decode_event(b'{"type":"step","run_id":"q","step":{"step_index":0}}'))
    assert orphan.value.reason == "not_started"
    (closed,) = fold.close_all("partial")
    assert closed.kind == "closed" and closed.result is not None
    assert closed.result.status == "partial"
    assert "missing_telemetry.empty_run" not in {f.rule for f in closed.result.findings}


def test_restoring_a_stored_run_is_the_same_fold_as_the_live_one(tmp_path: Path) -> None:
    from sentrail.runtime.ingest import event_kind
    from sentrail.runtime.stored import fold_stored
    from sentrail.store.base import NewEvent
    from sentrail.store.sqlite import SqliteStore
    from tests.store.conftest import SIGNER

    store = SqliteStore(tmp_path / "s.db", SIGNER)
    store.migrate()
    for path in EXAMPLE_TRACES:
        if path.name == "truncated.json":
            continue
        run = decode_run(path.read_bytes())
        events = events_of(run)
        store.append(
            [
                NewEvent(
                    "t",
                    "default",
                    run.run_id,
                    f"{run.run_id}/{i}",
                    event_kind(e),
                    msgspec.json.encode(e),
                )
                for i, e in enumerate(events)
            ]
        )
        stored = fold_stored(Engine(policy()), store.run_events("t", "default", run.run_id))
        assert stored.folder is not None and stored.completed
        assert_same(stored.folder.result, Engine(policy()).analyze(run))
        raised = sorted(f.id for s in stored.raised.values() for f in s.findings)
        assert raised == sorted(f.id for f in stored.folder.findings)
    store.close()


def test_a_finished_run_leaves_nothing_behind() -> None:
    """Each run's state (its folder, context, detectors, step facts) is freed once the run
    is judged, in either form: a compiled detector that inherited its __init__ kept the
    whole state alive (5 GB over a 50,000-trace batch)."""
    import gc

    from sentrail.engine.fold import RunFolder

    engine = Engine(Policy(load_policy(EXAMPLES / "policy.yaml")))
    mine = "leak-check-"  # other tests' runs may be alive on purpose: count these only
    for path in sorted((EXAMPLES / "traces").glob("*.json")):
        with contextlib.suppress(InputError):
            run = decode_run(path.read_bytes())
            engine.analyze(msgspec.structs.replace(run, run_id=mine + run.run_id))
    gc.collect()
    kept = [
        type(o).__name__
        for o in gc.get_objects()
        if isinstance(o, RunFolder | RunContext) and o.header.run_id.startswith(mine)
    ]
    assert kept == []
    # Every detector says how it is built (see Detector's docstring).
    for cls in DETECTORS.values():
        assert "__init__" in vars(cls), cls.__name__
