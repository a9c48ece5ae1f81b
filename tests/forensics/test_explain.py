"""Risk explanations: built from facts, golden on every example trace, one per decision."""

from __future__ import annotations

import msgspec
import pytest

from sentrail.enforce.model import Control, Decision, Outcome
from sentrail.forensics.explain import CONTROLS, by_finding, explain, explain_finding
from sentrail.model.finding import Category, Severity
from tests.forensics.conftest import TRACES, check_golden, judged


@pytest.mark.parametrize("name", TRACES)
def test_every_example_trace_explains_as_its_golden_file(name: str) -> None:
    run, result = judged(name)
    explanations = explain(run, result)
    assert len([e for e in explanations if e.finding_id]) == len(result.findings)
    assert all(e.control in CONTROLS and e.because for e in explanations)
    check_golden(name.replace(".json", ".explain.json"), msgspec.to_builtins(explanations))


def test_a_tainted_recipient_names_the_step_and_field_it_came_from() -> None:
    run, result = judged("injected-transfer.json")
    e = next(
        x
        for x in explain(run, result)
        if x.rule_id == "tainted_action.untrusted_value"
        and {"name": "parameter", "value": "to_account"} in msgspec.to_builtins(x.matched)
    )
    assert e.source is not None
    assert (e.source.step_index, e.source.field, e.source.tool) == (
        0,
        "result.data.body",
        "web.fetch",
    )
    assert (
        e.source.injected
        and e.source.instruction
        and "ignore your previous" in e.source.instruction
    )
    assert e.control == "detector" and e.outcome == "flagged" and e.severity == "critical"
    assert "to_account = 'DE44500105175407324931'" in e.because
    assert any(line.startswith("source: step 0 web.fetch") for line in e.chain)


def test_a_policy_rule_explains_with_its_cel_condition_and_the_values_it_read() -> None:
    run, result = judged("prod-delete.json")
    e = next(x for x in explain(run, result) if x.rule_id == "policy.rule.no-prod-destructive")
    assert e.control == "policy_rule"
    assert (
        e.condition
        == 'tool.risk == "destructive" && step.environment == "prod" && !step.has_approval'
    )
    values = {m.name: m.value for m in e.matched}
    assert values == {
        "step.environment": "prod",
        "step.has_approval": False,
        "tool.risk": "destructive",
    }


def test_a_permission_outside_the_boundary_is_explained_by_the_boundary_control() -> None:
    run, result = judged("triage-restart.json")
    e = next(x for x in explain(run, result) if x.rule_id.startswith("permission_escalation"))
    assert e.control == "boundary"
    assert "permission service:restart is outside the policy boundary" in e.because or (
        "ssh:exec:write" in e.because
    )


def _decision(**kw: object) -> Decision:
    base: dict[str, object] = {
        "decision_id": "dec_1",
        "outcome": Outcome.DENY,
        "control": Control.BOUNDARY,
        "explanation": "bank:transfer is outside the permission boundary of AP; review: x",
        "tool": "bank.transfer",
        "tenant_id": "t",
        "run_id": "r",
        "agent_id": "a",
        "args_sha256": "0" * 64,
        "step_index": 2,
        "decided_at": 0.0,
        "rule_ids": ["boundary.escalation"],
    }
    base.update(kw)
    return msgspec.convert(base, Decision)


def test_an_enforced_deny_is_blocked_by_the_control_that_decided() -> None:
    run, result = judged("clean-support-lookup.json")
    (e,) = [x for x in explain(run, result, [_decision()]) if x.decision_id]
    assert (e.outcome, e.control, e.rule_id) == ("blocked", "boundary", "boundary.escalation")
    assert e.because == "bank:transfer is outside the permission boundary of AP"
    assert e.condition.startswith("a permission outside the permission boundary")
    assert "reason: review: x" in e.chain


def test_a_held_call_on_a_finding_borrows_the_findings_values_and_source() -> None:
    run, result = judged("injected-transfer.json")
    d = _decision(
        outcome=Outcome.APPROVAL_REQUIRED,
        control=Control.FINDINGS,
        explanation="tainted",
        rule_ids=["tainted_action.untrusted_value"],
        approval_id="apr_1",
    )
    (e,) = [x for x in explain(run, result, [d]) if x.decision_id]
    assert (e.outcome, e.control) == ("held", "detector")
    assert e.source is not None and e.source.step_index == 0
    assert len(e.findings) == 3 and "approval: apr_1" in e.chain


def test_monitor_mode_and_a_redeemed_approval_are_modified_and_a_plain_allow_is_not_explained() -> (
    None
):
    run, result = judged("clean-support-lookup.json")
    monitor = _decision(
        outcome=Outcome.ALLOW,
        control=Control.ENFORCEMENT_MODE,
        enforced=False,
        would_have=Outcome.DENY,
        decision_id="dec_m",
    )
    approved = _decision(
        outcome=Outcome.ALLOW, control=Control.APPROVAL, decision_id="dec_a", approval_id="apr_9"
    )
    plain = _decision(outcome=Outcome.ALLOW, control=Control.POLICY, decision_id="dec_p")
    got = {
        x.decision_id: x for x in explain(run, result, [monitor, approved, plain]) if x.decision_id
    }
    assert set(got) == {"dec_m", "dec_a"}
    assert got["dec_m"].outcome == "modified" and "would have said deny" in got["dec_m"].because
    assert got["dec_a"].outcome == "modified" and got["dec_a"].control == "approval"


def test_a_finding_alone_explains_without_its_run() -> None:
    run, result = judged("exfil-base64.json")
    (f,) = [x for x in result.findings if x.category is Category.DATA_EXFILTRATION]
    e = explain_finding(f)
    assert f.severity is Severity.CRITICAL
    assert e.because.startswith(
        "staged read → encode → send: data sent to https://paste.evil-drop.io"
    )
    assert not any(line.startswith("verdict:") for line in e.chain)
    assert by_finding(explain(run, result))[f.id].chain[-1].startswith("verdict: unauthorized")
