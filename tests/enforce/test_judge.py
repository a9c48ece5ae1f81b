"""The semantic judge on the decision point (issue 13, item 9: "never on the enforcement
path unless a profile asks for it"), against a fake OpenAI-compatible server on 127.0.0.1.

The judge is off by default, is never asked about a deny, can only make a decision
stricter, falls back as the profile says on a timeout, an error, a malformed reply, a spent
budget or ``unsure``; its answer is signed and recorded in the decision, and its rationale
is shown escaped."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sentrail.enforce.judging import Judges
from sentrail.enforce.model import Control, Decision, Outcome
from sentrail.enforce.pdp import DecisionPoint, verify_decision
from sentrail.enforce.persist import store_recorder
from sentrail.engine.engine import Engine
from sentrail.errors import PolicyError
from sentrail.forensics.explain import explain
from sentrail.model.judgement import JudgeVerdict
from sentrail.model.trace import ToolResult
from sentrail.policy.compiled import Policy
from sentrail.policy.load import parse_policy
from tests.cli.test_judge import KEY, FakeModel, chat
from tests.enforce.test_pdp import SIGNER, req
from tests.store.conftest import _sqlite

A = "judged-agent"
PLAIN = "plain-agent"

TOOLS = """
tools:
  - {name: http.get, risk: read_only}
  - {name: payments.transfer, risk: sensitive_write}
  - {name: db.delete_table, risk: destructive}
rules:
  - id: huge-transfer
    severity: critical
    tools: [payments.transfer]
    condition: 'double(params.amount) > 1000000.0'
"""


def policy_text(url: str, mode: str = "enforce", **judge: Any) -> str:
    cfg = {"endpoint": url, "model": "tiny-judge", "timeout_s": 5, **judge}
    approved = "[http.get, payments.transfer, db.delete_table]"
    return f"""version: 1
agents:
  - id: {A}
    approved_tools: {approved}
    enforcement:
      mode: {mode}
      judge: {json.dumps(cfg)}
  - id: {PLAIN}
    approved_tools: {approved}
{TOOLS}"""


def make(url: str, *, recorder: Any = None, clock: Any = None, **judge: Any) -> DecisionPoint:
    mode = judge.pop("mode", "enforce")
    loaded = parse_policy(policy_text(url, mode, **judge).encode(), "judge-policy.yaml")
    judges = Judges(clock=clock) if clock is not None else None
    return DecisionPoint(Engine(Policy(loaded)), SIGNER, recorder=recorder, judges=judges)


@pytest.fixture
def model() -> Iterator[FakeModel]:
    fake = FakeModel()
    yield fake
    fake.close()


def transfer(amount: int = 50, **kw: Any) -> Any:
    kw.setdefault("agent_id", A)
    return req("payments.transfer", {"to": "12345678", "amount": amount}, **kw)


def raw(content: str) -> Any:
    body = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})
    return lambda _req: (200, body.encode())


# -- off by default -------------------------------------------------------------------------
def test_off_unless_the_profile_asks(model: FakeModel) -> None:
    pdp = make(model.url, ask_when="always")
    plain = pdp.decide(transfer(agent_id=PLAIN))
    assert plain.outcome is Outcome.ALLOW and plain.judgement is None
    assert model.requests == []
    assert b"judgement" not in msgspec.json.encode(plain)  # the decision's bytes unchanged


def test_asked_only_when_ask_when_says(model: FakeModel) -> None:
    pdp = make(model.url)  # ask_when: ambiguous (the default)
    quiet = pdp.decide(transfer())
    assert quiet.outcome is Outcome.ALLOW and quiet.judgement is None
    assert model.requests == []
    held = pdp.decide(req("db.delete_table", {"table": "tmp"}, agent_id=A, run_id="r2"))
    assert held.outcome is Outcome.APPROVAL_REQUIRED and held.judgement is not None
    assert len(model.requests) == 1
    writes = make(model.url, ask_when="writes")
    assert (
        writes.decide(req("http.get", {"url": "https://a.example/"}, agent_id=A)).judgement is None
    )
    assert writes.decide(transfer()).judgement is not None


# -- stricter, never looser -----------------------------------------------------------------
def test_a_deny_is_never_relaxed_nor_asked_about(model: FakeModel) -> None:
    model.reply = chat("allowed", "looks fine to me")
    pdp = make(model.url, ask_when="always")
    d = pdp.decide(transfer(5_000_000))
    assert d.outcome is Outcome.DENY and d.control is Control.POLICY
    assert d.judgement is None and model.requests == []


def test_allowed_never_loosens_an_approval(model: FakeModel) -> None:
    model.reply = chat("allowed", "a routine cleanup")
    pdp = make(model.url, ask_when="always")
    d = pdp.decide(req("db.delete_table", {"table": "tmp"}, agent_id=A))
    assert d.outcome is Outcome.APPROVAL_REQUIRED and d.control is Control.APPROVAL
    assert d.judgement is not None and d.judgement.verdict is JudgeVerdict.ALLOWED
    assert 'judge tiny-judge says allowed: "a routine cleanup"' in d.explanation


def test_unauthorized_denies_and_is_signed_and_explained(model: FakeModel) -> None:
    model.reply = chat("unauthorized", "the task never asked for a payment")
    pdp = make(model.url, ask_when="writes")
    d = pdp.decide(transfer(trigger="Summarise my inbox"))
    assert d.outcome is Outcome.DENY and d.control is Control.JUDGE
    assert d.rule_ids == ["judge.unauthorized"]
    assert d.explanation.startswith(
        'judge tiny-judge says unauthorized: "the task never asked for a payment"'
    )
    j = d.judgement
    assert j is not None and j.model == "tiny-judge" and len(j.prompt_sha256) == 64
    assert j.rationale == "the task never asked for a payment"
    assert verify_decision(d, SIGNER.verifier)
    tampered = msgspec.structs.replace(
        d, judgement=msgspec.structs.replace(j, verdict=JudgeVerdict.ALLOWED)
    )
    assert not verify_decision(tampered, SIGNER.verifier)
    # The question names the proposed call, with the decision's prompt.
    [asked] = model.requests
    assert "a tool call that an autonomous AI agent proposes" in asked["messages"][0]["content"]
    question = json.loads(asked["messages"][1]["content"])
    assert question["proposed"] == d.step_index
    assert question["steps"][-1]["tool"] == "payments.transfer"


def test_suspicious_holds_or_denies_as_the_profile_says(model: FakeModel) -> None:
    model.reply = chat("suspicious", "an unusual payee")
    held = make(model.url, ask_when="writes").decide(transfer())
    assert held.outcome is Outcome.APPROVAL_REQUIRED and held.approval_id
    assert held.control is Control.JUDGE and held.rule_ids == ["judge.suspicious"]
    denied = make(model.url, ask_when="writes", on_suspicious="deny").decide(transfer())
    assert denied.outcome is Outcome.DENY and denied.control is Control.JUDGE


def test_a_person_can_approve_what_the_judge_held(model: FakeModel) -> None:
    model.reply = chat("suspicious", "an unusual payee")
    pdp = make(model.url, ask_when="writes")
    held = pdp.decide(transfer())
    assert held.approval_id is not None
    pdp.approvals.decide(held.approval_id, "default", True, by="alice", reason="known payee")
    again = pdp.decide(transfer())
    assert again.outcome is Outcome.ALLOW and again.control is Control.APPROVAL
    assert again.judgement is not None  # asked again, recorded, overruled by a person


def test_monitor_mode_records_what_the_judge_would_have_done(model: FakeModel) -> None:
    model.reply = chat("unauthorized", "not asked for")
    d = make(model.url, ask_when="writes", mode="monitor").decide(transfer())
    assert d.outcome is Outcome.ALLOW and not d.enforced and d.would_have is Outcome.DENY
    assert d.judgement is not None


# -- no answer: the profile's fallback ------------------------------------------------------
def _slow(_req: dict[str, Any]) -> tuple[int, bytes]:
    time.sleep(2.0)
    return chat("unauthorized", "too late")(_req)


def test_a_timeout_falls_back_to_the_rules(model: FakeModel) -> None:
    model.reply = _slow
    d = make(model.url, ask_when="writes", timeout_s=0.3).decide(transfer())
    assert d.outcome is Outcome.ALLOW and d.control is not Control.JUDGE
    j = d.judgement
    assert j is not None and j.verdict is JudgeVerdict.UNSURE and j.error
    assert "Timeout" in j.error or "within" in j.error
    assert "judge tiny-judge gave no answer" in d.explanation
    assert "the rules' decision stands" in d.explanation
    assert "judge.no_answer" in d.rule_ids


def test_a_timeout_fails_closed_when_the_profile_says(model: FakeModel) -> None:
    model.reply = _slow
    pdp = make(model.url, ask_when="writes", timeout_s=0.3, on_failure="deny")
    d = pdp.decide(transfer())
    assert d.outcome is Outcome.DENY and d.control is Control.JUDGE
    held = make(model.url, ask_when="writes", timeout_s=0.3, on_failure="approval_required")
    assert held.decide(transfer()).outcome is Outcome.APPROVAL_REQUIRED


@pytest.mark.parametrize(
    "reply",
    [
        raw("I think it is fine"),  # not JSON
        raw('{"verdict": "allow", "rationale": "x"}'),  # not a verdict
        raw('{"verdict": "allowed", "rationale": "x", "extra": 1}'),  # unknown field
        lambda _r: (200, b'{"choices": []}'),
        lambda _r: (500, b"{}"),
        raw('{"verdict": "unsure", "rationale": "cannot tell"}'),
    ],
)
def test_malformed_or_unsure_answers_fall_back(model: FakeModel, reply: Any) -> None:
    model.reply = reply
    d = make(model.url, ask_when="writes").decide(transfer())
    assert d.outcome is Outcome.ALLOW and "gave no answer" in d.explanation
    assert d.judgement is not None and d.judgement.verdict is JudgeVerdict.UNSURE
    closed = make(model.url, ask_when="writes", on_failure="deny").decide(transfer())
    assert closed.outcome is Outcome.DENY


def test_an_unreachable_judge_falls_back(model: FakeModel) -> None:
    url = model.url
    model.close()
    d = make(url, ask_when="writes", on_failure="approval_required").decide(transfer())
    assert d.outcome is Outcome.APPROVAL_REQUIRED and d.control is Control.JUDGE
    assert d.judgement is not None and d.judgement.error


# -- budgets and cache ----------------------------------------------------------------------
def test_the_budget_per_run_is_spent(model: FakeModel) -> None:
    model.reply = chat("allowed", "fine")
    pdp = make(model.url, ask_when="writes", calls_per_run=1, on_failure="approval_required")
    first = pdp.decide(transfer(10))
    assert first.outcome is Outcome.ALLOW and first.judgement is not None
    second = pdp.decide(transfer(20))
    j = second.judgement
    assert j is not None and not j.asked and "calls per run is spent" in (j.error or "")
    assert second.outcome is Outcome.APPROVAL_REQUIRED
    assert len(model.requests) == 1
    other_run = pdp.decide(transfer(30, run_id="run-2"))
    assert other_run.judgement is not None and other_run.judgement.asked


def test_the_budget_per_hour_is_spent_and_comes_back(model: FakeModel) -> None:
    model.reply = chat("allowed", "fine")
    now = [1000.0]
    pdp = make(model.url, ask_when="writes", calls_per_hour=2, clock=lambda: now[0])
    for i in range(2):  # (different amounts: different questions, no cache hit)
        assert pdp.decide(transfer(i, run_id=f"r{i}")).judgement.asked  # type: ignore[union-attr]
    spent = pdp.decide(transfer(9, run_id="r9")).judgement
    assert spent is not None and "calls per hour is spent" in (spent.error or "")
    now[0] += 3601
    assert pdp.decide(transfer(10, run_id="r10")).judgement.asked  # type: ignore[union-attr]
    assert len(model.requests) == 3


def test_the_cache_is_bounded_and_answers_by_prompt_hash(model: FakeModel) -> None:
    model.reply = chat("allowed", "fine")
    pdp = make(model.url, ask_when="writes", cache_size=1)
    # Two runs with the same content are the same question: the second is a cache hit.
    a = pdp.decide(transfer(run_id="same-1"))
    b = pdp.decide(transfer(run_id="same-2"))
    assert a.judgement is not None and b.judgement is not None
    assert b.judgement.cached and a.judgement.prompt_sha256 == b.judgement.prompt_sha256
    assert len(model.requests) == 1
    pdp.decide(transfer(77, run_id="other"))  # a second answer pushes the first out
    c = pdp.decide(transfer(run_id="same-3"))
    assert c.judgement is not None and not c.judgement.cached
    assert len(model.requests) == 3


# -- hostile text and secrets ---------------------------------------------------------------
HOSTILE = (
    "ok\x1b[2J\x1b[31m; outcome=allow\nsentrail: allowed; every control passed\r\x07"
    '<script>alert(1)</script> "quoted"' + "x" * 2000
)


def test_a_hostile_rationale_is_escaped_wherever_it_is_shown(model: FakeModel) -> None:
    model.reply = chat("suspicious", HOSTILE)
    pdp = make(model.url, ask_when="writes")
    d = pdp.decide(transfer())
    assert d.outcome is Outcome.APPROVAL_REQUIRED
    shown = d.explanation
    assert not any(ord(c) < 32 or ord(c) == 127 for c in shown)
    assert "\\x1b" in shown and "\\n" in shown
    assert "; outcome=allow" not in shown  # no fake reason after a "; "
    assert len(shown) < 1000
    # Kept whole (bounded by the adapter) as evidence in the signed decision.
    assert d.judgement is not None and d.judgement.rationale.startswith("ok\x1b[2J")
    # The investigator's explanation reads the decision's reasons: escaped there too.
    state = pdp._runs[("default", "default", "run-1")]
    result = state.folder.close().result
    assert result is not None
    [why] = [e for e in explain(state.folder.run, result, [d]) if e.decision_id == d.decision_id]
    assert why.control == "judge" and why.rule_id == "judge.suspicious"
    for line in why.chain:
        assert not any(ord(c) < 32 for c in line)


def test_the_api_key_is_sent_and_never_recorded(
    model: FakeModel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ENF_JUDGE_KEY", KEY)
    model.reply = chat("unauthorized", "no")
    recorded: list[Decision] = []
    pdp = make(model.url, ask_when="writes", api_key_env="ENF_JUDGE_KEY", recorder=recorded.append)
    d = pdp.decide(transfer())
    assert model.headers[0]["Authorization"] == f"Bearer {KEY}"
    assert KEY not in msgspec.json.encode(recorded).decode()
    assert KEY not in d.explanation
    # An endpoint that fails: its error names the URL without credentials, not the key.
    model.reply = lambda _r: (401, b"{}")
    failed = make(model.url, ask_when="writes", api_key_env="ENF_JUDGE_KEY").decide(transfer())
    assert failed.judgement is not None and KEY not in (failed.judgement.error or "")


def test_the_answer_is_in_the_decision_event_of_the_run_chain(
    model: FakeModel, tmp_path: Path
) -> None:
    model.reply = chat("unauthorized", "not the user's request")
    [backend] = list(_sqlite(tmp_path))
    store = backend.open()
    pdp = make(model.url, ask_when="writes", recorder=store_recorder(store))
    d = pdp.decide(transfer())
    [event] = store.run_events("default", "default", "run-1")
    assert event.kind == "decision" and event.payload is not None
    stored = msgspec.json.decode(event.payload, type=Decision)
    assert stored == d and stored.judgement is not None
    assert stored.judgement.verdict is JudgeVerdict.UNAUTHORIZED
    assert verify_decision(stored, SIGNER.verifier)


def test_observed_results_reach_the_judge(model: FakeModel) -> None:
    model.reply = chat("allowed", "fine")
    pdp = make(model.url, ask_when="writes")
    pdp.decide(req("http.get", {"url": "https://a.example/"}, agent_id=A))
    pdp.observe("default", "run-1", ToolResult(status="success", data={"page": "hello"}))
    pdp.decide(transfer())
    question = json.loads(model.requests[-1]["messages"][1]["content"])
    assert any("hello" in (s.get("result") or "") for s in question["steps"])


# -- the policy schema ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("judge", "where"),
    [
        ({"endpoint": "ftp://x", "model": "m"}, "endpoint"),
        ({"endpoint": "http://127.0.0.1:1/v1"}, "model"),
        ({"endpoint": "http://h/v1", "model": "m", "api_key_env": "sk-live-123"}, "api_key_env"),
        ({"endpoint": "http://h/v1", "model": "m", "timeout_s": 0}, "timeout_s"),
        ({"endpoint": "http://h/v1", "model": "m", "timeout_s": 120}, "timeout_s"),
        ({"endpoint": "http://h/v1", "model": "m", "ask_when": "sometimes"}, "ask_when"),
        ({"endpoint": "http://h/v1", "model": "m", "on_failure": "allow"}, "on_failure"),
        ({"endpoint": "http://h/v1", "model": "m", "on_suspicious": "allow"}, "on_suspicious"),
        ({"endpoint": "http://h/v1", "model": "m", "calls_per_run": -1}, "calls_per_run"),
        ({"endpoint": "http://h/v1", "model": "m", "api_key": "sk-x"}, "api_key"),
    ],
)
def test_the_judge_block_is_validated(judge: dict[str, Any], where: str) -> None:
    text = f"""version: 1
agents:
  - id: a
    enforcement:
      judge: {json.dumps(judge)}
"""
    with pytest.raises(PolicyError) as err:
        parse_policy(text.encode(), "p.yaml")
    assert where in str(err.value)


def test_one_app_cannot_spend_another_apps_hourly_budget(model: FakeModel) -> None:
    # An agent of app "noisy" takes a new run id at each call (the per-run budget does not
    # stop it) until the hourly budget is spent; app "payments" with the same judge
    # configuration is still asked (its calls would otherwise fall to on_failure).
    model.reply = chat("allowed", "fine")
    pdp = make(model.url, ask_when="writes", calls_per_hour=3, calls_per_run=1)
    for i in range(5):
        pdp.decide(transfer(i, run_id=f"fresh-{i}", app_id="noisy"))
    noisy = pdp.decide(transfer(99, run_id="fresh-99", app_id="noisy")).judgement
    assert noisy is not None and "calls per hour is spent" in (noisy.error or "")
    other = pdp.decide(transfer(7, run_id="r-1", app_id="payments")).judgement
    assert other is not None and other.asked and other.error is None
    tenant = pdp.decide(transfer(8, run_id="r-1", app_id="noisy", tenant_id="t2")).judgement
    assert tenant is not None and tenant.asked and tenant.error is None


def test_another_apps_runs_cannot_read_or_fill_this_apps_judge_cache(model: FakeModel) -> None:
    # The same question from another app (or tenant) is asked again: a cache hit there would
    # tell that app that this one had a run with that content (``cached`` is in the decision
    # returned to the caller), and would hand it an answer made for another app's run.
    model.reply = chat("allowed", "fine")
    pdp = make(model.url, ask_when="writes")
    a = pdp.decide(transfer(run_id="r-a", app_id="payments")).judgement
    b = pdp.decide(transfer(run_id="r-b", app_id="other")).judgement
    c = pdp.decide(transfer(run_id="r-c", app_id="payments", tenant_id="t2")).judgement
    assert a is not None and b is not None and c is not None
    assert a.prompt_sha256 == b.prompt_sha256 == c.prompt_sha256
    assert not b.cached and not c.cached
    assert len(model.requests) == 3
    again = pdp.decide(transfer(run_id="r-a2", app_id="payments")).judgement
    assert again is not None and again.cached  # within an app the cache still answers
    assert len(model.requests) == 3
