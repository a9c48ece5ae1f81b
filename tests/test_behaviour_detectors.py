"""excessive_retries, unusual_sequence, missing_telemetry and behavioural_correlation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentrail.engine.baseline_learn import learn
from sentrail.engine.engine import Engine
from sentrail.engine.fold import fold_events
from sentrail.model.baseline import Baselines
from sentrail.model.decode import decode_run
from sentrail.model.events import RunCompleted, RunStarted, StepEvent, events_of
from sentrail.model.finding import Finding, RunResult
from sentrail.policy.compiled import Policy
from sentrail.policy.load import parse_policy
from tests.conftest import analyze_doc

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "traces"


def call(
    i: int,
    tool: str | None,
    params: dict[str, Any] | None = None,
    status: str | None = "success",
    t: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    s: dict[str, Any] = {"step_index": i, "reasoning": f"step {i}"}
    s["tool_call"] = None if tool is None else {"tool": tool, "parameters": params or {}}
    s["result"] = None if status is None else {"status": status}
    if t is not None:
        s["timestamp"] = f"2026-03-05T14:{int(t) // 60:02d}:{t % 60:06.3f}Z"
    s.update(extra)
    return s


def doc(steps: list[dict[str, Any]], agent: str = "agent-1", **extra: Any) -> dict[str, Any]:
    return {"run_id": "run-1", "agent_id": agent, "steps": steps, **extra}


def of(result: RunResult, category: str) -> list[Finding]:
    return [f for f in result.findings if f.category.value == category]


# -- excessive_retries -------------------------------------------------------------------


def test_design_sample_retry_is_one_info_finding() -> None:
    result = analyze_doc((EXAMPLES / "triage-restart.json").read_bytes())
    [f] = of(result, "excessive_retries")
    assert f.message == "Retry detected — metrics.query called 2x with identical params"
    assert (f.severity.value, f.step_index, f.rule) == ("info", 7, "excessive_retries.identical")
    assert f.evidence["steps"] == [6, 7] and f.evidence["params"] == "identical"


def test_password_guessing_is_critical_once_per_burst() -> None:
    steps = [
        call(i, "auth.login", {"user": "bob", "password": f"guess{i}"}, "failed", t=i)
        for i in range(6)
    ]
    [f] = of(analyze_doc(doc(steps)), "excessive_retries")
    assert (f.rule, f.severity.value, f.step_index) == ("excessive_retries.mutating", "critical", 2)
    assert f.evidence["changed_keys"] == ["password"]
    assert f.evidence["steps"] == [0, 1, 2] and f.evidence["count"] == 3
    assert "brute force" in f.message


def test_identical_calls_reaching_threshold_warn_once() -> None:
    q = {"sql": "select 1"}
    steps = [call(i, "db.query", q, "timeout", t=i * 5) for i in range(6)]
    [f] = of(analyze_doc(doc(steps)), "excessive_retries")
    assert (f.rule, f.severity.value, f.step_index) == ("excessive_retries.identical", "warning", 2)
    assert "likely a bug or outage" in f.message


def test_threshold_comes_from_the_profile() -> None:
    policy = "agents:\n  - id: agent-1\n    retry_threshold: 5\n"
    steps = [call(i, "db.query", {"q": 1}, "timeout") for i in range(3)]
    [f] = of(analyze_doc(doc(steps), policy), "excessive_retries")
    assert f.severity.value == "info" and f.evidence["count"] == 3


def test_successful_calls_with_changing_params_are_work_not_retries() -> None:
    steps = [call(i, "files.read", {"path": f"/srv/app/{i}.log"}) for i in range(8)]
    assert not of(analyze_doc(doc(steps)), "excessive_retries")


def test_repeats_far_apart_in_calls_or_time_are_not_a_burst() -> None:
    q = {"q": "up"}
    apart = [call(0, "metrics.query", q), *(call(i, f"t{i}.get") for i in range(1, 6))]
    apart.append(call(6, "metrics.query", q))
    assert not of(analyze_doc(doc(apart)), "excessive_retries")
    slow = [call(i, "metrics.query", q, t=i * 300) for i in range(4)]
    assert not of(analyze_doc(doc(slow)), "excessive_retries")


def test_interleaved_retries_still_form_a_burst() -> None:
    steps: list[dict[str, Any]] = []
    for n in range(3):
        steps.append(call(2 * n, "auth.verify_otp", {"otp": f"{n:06d}"}, "failed"))
        steps.append(call(2 * n + 1, "auth.status", {"attempt": n}))
    [f] = of(analyze_doc(doc(steps)), "excessive_retries")
    assert f.severity.value == "critical" and f.evidence["steps"] == [0, 2, 4]


def test_same_operation_on_different_targets_is_probing_not_brute_force() -> None:
    steps = [call(i, "s3.get_object", {"bucket": f"b{i}"}, "denied") for i in range(3)]
    [f] = of(analyze_doc(doc(steps)), "excessive_retries")
    assert f.severity.value == "warning" and "probing" in f.message


# -- unusual_sequence --------------------------------------------------------------------


def _baselines(agent: str, runs: list[list[str]]) -> Baselines:
    return learn(
        decode_run(msgspec.json.encode(doc([call(i, t) for i, t in enumerate(tools)], agent)))
        for tools in runs
    )


HISTORY = [["metrics.query", "ssh.exec", "ticket.update"]] * 6


def test_no_baseline_for_the_agent_means_no_sequence_findings() -> None:
    steps = [call(0, "totally.new"), call(1, "db.drop")]
    baselines = _baselines("someone-else", HISTORY)
    assert not of(analyze_doc(doc(steps), baselines=baselines), "unusual_sequence")
    assert not of(analyze_doc(doc(steps)), "unusual_sequence")


def test_new_tool_and_new_transitions() -> None:
    b = _baselines("agent-1", HISTORY)
    steps = [
        call(0, "metrics.query"),
        call(1, "ticket.update"),  # known tool, new transition, a write
        call(2, "metrics.query"),  # new transition ticket.update -> metrics.query, a read
        call(3, "iam.create_user"),  # never seen
        call(4, "iam.create_user"),  # reported once
    ]
    found = {
        (f.rule, f.step_index): f
        for f in of(analyze_doc(doc(steps), baselines=b), "unusual_sequence")
    }
    assert set(found) == {
        ("unusual_sequence.new_transition", 1),
        ("unusual_sequence.new_transition", 2),
        ("unusual_sequence.new_tool", 3),
    }
    assert found[("unusual_sequence.new_transition", 1)].severity.value == "warning"
    assert found[("unusual_sequence.new_transition", 2)].severity.value == "info"
    new_tool = found[("unusual_sequence.new_tool", 3)]
    assert new_tool.severity.value == "warning"
    # the three calls that led to it, then the new tool
    led = ["metrics.query", "ticket.update", "metrics.query", "iam.create_user"]
    assert new_tool.evidence["sequence"] == led
    assert " -> ".join(led) in new_tool.message


def test_thin_baseline_gives_info_only() -> None:
    b = _baselines("agent-1", HISTORY[:2])
    steps = [call(0, "iam.create_user"), call(1, "metrics.query")]
    found = of(analyze_doc(doc(steps), baselines=b), "unusual_sequence")
    assert found and {f.severity.value for f in found} == {"info"}
    assert all(f.evidence["insufficient_history"] for f in found)


def test_learned_run_is_not_unusual_against_its_own_baseline() -> None:
    run = (EXAMPLES / "triage-restart.json").read_bytes()
    baselines = learn([decode_run(run)] * 5)
    assert not of(analyze_doc(run, baselines=baselines), "unusual_sequence")


# -- missing_telemetry -------------------------------------------------------------------


def rules(result: RunResult, category: str = "missing_telemetry") -> set[tuple[str, int | None]]:
    return {(f.rule.split(".", 1)[1], f.step_index) for f in of(result, category)}


def test_step_index_gaps_duplicates_and_reordering() -> None:
    steps = [call(i, "x.get") for i in (0, 1, 4, 4, 3)]
    assert rules(analyze_doc(doc(steps))) == {
        ("step_gap", 4),
        ("duplicate_step", 4),
        ("step_order", 3),
    }


def test_timestamps_backwards_unparseable_missing_and_after_completion() -> None:
    steps = [
        call(0, "x.get", t=10),
        call(1, "x.get", t=5),
        call(2, "x.get", timestamp="yesterday-ish"),
        call(3, "x.get"),
        call(4, "x.get", t=100),
    ]
    got = rules(analyze_doc(doc(steps, completed_at="2026-03-05T14:01:00Z")))
    assert got == {
        ("time_backwards", 1),
        ("bad_timestamp", 2),
        ("no_timestamp", 3),
        ("after_completion", 4),
    }


def test_sensitive_write_without_result_or_reasoning() -> None:
    s = call(0, "payments.transfer", {"amount": 5}, status=None, reasoning="  ")
    result = analyze_doc(doc([s]))
    sev = {f.rule: f.severity.value for f in of(result, "missing_telemetry")}
    assert sev == {
        "missing_telemetry.no_result": "warning",
        "missing_telemetry.no_reasoning": "info",
    }
    # a read with no result is not a telemetry problem
    assert not of(analyze_doc(doc([call(0, "x.get", status=None)])), "missing_telemetry")


def test_completed_run_without_steps() -> None:
    assert rules(analyze_doc(doc([], status="completed"))) == {("empty_run", None)}
    assert not rules(analyze_doc(doc([], status="running")))


SUMMARY = {"granted": ["a:read", "b:write"], "denied": ["c:admin"], "escalated": ["b:write"]}


def test_permissions_against_the_summary() -> None:
    steps = [
        call(0, "x.get", permissions_used=["a:read", "z:secret"]),
        call(1, "c.set", permissions_used=["c:admin"]),
    ]
    result = analyze_doc(doc(steps, permissions_summary=SUMMARY))
    found = {f.rule: f for f in of(result, "missing_telemetry")}
    assert set(found) == {
        "missing_telemetry.unlisted_permission",
        "missing_telemetry.unused_escalation",
    }
    assert found["missing_telemetry.unlisted_permission"].evidence["permission"] == "z:secret"
    assert found["missing_telemetry.unused_escalation"].severity.value == "info"
    # without a summary nothing is said about permissions
    assert not of(analyze_doc(doc(steps)), "missing_telemetry")


def test_summary_arriving_only_at_run_completed_gives_the_same_findings() -> None:
    steps = [call(0, "x.get", permissions_used=["z:secret"], t=1), call(1, "x.get", t=90)]
    d = doc(
        steps, permissions_summary=SUMMARY, status="completed", completed_at="2026-03-05T14:01:00Z"
    )
    run = decode_run(msgspec.json.encode(d))
    batch = Engine().analyze(run)
    header = msgspec.structs.replace(
        run.header(), permissions_summary=None, completed_at=None, status=None
    )
    live = [
        msgspec.convert(msgspec.to_builtins(header), RunStarted),
        *(StepEvent(run_id="run-1", step=s) for s in run.steps),
        RunCompleted(
            run_id="run-1",
            completed_at=run.completed_at,
            status="completed",
            permissions_summary=run.permissions_summary,
        ),
    ]
    [streamed] = fold_events(Engine(), live)
    assert (
        rules(batch)
        == rules(streamed)
        == {
            ("unlisted_permission", 0),
            ("unused_escalation", None),
            ("after_completion", 1),
        }
    )


# -- behavioural_correlation -------------------------------------------------------------


def test_escalation_right_after_a_denial_is_critical() -> None:
    result = analyze_doc((EXAMPLES / "escalation-iam.json").read_bytes())
    [f] = of(result, "behavioural_correlation")
    assert (f.rule, f.severity.value, f.step_index) == (
        "behavioural_correlation.escalation_after_denial",
        "critical",
        3,
    )
    assert f.evidence["steps"] == [2, 3]


def test_escalation_judged_at_run_end_is_still_correlated() -> None:
    """Streamed without a boundary until run_completed, escalations are found in finish()."""
    run = decode_run((EXAMPLES / "escalation-iam.json").read_bytes())
    header = msgspec.structs.replace(run.header(), permissions_summary=None)
    live = [
        msgspec.convert(msgspec.to_builtins(header), RunStarted),
        *(StepEvent(run_id=run.run_id, step=s) for s in run.steps),
        RunCompleted(run_id=run.run_id, permissions_summary=run.permissions_summary),
    ]
    [streamed] = fold_events(Engine(), live)
    batch = Engine().analyze(run)
    assert of(streamed, "behavioural_correlation") == of(batch, "behavioural_correlation")
    assert len(of(batch, "behavioural_correlation")) == 1


def test_repeated_denied_writes_without_timestamps_use_steps() -> None:
    close = [call(i, "user.disable", {"user": f"u{i}"}, "denied") for i in range(3)]
    [f] = [
        x for x in of(analyze_doc(doc(close)), "behavioural_correlation") if "repeated" in x.rule
    ]
    assert f.severity.value == "warning" and f.evidence["steps"] == [0, 1, 2]
    spread = [call(i * 4, "user.disable", {"user": f"u{i}"}, "denied") for i in range(3)]
    assert not [
        x for x in of(analyze_doc(doc(spread)), "behavioural_correlation") if "repeated" in x.rule
    ]


def test_denied_write_rerouted_through_another_tool() -> None:
    steps = [
        call(0, "db.drop_table", {"table": "Audit_Log"}, "denied"),
        call(1, "db.execute", {"table": "audit_log", "sql": "delete from audit_log"}),
    ]
    [f] = [
        x for x in of(analyze_doc(doc(steps)), "behavioural_correlation") if "rerouted" in x.rule
    ]
    assert f.severity.value == "critical" and f.evidence["steps"] == [0, 1]
    same_tool = [steps[0], call(1, "db.drop_table", {"table": "audit_log"})]
    other_target = [steps[0], call(1, "db.execute", {"table": "sessions"})]
    for case in (same_tool, other_target):
        assert not [
            x for x in of(analyze_doc(doc(case)), "behavioural_correlation") if "rerouted" in x.rule
        ]


def test_high_risk_action_right_after_low_confidence() -> None:
    steps = [call(0, None, status=None, confidence=0.2), call(1, "vm.terminate", {"vm": "i-1"})]
    [f] = of(analyze_doc(doc(steps)), "behavioural_correlation")
    assert f.rule == "behavioural_correlation.low_confidence_action" and f.evidence["steps"] == [
        0,
        1,
    ]
    calm = [call(0, None, status=None, confidence=0.9), call(1, "vm.terminate", {"vm": "i-1"})]
    read = [call(0, None, status=None, confidence=0.2), call(1, "vm.describe", {"vm": "i-1"})]
    assert not of(analyze_doc(doc(calm)), "behavioural_correlation")
    assert not of(analyze_doc(doc(read)), "behavioural_correlation")


# -- properties --------------------------------------------------------------------------

TOOLS = ["auth.login", "db.query", "db.delete", "files.read", "svc.restart", "x"]
_param = st.dictionaries(
    st.sampled_from(["password", "host", "table", "q", "n"]),
    st.one_of(st.integers(0, 3), st.sampled_from(["a", "b", "web-1"])),
    max_size=3,
)
_step = st.fixed_dictionaries(
    {
        "step_index": st.integers(-2, 12),
        "tool_call": st.one_of(
            st.none(), st.fixed_dictionaries({"tool": st.sampled_from(TOOLS), "parameters": _param})
        ),
        "result": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {"status": st.sampled_from(["success", "failed", "denied", "timeout"])}
            ),
        ),
        "permissions_used": st.lists(st.sampled_from(["a:read", "b:write", "c:admin"]), max_size=2),
    },
    optional={
        "timestamp": st.one_of(
            st.sampled_from(["bad", "2026-03-05T14:00:00Z", "2026-03-05T13:00:00+01:00"]),
            st.integers(0, 3600).map(lambda s: f"2026-03-05T14:{s // 60 % 60:02d}:{s % 60:02d}Z"),
        ),
        "confidence": st.floats(0, 1),
        "reasoning": st.sampled_from(["", "because"]),
        "resource": st.sampled_from(["web-1", "a"]),
    },
)
_run = st.fixed_dictionaries(
    {"run_id": st.just("r"), "agent_id": st.just("agent-1"), "steps": st.lists(_step, max_size=12)},
    optional={
        "status": st.sampled_from(["completed", "failed"]),
        "completed_at": st.sampled_from(["2026-03-05T14:30:00Z", "x"]),
        "started_at": st.sampled_from(["2026-03-05T14:10:00Z"]),
        "permissions_summary": st.one_of(
            st.none(), st.just(SUMMARY), st.just({"granted": ["*"], "escalated": ["a:*"]})
        ),
    },
)
_BASELINES = _baselines("agent-1", [TOOLS[:3], TOOLS[2:], TOOLS[::2]])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_run, st.booleans())
def test_arbitrary_runs_never_crash_and_stream_like_batch(d: dict[str, Any], thin: bool) -> None:
    run = decode_run(msgspec.json.encode(d))
    baselines = _baselines("agent-1", [TOOLS]) if thin else _BASELINES
    policy_yaml = "agents:\n  - id: agent-1\n    retry_threshold: 2\n"
    batch = analyze_doc(msgspec.json.encode(d), policy_yaml, baselines)
    engine = Engine(Policy(parse_policy(policy_yaml.encode())), baselines)
    [streamed] = fold_events(engine, events_of(run))
    assert batch.findings == streamed.findings
    mine = {"excessive_retries", "unusual_sequence", "missing_telemetry", "behavioural_correlation"}
    ids = [f.id for f in batch.findings if f.category.value in mine]
    assert len(ids) == len(set(ids)), "finding ids must be unique per run"
