from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
from typer.testing import CliRunner

from sentrail.cli.app import app
from sentrail.model.decode import decode_run
from sentrail.model.events import events_of
from tests.conftest import EXAMPLES

runner = CliRunner()
POLICY = str(EXAMPLES / "policy.yaml")
TRIAGE = str(EXAMPLES / "traces" / "triage-restart.json")
SENTRAIL = str(Path(sys.executable).parent / "sentrail")


def run(*args: str, input: bytes | None = None) -> Any:
    return runner.invoke(app, list(args), input=input)


def test_single_trace_text_report_matches_design_shape() -> None:
    r = run("trace", "analyze", TRIAGE, "--policy", POLICY)
    assert r.exit_code == 0, r.output
    out = r.output
    for line in (
        "Run Trace Analysis: run-a4f8c312-9e7b",
        "Agent: prod-triage-au-east",
        "Duration: 36.67s (12 steps)",
        "Status: completed",
        "  Escalated: service:restart, ssh:exec:write",
        "  [WARN] Step 2: Permission escalation — ssh:exec:write not in baseline grant",
        "  [WARN] Step 2: Permission escalation — service:restart not in baseline grant",
        "  [INFO] Step 7: Retry detected — metrics.query called 2x with identical params",
        "Behavioural Policy: SOP-114 (triage-standard)",
        "  [PASS] No prohibited actions detected",
        "  [PASS] All tool calls within approved tool list",
        "  [WARN] Escalated permissions require manual approval audit",
        "Summary: 2 warnings, 0 critical",
    ):
        assert line in out, f"missing {line!r} in\n{out}"
    assert "\x1b[" not in out  # not a terminal: no colour


def test_fail_on_controls_exit_code() -> None:
    assert (
        run("trace", "analyze", TRIAGE, "--policy", POLICY, "--fail-on", "warning").exit_code == 1
    )
    assert (
        run("trace", "analyze", TRIAGE, "--policy", POLICY, "--fail-on", "critical").exit_code == 0
    )
    bad = run("trace", "analyze", TRIAGE, "--fail-on", "bogus")
    assert bad.exit_code == 2


def test_batch_summary_report_and_invalid_files(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    r = run(
        "trace",
        "analyze",
        str(EXAMPLES / "traces"),
        "--batch",
        "--policy",
        POLICY,
        "--output",
        str(out),
        "--fail-on",
        "never",
    )
    assert r.exit_code == 2, r.output  # an invalid file is an input error
    n = len(list((EXAMPLES / "traces").glob("*.json")))
    assert f"Analysing {n} trace files..." in r.output
    for label in (
        "Runs analysed: ",
        "  worst finding critical: ",
        "  worst finding warning:  ",
        "  clean (info at most):   ",
        "Invalid inputs: 1",
        f"Report written to: {out}",
    ):
        assert label in r.output
    report = json.loads(out.read_bytes())
    s = report["summary"]
    assert s["runs"] == n - 1 and s["invalid"] == 1
    assert s["critical"] + s["warnings"] + s["clean"] == s["runs"]
    assert report["policy"]["sha256"] and report["policy"]["path"] == POLICY
    assert report["errors"][0]["path"].endswith("truncated.json")
    run0 = report["runs"][0]
    assert {"path", "run_id", "agent_id", "verdict", "risk_score", "findings"} <= set(run0)
    for f in (f for r_ in report["runs"] for f in r_["findings"]):
        assert {
            "id",
            "rule",
            "category",
            "severity",
            "step_index",
            "message",
            "evidence",
            "tags",
        } <= set(f)
        assert f["severity"] in ("info", "warning", "critical")


def test_jobs_gives_the_same_report(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for out, jobs in ((a, "1"), (b, "2")):
        run(
            "trace",
            "analyze",
            str(EXAMPLES / "traces"),
            "--policy",
            POLICY,
            "-o",
            str(out),
            "--jobs",
            jobs,
            "--fail-on",
            "never",
        )
    assert json.loads(a.read_bytes()) == json.loads(b.read_bytes())


def test_json_format_on_stdout() -> None:
    r = run("trace", "analyze", TRIAGE, "--format", "json", "--fail-on", "never")
    doc = json.loads(r.stdout)
    assert doc["summary"]["runs"] == 1 and doc["runs"][0]["run_id"] == "run-a4f8c312-9e7b"


def test_invalid_single_file_is_exit_2_with_location(tmp_path: Path) -> None:
    p = tmp_path / "a.json"
    p.write_text(
        '{"run_id": "r", "agent_id": "a", "steps": [{"step_index": 0, "tool_call": {"tool": 5}}]}'
    )
    r = run("trace", "analyze", str(p))
    assert r.exit_code == 2
    assert f"{p}: steps[0].tool_call.tool: expected str, got int" in r.output
    assert "Traceback" not in r.output
    assert run("trace", "analyze", str(tmp_path / "missing.json")).exit_code == 2


def test_bad_policy_is_exit_2_with_line(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("rules:\n  - id: r\n    condition: 'tool.risk =='\n")
    r = run("trace", "analyze", TRIAGE, "--policy", str(p))
    assert r.exit_code == 2
    assert "line 3: rules[0].condition: CEL condition does not compile" in r.output
    v = run("policy", "validate", str(p))
    assert v.exit_code == 2 and "line 3" in v.output


def test_policy_validate_and_test() -> None:
    v = run("policy", "validate", POLICY)
    assert v.exit_code == 0 and "sha256" in v.output
    assert "8 rules, 1 exception\n" in v.output  # counted in words that agree
    assert "13 agent profiles and a default profile, " in v.output


def test_policy_validate_warns_of_a_file_that_sets_nothing(tmp_path: Path) -> None:
    """Valid (the built-in defaults), but most likely a wrong or emptied file."""
    for text in ("", "# nothing yet\n", "{}\n"):
        p = tmp_path / "p.yaml"
        p.write_text(text)
        v = run("policy", "validate", str(p))
        assert v.exit_code == 0 and "WARNING: the file sets nothing" in v.output, text
    assert "WARNING" not in run("policy", "validate", POLICY).output


def test_policy_validate_counts_changes_to_the_dangerous_actions_pack(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("dangerous_actions:\n  - {id: pipe-to-shell, enabled: false}\n")
    v = run("policy", "validate", str(p))
    assert v.exit_code == 0, v.output
    assert "0 agent profiles, 0 registered tools, 0 rules, 0 exceptions, " in v.output
    assert "1 dangerous-action change\n" in v.output
    t = run("policy", "test", POLICY)
    assert t.exit_code == 0, t.output
    assert " 0 failed" in t.output


def test_stdin_document_and_ndjson_stream() -> None:
    raw = Path(TRIAGE).read_bytes()
    r = subprocess.run([SENTRAIL, "trace", "analyze", "-"], input=raw, capture_output=True)
    assert r.returncode == 0 and b"Run Trace Analysis: run-a4f8c312-9e7b" in r.stdout
    stream = b"\n".join(msgspec.json.encode(e) for e in events_of(decode_run(raw)))
    r2 = subprocess.run(
        [SENTRAIL, "trace", "analyze", "-", "--format", "json"], input=stream, capture_output=True
    )
    assert r2.returncode == 0, r2.stderr
    assert json.loads(r2.stdout)["runs"][0]["run_id"] == "run-a4f8c312-9e7b"


def test_gzip_and_ndjson_files_in_a_directory(tmp_path: Path) -> None:
    raw = Path(TRIAGE).read_bytes()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "t.json.gz").write_bytes(gzip.compress(raw))
    stream = b"\n".join(msgspec.json.encode(e) for e in events_of(decode_run(raw)))
    (tmp_path / "events.ndjson").write_bytes(stream)
    (tmp_path / "notes.txt").write_text("ignored")
    r = run("trace", "analyze", str(tmp_path), "--format", "json", "--fail-on", "never")
    doc = json.loads(r.stdout)
    assert doc["summary"]["runs"] == 2 and doc["summary"]["invalid"] == 0


def test_hostile_strings_are_escaped(tmp_path: Path) -> None:
    doc = json.loads(Path(TRIAGE).read_bytes())
    doc["agent_id"] = "evil\x1b[2J\x1b]0;pwned\x07-agent\u202e"
    doc["run_id"] = "run\r\nFAKE: all clean"
    p = tmp_path / "t.json"
    p.write_text(json.dumps(doc))
    r = run("trace", "analyze", str(p))
    assert "\x1b" not in r.output and "\x07" not in r.output and "\u202e" not in r.output
    assert "evil\\x1b[2J" in r.output and "\\u202e" in r.output
    assert "\nFAKE" not in r.output


def test_baseline_learn_then_use(tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    r = run("baseline", "learn", str(EXAMPLES / "traces"), "--output", str(out))
    assert r.exit_code == 2, r.output  # the invalid example file; the rest were learned
    assert "Learned baselines for" in r.output and "1 invalid" in r.output
    assert json.loads(out.read_bytes())["format"] == "sentrail.baselines/1"
    r2 = run("trace", "analyze", TRIAGE, "--baseline", str(out), "--fail-on", "never")
    assert r2.exit_code == 0, r2.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else/9", "agents": {}}')
    r3 = run("trace", "analyze", TRIAGE, "--baseline", str(bad))
    assert r3.exit_code == 2 and "baselines format" in r3.output


def test_version() -> None:
    assert run("--version").output.startswith("sentrail ")


def test_output_to_a_device_writes_into_it_and_never_replaces_it() -> None:
    import os
    import stat

    r = run("trace", "analyze", TRIAGE, "--output", os.devnull, "--fail-on", "never")
    assert r.exit_code == 0, r.output
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)  # still the device, not a file
