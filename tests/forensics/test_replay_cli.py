"""``sentrail replay`` end to end in a temporary SENTRAIL_HOME: a stored run, an audit file,
the signed evidence package with the diff inside, the fleet what-if, and bad input."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sentrail.cli.app import app
from tests.conftest import EXAMPLES

runner = CliRunner()
POLICY = EXAMPLES / "policy.yaml"
CHANGED = Path(__file__).parent / "replay-policy.yaml"
EVENTS = EXAMPLES / "events" / "triage-restart.ndjson"
TRANSFER, RESTART = "run-0f6c2a88-b514", "run-a4f8c312-9e7b"


def run(*args: str | Path) -> Any:
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SENTRAIL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SENTRAIL_DATABASE", raising=False)
    traces = tmp_path / "traces"
    traces.mkdir()
    for name in ("injected-transfer.json", "triage-restart.json", "prod-delete.json"):
        shutil.copy(EXAMPLES / "traces" / name, traces / name)
    hostile = json.loads((EXAMPLES / "traces" / "clean-support-lookup.json").read_bytes())
    hostile["run_id"], hostile["agent_id"] = "run-hostile", "evil\x1b[2J\u202eagent"
    (traces / "hostile.json").write_text(json.dumps(hostile))
    r = run("ingest", traces, "--tenant", "acme", "--app", "pay", "--policy", POLICY)
    assert r.exit_code == 0, r.output
    return tmp_path / "home"


def test_replay_under_its_own_policy_changes_nothing(home: Path) -> None:
    r = run("replay", "--run", TRANSFER, "--tenant", "acme", "--diff")
    assert r.exit_code == 0, r.output
    assert "No change" in r.output and "stored: policy" in r.output
    r = run("replay", "--run", TRANSFER, "--tenant", "acme", "--diff", "--format", "json")
    doc = json.loads(r.stdout)
    assert doc["format"] == "sentrail.replay-diff/1" and doc["changed"] is False
    assert doc["before"]["policy_sha256"] == doc["after"]["policy_sha256"] is not None


def test_replay_under_a_changed_bundle_names_each_change(home: Path) -> None:
    r = run("replay", "--run", RESTART, "--tenant", "acme", "--policy", CHANGED, "--diff")
    assert r.exit_code == 0, r.output
    assert "Verdict: suspicious -> unauthorized" in r.output
    assert "decision approval_required -> deny" in r.output
    assert "+ [critical] policy.rule.no-prod-restart" in r.output
    # without --diff: the replayed report, and how it compares
    r = run("replay", "--run", RESTART, "--tenant", "acme", "--policy", CHANGED)
    assert r.exit_code == 0, r.output
    assert "no-prod-restart" in r.output and "stored judgement: suspicious" in r.output
    r = run("replay", "--run", RESTART, "--tenant", "acme", "--policy", CHANGED, "-f", "json")
    doc = json.loads(r.stdout)
    assert doc["result"]["verdict"] == "unauthorized" and doc["before"]["verdict"] == "suspicious"


def test_hostile_strings_are_escaped(home: Path) -> None:
    r = run("replay", "--run", "run-hostile", "--tenant", "acme", "--policy", CHANGED)
    assert r.exit_code == 0, r.output
    assert "\x1b" not in r.output and "\u202e" not in r.output
    r = run("replay", "--run", "run-hostile", "--tenant", "acme", "--diff")
    assert "\x1b" not in r.output and "\\x1b[2J" in r.output


def test_evidence_package_carries_the_diff_signed(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = run(
        "replay", "--run", RESTART, "--tenant", "acme", "--policy", CHANGED, "--diff",
        "--evidence", out,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    bundle = out / "evidence.zip"
    with zipfile.ZipFile(bundle) as zf:
        inside = json.loads(zf.read("replay-diff.json"))
        summary = json.loads(zf.read("summary.json"))
    assert inside == json.loads((out / "replay-diff.json").read_bytes())
    part = summary["parts"]["replay_diff"]
    assert part["member"] == "replay-diff.json" and part["changed"] is True
    assert part["after"]["verdict"] == "unauthorized"
    assert "replay-diff.json" in summary["parts"]["bundle"]["members"]
    assert run("evidence", "verify", bundle).exit_code == 0
    # a changed diff inside the bundle fails verification like any other member
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "replay-diff.json":
                data = data.replace(b'"unauthorized"', b'"allowed"')
            dst.writestr(info, data)
    r = run("evidence", "verify", tampered)
    assert r.exit_code == 1 and "FAIL" in r.output


def test_plain_evidence_export_still_has_no_replay_part(home: Path, tmp_path: Path) -> None:
    r = run("evidence", "export", "--run", TRANSFER, "--tenant", "acme", "-o", tmp_path / "b.zip")
    assert r.exit_code == 0, r.output
    with zipfile.ZipFile(tmp_path / "b.zip") as zf:
        assert "replay-diff.json" not in zf.namelist()
        assert "replay_diff" not in json.loads(zf.read("summary.json"))["parts"]


def test_audit_file_without_a_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTRAIL_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    audit = tmp_path / "audit"
    audit.mkdir()
    other = b'{"type":"run_started","run_id":"run-other","agent_id":"x"}\n'
    (audit / "events.jsonl").write_bytes(other + EVENTS.read_bytes())
    r = run(
        "replay", "--trace-id", RESTART, "--audit-file", "audit/events.jsonl", "--diff",
        "--evidence", "out/", "--base-policy", POLICY, "--policy", CHANGED,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "audit_file: policy" in r.output and "decision approval_required -> deny" in r.output
    assert run("evidence", "verify", "out/evidence.zip").exit_code == 0
    assert not (tmp_path / "home" / "sentrail.db").exists()  # no store was made
    # the documented form: no policy at all (the built-in one on both sides)
    r = run("replay", "--trace-id", RESTART, "--audit-file", "audit/events.jsonl", "--diff")
    assert r.exit_code == 0 and "No change" in r.output


def test_fleet_what_if(home: Path) -> None:
    r = run("replay", "--since", "3650d", "--tenant", "acme", "--policy", CHANGED)
    assert r.exit_code == 0, r.output
    assert "Replayed 4 run(s) of tenant acme" in r.output
    assert "policy.rule.no-large-transfers: 1 gone (1 run(s))" in r.output
    r = run(
        "replay", "--since", "3650d", "--tenant", "acme", "--policy", CHANGED, "-f", "json",
        "--jobs", "2",
    )  # fmt: skip
    doc = json.loads(r.stdout)
    assert doc["format"] == "sentrail.replay-fleet/1" and doc["runs"] == 4
    assert doc["newly_unauthorized"] == 1 and doc["newly_blocked"] == 1
    assert "Replayed 4 of 4 run(s)" in r.stderr
    r = run("replay", "--since", "3650d", "--tenant", "acme", "--agent", "nobody-*")
    assert r.exit_code == 0 and "Replayed 0 run(s)" in r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run", "run-nope"], "no events of run 'run-nope'"),
        (["--run", TRANSFER, "--policy", "missing.yaml"], "missing.yaml"),
        (["--since", "yesterday-ish"], "--since"),
        (["--since", "7d", "--run", TRANSFER], "--since replays the fleet"),
        ([], "give --run ID"),
        (["--run", "a", "--trace-id", "b"], "--run and --trace-id"),
        (["--trace-id", RESTART, "--audit-file", "nope.jsonl"], "nope.jsonl"),
    ],
)
def test_bad_input_exits_2_with_a_located_message(
    home: Path, args: list[str], message: str
) -> None:
    r = run("replay", "--tenant", "acme", *args)
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output


def test_bad_audit_line_is_located(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTRAIL_HOME", str(tmp_path / "home"))
    bad = tmp_path / "a.jsonl"
    bad.write_bytes(EVENTS.read_bytes() + b'{"type": "step", "run_id": 5}\n')
    r = run("replay", "--trace-id", RESTART, "--audit-file", bad)
    assert r.exit_code == 2 and "line 15" in r.output, r.output
