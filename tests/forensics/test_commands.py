"""The forensics commands end to end in a temporary SENTRAIL_HOME: runs, findings, graph,
and the evidence summary inside the signed bundle."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pydot
import pytest
from typer.testing import CliRunner

from sentrail.cli.app import app
from sentrail.store import open_store
from tests.conftest import EXAMPLES

runner = CliRunner()
RUN = "run-0f6c2a88-b514"


def run(*args: str) -> Any:
    return runner.invoke(app, list(args))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SENTRAIL_HOME", str(tmp_path / "home"))
    traces = tmp_path / "traces"
    traces.mkdir()
    for name in ("injected-transfer.json", "prod-delete.json", "triage-restart.json"):
        (traces / name).write_bytes((EXAMPLES / "traces" / name).read_bytes())
    hostile = json.loads((EXAMPLES / "traces" / "clean-support-lookup.json").read_bytes())
    hostile["run_id"], hostile["agent_id"] = "run-hostile", "evil\x1b[2J\u202eagent"
    (traces / "hostile.json").write_text(json.dumps(hostile))
    r = run("ingest", str(traces), "--tenant", "acme", "--app", "pay")
    assert r.exit_code == 0, r.output
    return tmp_path / "home"


def test_runs_list_filters_like_the_api_and_prints_json_for_scripts(home: Path) -> None:
    r = run("runs", "list", "--tenant", "acme", "--verdict", "unauthorized", "--format", "json")
    assert r.exit_code == 0, r.output
    ids = {i["run_id"] for i in json.loads(r.output)["items"]}
    assert ids == {RUN, "run-e4b70d19-8c2f"}
    r = run("runs", "list", "--tenant", "acme", "--agent", "finance-*", "--format", "json")
    assert [i["run_id"] for i in json.loads(r.output)["items"]] == [RUN]
    r = run("runs", "list", "--tenant", "other", "--format", "json")
    assert json.loads(r.output)["items"] == []
    r = run("runs", "list", "--tenant", "acme", "--since", "yesterday-ish")
    assert r.exit_code == 2


def test_text_output_escapes_what_a_trace_says(home: Path) -> None:
    r = run("runs", "list", "--tenant", "acme")
    assert r.exit_code == 0
    assert "\x1b" not in r.output and "\u202e" not in r.output
    assert "evil\\x1b[2J\\u202eagent" in r.output


def test_json_output_escapes_what_a_terminal_would_act_on(home: Path) -> None:
    """JSON is printed too: C1 controls (U+009B CSI), bidi overrides and zero-width
    characters are written as \\uXXXX escapes, as `trace analyze --format json` does."""
    hostile = json.loads((EXAMPLES / "traces" / "clean-support-lookup.json").read_bytes())
    hostile["run_id"] = "run-c1\u009b31m\u202e\u200b"
    hostile["agent_id"] = "agent\u009b2J\u2066"
    path = home.parent / "c1.json"
    path.write_text(json.dumps(hostile))
    assert run("ingest", str(path), "--tenant", "acme", "--app", "pay").exit_code == 0
    outputs = {
        "runs list": run("runs", "list", "--tenant", "acme", "--format", "json"),
        "runs show": run("runs", "show", hostile["run_id"], "--tenant", "acme", "--format", "json"),
        "findings list": run("findings", "list", "--tenant", "acme", "--format", "json"),
        "graph": run("graph", "--tenant", "acme", "--app", "pay", "--run", hostile["run_id"]),
    }
    for name, r in outputs.items():
        assert r.exit_code == 0, (name, r.output)
        for raw in ("\u009b", "\u202e", "\u200b", "\u2066"):
            assert raw not in r.output, (name, raw)
    listed = json.loads(outputs["runs list"].output)["items"]
    assert hostile["run_id"] in {i["run_id"] for i in listed}  # a JSON reader gets it back


def test_runs_show_says_why_each_step_was_flagged(home: Path) -> None:
    r = run("runs", "show", RUN, "--tenant", "acme")
    assert r.exit_code == 0, r.output
    assert (
        "because parameter to_account = 'DE44500105175407324931' first appeared in step 0"
        in r.output
    )
    assert run("runs", "show", RUN, "--tenant", "other").exit_code == 2
    data = json.loads(run("runs", "show", RUN, "--tenant", "acme", "--format", "json").output)
    assert data["run"]["verdict"] == "unauthorized" and data["explanations"]


def test_findings_list_resolve_and_reopen_are_audited(home: Path) -> None:
    r = run("findings", "list", "--tenant", "acme", "--run", RUN, "--format", "json")
    items = json.loads(r.output)["items"]
    assert items and all(i["because"] for i in items)
    fid = items[0]["id"]
    assert (
        run(
            "findings", "resolve", fid, "--by", "alice", "--comment", "known", "--tenant", "acme"
        ).exit_code
        == 0
    )
    r = run("findings", "list", "--tenant", "acme", "--resolved", "--format", "json")
    assert [i["id"] for i in json.loads(r.output)["items"]] == [fid]
    assert (
        run(
            "findings", "reopen", fid, "--by", "bob", "--comment", "again", "--tenant", "acme"
        ).exit_code
        == 0
    )
    r = run("findings", "list", "--tenant", "acme", "--resolved", "--format", "json")
    assert json.loads(r.output)["items"] == []
    assert (
        run(
            "findings", "resolve", "F-nope", "--by", "a", "--comment", "c", "--tenant", "acme"
        ).exit_code
        == 2
    )
    # Each change is a triage event in the run's chain (as the API's), and the log verifies.
    store = open_store(f"sqlite:///{home / 'sentrail.db'}")
    try:
        triage = [e for e in store.run_events("acme", "pay", RUN) if e.kind == "triage"]
        assert [json.loads(e.payload or b"")["by"] for e in triage] == ["cli:alice", "cli:bob"]
    finally:
        store.close()
    assert run("log", "verify", "--tenant", "acme").exit_code == 0


def test_graph_of_a_run_and_of_a_value_in_json_and_dot(home: Path) -> None:
    r = run("graph", "--run", RUN, "--tenant", "acme")
    assert r.exit_code == 0, r.output
    g = json.loads(r.output)
    assert g["format"] == "sentrail.graph/1"
    assert {
        "source": "result:0",
        "target": "step:2",
        "kind": "data_flow",
        "label": "params.to_account",
    } in g["edges"]
    r = run(
        "graph", "--value", "DE44 5001 0517 5407 3249 31", "--since", "3650d", "--tenant", "acme"
    )
    runs = [n for n in json.loads(r.output)["nodes"] if n["kind"] == "run"]
    assert [n["attrs"]["run_id"] for n in runs] == [RUN]
    r = run("graph", "--value", "DE44 5001 0517 5407 3249 31", "--tenant", "other")
    assert not [n for n in json.loads(r.output)["nodes"] if n["kind"] == "run"]
    r = run("graph", "--run", RUN, "--tenant", "acme", "--format", "dot")
    assert pydot.graph_from_dot_data(r.output)
    assert run("graph", "--tenant", "acme").exit_code == 2
    assert run("graph", "--run", "nope", "--tenant", "acme").exit_code == 2


def test_the_evidence_summary_is_signed_inside_the_bundle_and_a_changed_one_fails(
    home: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "b.zip"
    r = run("evidence", "export", "--run", RUN, "--tenant", "acme", "-o", str(bundle))
    assert r.exit_code == 0, r.output
    assert run("evidence", "verify", str(bundle)).exit_code == 0
    with zipfile.ZipFile(bundle) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    summary = json.loads(members["summary.json"])
    assert summary["trace_id"] == RUN
    assert summary["provenance"]["agent_id"] == "finance-ap-assistant"
    assert summary["provenance"]["tenant_id"] == "acme-retail"
    assert summary["governance_result"]["outcome"] == "unauthorized"
    assert any("to_account" in e["because"] for e in summary["governance_result"]["explanation"])
    assert summary["policy_result"]["status"] == "not_evaluated"  # ingested without a bundle
    assert "replay_diff" not in summary["parts"]
    assert "summary.json" in summary["parts"]["bundle"]["members"]
    summary["governance_result"]["outcome"] = "allowed"
    members["summary.json"] = json.dumps(summary).encode()
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(forged, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    r = run("evidence", "verify", str(forged))
    assert r.exit_code == 1 and "summary.json" in r.output and "SHA-256" in r.output


def test_runs_show_explains_the_decisions_of_a_run_that_has_no_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway run (mcp-proxy) stores the decision point's decisions and no trace: `runs
    show` says why a call was held or blocked, and does not claim the payloads were erased."""
    from sentrail.enforce.model import Outcome
    from sentrail.enforce.pdp import DecisionPoint
    from sentrail.enforce.persist import StoreApprovals, store_recorder
    from sentrail.engine.engine import Engine
    from sentrail.policy.compiled import Policy
    from sentrail.policy.load import load_policy
    from tests.enforce.test_pdp import POLICY, SIGNER, req

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("SENTRAIL_HOME", str(home))
    store = open_store(f"sqlite:///{home / 'sentrail.db'}")
    try:
        store.migrate()
        pdp = DecisionPoint(
            Engine(Policy(load_policy(str(POLICY)))),
            SIGNER,
            recorder=store_recorder(store),
            approvals=StoreApprovals(store),
        )
        held = pdp.decide(req("db.delete_table", {"table": "tmp"}, environment="staging"))
        assert held.outcome is Outcome.APPROVAL_REQUIRED
    finally:
        store.close()
    r = run("runs", "show", "run-1", "--tenant", "default")
    assert r.exit_code == 0, r.output
    assert "erased" not in r.output
    assert "Trace: none stored (the decision point recorded its decisions only)" in r.output
    assert "nothing was blocked, held or flagged" not in r.output
    assert "  [held] step 0 " in r.output
    assert f"Decision {held.decision_id}: approval_required by approval" in r.output
