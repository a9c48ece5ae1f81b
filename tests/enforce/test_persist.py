"""Enforcement state in the store (both backends): approvals, containment, decisions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sentrail.cli.app import app
from sentrail.enforce.model import Outcome
from sentrail.enforce.pdp import DecisionPoint
from sentrail.enforce.persist import StoreApprovals, StoreContainment, store_recorder
from sentrail.enforce.release import release_agent, release_problems
from sentrail.enforce.state import EnforcementError
from sentrail.engine.engine import Engine
from sentrail.model.decode import decode_run
from sentrail.model.trace import Attestation
from sentrail.policy.compiled import Policy
from sentrail.policy.load import load_policy
from sentrail.store.log_verify import verify_log
from tests.enforce.test_pdp import POLICY, SIGNER, req
from tests.store.conftest import Backend

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "traces"


def make(store: object) -> DecisionPoint:
    return DecisionPoint(
        Engine(Policy(load_policy(str(POLICY)))),
        SIGNER,
        recorder=store_recorder(store),  # type: ignore[arg-type]
        containment=StoreContainment(store, refresh=0),  # type: ignore[arg-type]
        approvals=StoreApprovals(store),  # type: ignore[arg-type]
    )


def test_decisions_are_in_the_run_chain_and_approvals_shared(backend: Backend) -> None:
    store = backend.open()
    pdp = make(store)
    params = {"table": "tmp"}
    held = pdp.decide(req("db.delete_table", params, environment="staging"))
    assert held.outcome is Outcome.APPROVAL_REQUIRED and held.approval_id
    # Another process (a CLI) sees and decides it.
    other = StoreApprovals(store)
    assert [a.approval_id for a in other.pending("default")] == [held.approval_id]
    other.decide(held.approval_id, "default", True, by="alice", reason="ok")
    with pytest.raises(EnforcementError):
        other.decide(held.approval_id, "default", False, by="bob", reason="late")
    done = pdp.decide(
        req("db.delete_table", params, environment="staging", approval_id=held.approval_id)
    )
    assert done.outcome is Outcome.ALLOW
    again = pdp.decide(
        req("db.delete_table", params, environment="staging", approval_id=held.approval_id)
    )
    assert again.outcome is Outcome.APPROVAL_REQUIRED  # used once
    events = store.run_events("default", "default", "run-1")
    assert [e.kind for e in events] == ["decision"] * 3
    assert json.loads(events[1].payload or b"{}")["outcome"] == "allow"
    assert verify_log(store, "default", [SIGNER.verifier]).problem is None
    store.close()


def test_containment_is_durable_and_visible_to_other_processes(backend: Backend) -> None:
    store = backend.open()
    pdp = make(store)
    StoreContainment(store).quarantine("default", "payments-agent-1", by="soc", reason="INC-1")
    d = pdp.decide(req("email.send", {"to": "x@corp.example.com"}, permissions=["email:send"]))
    assert d.outcome is Outcome.DENY and "quarantine" in d.explanation
    fresh = StoreContainment(store)
    assert fresh.is_quarantined("default", "payments-agent-1") is not None
    assert [a.kind for a in fresh.log] == ["quarantine"]
    assert fresh.log[0].by == "soc"
    store.close()


def test_guarded_release(backend: Backend) -> None:
    store = backend.open()
    engine = Engine(Policy(load_policy(str(POLICY))))
    c = StoreContainment(store)
    agent = "payments-agent-1"
    c.quarantine("default", agent, by="soc", reason="INC-2")
    canary = decode_run(
        json.dumps(
            {
                "run_id": "canary-1",
                "agent_id": agent,
                "started_at": "2026-11-25T10:00:00Z",
                "completed_at": "2026-11-25T10:00:05Z",
                "status": "completed",
                "permissions_summary": {"granted": ["db:read"]},
                "steps": [
                    {
                        "step_index": 0,
                        "action": "check balance",
                        "reasoning": "canary: read-only health check",
                        "tool_call": {"tool": "db.query", "parameters": {"sql": "select 1"}},
                        "result": {"status": "success", "data": {"rows": 1}},
                        "permissions_used": ["db:read"],
                        "timestamp": "2026-11-25T10:00:01Z",
                        "environment": "staging",
                    }
                ],
            }
        ).encode()
    )
    good = Attestation(image_digest="sha256:1", model_id="m")
    policy = engine.policy.sha256 or ""
    assert release_problems(engine, agent, None, policy, canary)  # no attestation
    assert release_problems(engine, agent, good, "old", canary)  # stale policy
    bad_canary = decode_run((EXAMPLES / "prod-delete.json").read_bytes())
    bad_canary.agent_id = agent
    with pytest.raises(EnforcementError, match="canary"):
        release_agent(
            c,
            engine,
            "default",
            agent,
            by="soc",
            reason="x",
            attestation=good,
            policy_version=policy,
            canary=bad_canary,
        )
    assert c.is_quarantined("default", agent) is not None
    assert release_agent(
        c,
        engine,
        "default",
        agent,
        by="soc",
        reason="clean",
        attestation=good,
        policy_version=policy,
        canary=canary,
    )
    assert StoreContainment(store).is_quarantined("default", agent) is None
    store.close()


def test_cli_approvals_and_containment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTRAIL_HOME", str(tmp_path / "home"))
    from sentrail.cli.store import _open

    store = _open(None)
    pdp = make(store)
    held = pdp.decide(req("db.delete_table", {"table": "t"}, environment="staging"))
    store.close()
    run = CliRunner().invoke
    listed = run(app, ["approvals", "list"])
    assert listed.exit_code == 0 and held.approval_id in listed.output
    ok = run(
        app, ["approvals", "approve", str(held.approval_id), "--tenant", "default", "--by", "alice"]
    )
    assert ok.exit_code == 0 and "approved by alice" in ok.output
    twice = run(
        app, ["approvals", "deny", str(held.approval_id), "--tenant", "default", "--by", "bob"]
    )
    assert twice.exit_code == 2 and "already approved" in twice.output
    q = run(
        app, ["contain", "quarantine", "bot-1", "--tenant", "t", "--by", "soc", "--reason", "INC-3"]
    )
    assert q.exit_code == 0 and "done" in q.output
    q2 = run(
        app, ["contain", "quarantine", "bot-1", "--tenant", "t", "--by", "soc", "--reason", "INC-3"]
    )
    assert "already so" in q2.output
    d = run(
        app,
        ["contain", "disable-tool", "email.*", "--tenant", "t", "--by", "soc", "--reason", "spam"],
    )
    assert d.exit_code == 0
    log = run(app, ["contain", "list", "--tenant", "t"])
    header, *rows = log.output.splitlines()
    assert header.split() == ["WHEN", "TENANT", "ACTION", "TARGET", "BY", "REASON"]
    assert [r.split()[2] for r in rows] == ["quarantine", "disable_tool"]
    assert all(" soc " in r for r in rows)
    nobody = run(
        app, ["contain", "quarantine", "bot-2", "--tenant", "t", "--by", " ", "--reason", " "]
    )
    assert nobody.exit_code == 2
