"""`trace watch` output: the compact and JSON formats, escaping, colour, filters, bad input."""

from __future__ import annotations

import io
import json
from typing import Any

import msgspec

from sentrail.cli.watch import CompactView
from sentrail.engine.engine import Engine
from sentrail.model.decode import decode_run
from sentrail.model.events import events_of
from sentrail.runtime.watch import Watcher
from tests.watch.conftest import (
    TRACES,
    TRIAGE,
    TRIAGE_EVENTS,
    invoke,
    json_lines,
)


def ndjson_of(*names: str) -> bytes:
    """Example traces as NDJSON events, one run after another."""
    out = b""
    for name in names:
        run = decode_run((TRACES / name).read_bytes())
        out += b"".join(msgspec.json.encode(ev) + b"\n" for ev in events_of(run))
    return out


def interleaved(a: bytes, b: bytes) -> bytes:
    la, lb = a.splitlines(keepends=True), b.splitlines(keepends=True)
    out: list[bytes] = []
    for i in range(max(len(la), len(lb))):
        out.extend(la[i : i + 1] + lb[i : i + 1])
    return b"".join(out)


def test_compact_output_of_the_triage_events_matches_the_design() -> None:
    r = invoke("watch", input=TRIAGE_EVENTS.read_bytes())
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "Watching agent: prod-triage-au-east (run-a4f8c312-9e7b)"
    assert lines[1] == "14:22:02 [step 0] assess_alert     metrics.query   OK metrics:read"
    assert lines[3] == (
        "14:22:14 [step 2] restart_service  service.restart OK "
        "service:restart,ssh:exec:write [ESCALATED] [WARN]"
    )
    assert lines[4].startswith(
        "  [WARN] Step 2: Permission escalation — service:restart not in baseline grant"
    )
    assert any("[step 6]" in ln and " TIMEOUT " in ln for ln in lines)
    assert "  [INFO] Step 7: Retry detected — metrics.query called 2x" in r.stdout
    assert lines[-1].startswith("Run completed: run-a4f8c312-9e7b — verdict suspicious")
    assert "\x1b" not in r.output  # not a terminal: no colour


def test_a_pretty_printed_trace_on_stdin_is_replayed_as_events() -> None:
    from_trace = invoke("watch", input=TRIAGE.read_bytes())
    from_events = invoke("watch", input=TRIAGE_EVENTS.read_bytes())
    assert from_trace.exit_code == 0, from_trace.output
    steps = [ln for ln in from_trace.stdout.splitlines() if "[step " in ln]
    assert len(steps) == 12
    assert steps == [ln for ln in from_events.stdout.splitlines() if "[step " in ln]
    # two documents back to back (cat a.json b.json) are two runs
    both = TRIAGE.read_bytes() + (TRACES / "prod-delete.json").read_bytes()
    r = invoke("watch", input=both)
    assert r.exit_code == 0, r.output
    assert r.stdout.count("Watching agent:") == 2 and r.stdout.count("Run completed:") == 2


def test_json_output_has_step_finding_and_run_objects() -> None:
    r = invoke("watch", "--format", "json", input=TRIAGE_EVENTS.read_bytes())
    assert r.exit_code == 0, r.output
    objs = json_lines(r.stdout)
    assert {o["type"] for o in objs} == {"run", "step", "finding"}
    steps = [o for o in objs if o["type"] == "step"]
    assert [s["step_index"] for s in steps] == list(range(12))
    esc = steps[2]
    assert esc["escalated"] is True and esc["tool"] == "service.restart"
    assert esc["permissions"] == ["service:restart", "ssh:exec:write"]
    findings = [o for o in objs if o["type"] == "finding"]
    assert set(esc["findings"]) <= {f["id"] for f in findings}
    assert {f["severity"] for f in findings} == {"warning", "info"}
    assert objs[0] == {
        "type": "run",
        "phase": "started",
        "run_id": "run-a4f8c312-9e7b",
        "agent_id": "prod-triage-au-east",
        "trigger": "alert:cpu-spike-web-03",
    }
    end = objs[-1]
    assert end["type"] == "run" and end["phase"] == "completed"
    assert end["verdict"] == "suspicious" and end["findings"]["warning"] == 2
    assert r.stdout.isascii()


def test_critical_findings_get_a_crit_badge() -> None:
    r = invoke("watch", input=(TRACES / "injected-transfer.json").read_bytes())
    assert r.exit_code == 0, r.output
    step2 = next(ln for ln in r.stdout.splitlines() if "[step 2]" in ln)
    assert step2.endswith("[CRIT]")
    assert "  [CRIT] Step 2: bank.transfer parameter to_account" in r.stdout
    assert "verdict unauthorized" in r.stdout


HOSTILE_AGENT = "evil\x1b[2J\x1b[31magent\u202egnp.exe\r"
HOSTILE_TOOL = "tool\x1b]8;;http://attacker.example\x07click\x1b]8;;\x07"


def hostile_events() -> bytes:
    run = {
        "type": "run_started",
        "run_id": "run-\x1b[1mX\u2066",
        "agent_id": HOSTILE_AGENT,
        "permissions_summary": {"granted": ["a:read"]},
    }
    step = {
        "type": "step",
        "run_id": run["run_id"],
        "step": {
            "step_index": 0,
            "action": "act\rION\x9b31m",
            "tool_call": {"tool": HOSTILE_TOOL, "parameters": {}},
            "result": {"status": "ok\x1b[0m\u200b"},
            "permissions_used": ["x:\x1b[5mwrite"],
            "timestamp": "2026-03-05T14:22:02Z",
        },
    }
    done = {"type": "run_completed", "run_id": run["run_id"], "status": "completed"}
    return b"".join(json.dumps(o).encode() + b"\n" for o in (run, step, done))


def test_hostile_names_are_escaped_in_compact_output() -> None:
    r = invoke("watch", input=hostile_events())
    assert r.exit_code == 0, r.output
    out = r.stdout
    for bad in ("\x1b", "\r", "\u202e", "\u2066", "\u200b", "\x9b", "\x07"):
        assert bad not in out, repr(bad)
    assert "Watching agent: evil\\x1b[2J\\x1b[31magent\\u202egnp.exe\\x0d" in out
    assert "tool\\x1b]8;;http://attacker.example\\x07click" in out
    assert "act\\x0dION\\x9b31m" in out
    assert "x:\\x1b[5mwrite [ESCALATED]" in out


def test_hostile_names_survive_json_output_exactly_but_inert() -> None:
    r = invoke("watch", "--format", "json", input=hostile_events())
    assert r.exit_code == 0, r.output
    assert r.stdout.isascii()  # ESC, CR, bidi and C1 are all \u escapes
    objs = json_lines(r.stdout)
    step = next(o for o in objs if o["type"] == "step")
    assert step["agent_id"] == HOSTILE_AGENT and step["tool"] == HOSTILE_TOOL


def test_colour_only_when_asked_and_escapes_still_apply() -> None:
    out, err = io.StringIO(), io.StringIO()
    engine = Engine()
    w = Watcher(engine, CompactView(out, err, colour=True))
    for line in hostile_events().splitlines():
        w.feed_line(line + b"\n", "stdin")
    text = out.getvalue()
    assert "\x1b[35;1m[ESCALATED]\x1b[0m" in text
    # the only escape sequences are our own colour codes
    stripped = text.replace("\x1b[35;1m", "").replace("\x1b[32m", "").replace("\x1b[33m", "")
    stripped = stripped.replace("\x1b[36m", "").replace("\x1b[31;1m", "").replace("\x1b[0m", "")
    assert "\x1b" not in stripped


def test_no_colour_on_a_terminal_when_no_color_is_set(monkeypatch: Any) -> None:
    from sentrail.cli.common import colour_for

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert colour_for(Tty()) is False  # NO_COLOR=1 from the autouse fixture
    monkeypatch.delenv("NO_COLOR")
    assert colour_for(Tty()) is True
    assert colour_for(io.StringIO()) is False


# -- filters -------------------------------------------------------------------------------
TWO_RUNS = interleaved(ndjson_of("triage-restart.json"), ndjson_of("injected-transfer.json"))


def test_two_interleaved_runs_are_told_apart() -> None:
    r = invoke("watch", input=TWO_RUNS)
    assert r.exit_code == 0, r.output
    assert r.stdout.count("Watching agent:") == 2
    assert "== run-a4f8c312-9e7b (prod-triage-au-east)" in r.stdout
    assert "== run-0f6c2a88-b514 (finance-ap-assistant)" in r.stdout
    assert r.stdout.count("Run completed:") == 2


def test_agent_glob_and_plain_prefix() -> None:
    for pattern in ("prod-triage-*", "prod-triage", "*-au-east", "prod-triage-au-east"):
        r = invoke("watch", "--agent", pattern, input=TWO_RUNS)
        assert r.exit_code == 0, r.output
        assert "prod-triage-au-east" in r.stdout, pattern
        assert "finance-ap-assistant" not in r.stdout and "bank." not in r.stdout, pattern
    r = invoke("watch", "--agent", "nobody-*", input=TWO_RUNS)
    assert r.exit_code == 0 and r.stdout == "" and "note:" not in r.output


def test_run_filter() -> None:
    r = invoke("watch", "--run", "run-0f6c2a88-b514", "--format", "json", input=TWO_RUNS)
    assert r.exit_code == 0, r.output
    objs = json_lines(r.stdout)
    assert objs and {o["run_id"] for o in objs} == {"run-0f6c2a88-b514"}
    r = invoke("watch", "--run", "run-a4f8c312", input=TWO_RUNS)  # exact, not a prefix
    assert r.stdout == ""


def test_min_severity_filters_findings_not_steps() -> None:
    r = invoke("watch", "--min-severity", "critical", input=TWO_RUNS)
    assert r.exit_code == 0, r.output
    assert "[WARN]" not in r.stdout and "[INFO]" not in r.stdout
    assert "[CRIT]" in r.stdout and "[ESCALATED]" in r.stdout
    assert r.stdout.count("[step ") == 12 + 4
    r = invoke("watch", "-f", "json", "--min-severity", "warning", input=TWO_RUNS)
    j = json_lines(r.stdout)
    sev = {o["severity"] for o in j if o["type"] == "finding"}
    assert sev == {"warning", "critical"}
    bad = invoke("watch", "--min-severity", "loud", input=b"")
    assert bad.exit_code == 2


# -- bad input -----------------------------------------------------------------------------
def test_bad_lines_are_reported_and_the_watch_goes_on() -> None:
    lines = TRIAGE_EVENTS.read_bytes().splitlines(keepends=True)
    data = b"".join(
        [
            lines[0],
            b"not json at all\n",
            b'{"type": "step", "run_id": "run-a4f8c312-9e7b", "step": {"step_index": "x"}}\n',
            b'{"type": "step", "run_id": "r", "run_id": "s", "step": {"step_index": 1}}\n',
            b'{"type": "teleport", "run_id": "r"}\n',
            *lines[1:],
            b'{"type": "step", "run_id": "never-started", "step": {"step_index": 0}}\n',
            b'{"type": "step", "run_id": "run-a4f8c312-9e7b", "step": {\n',
        ]
    )
    r = invoke("watch", input=data)
    assert r.exit_code == 2, r.output  # the input ended, but some of it was invalid
    err = r.stderr
    assert "invalid: stdin:line 2: expected a JSON object" in err
    assert "invalid: stdin:line 3: step.step_index: expected int, got str" in err
    assert "invalid: stdin:line 4: duplicate key 'run_id'" in err
    assert "invalid: stdin:line 5:" in err
    assert "note: run never-started: events arrived before its run_started" in err
    assert "invalid: stdin:line 20: truncated JSON" in err
    assert "Run completed: run-a4f8c312-9e7b" in r.stdout
    assert r.stdout.count("[step ") == 12
    assert "Traceback" not in r.output


def test_duplicate_events_are_shown_once() -> None:
    lines = TRIAGE_EVENTS.read_bytes().splitlines(keepends=True)
    data = b"".join([lines[0], lines[0], lines[1], lines[2], lines[1], *lines[2:]])
    r = invoke("watch", input=data)
    assert r.exit_code == 0, r.output
    assert r.stdout.count("[step 0]") == 1 and r.stdout.count("[step 1]") == 1
    assert r.stdout.count("Watching agent:") == 1


def test_usage_errors() -> None:
    assert invoke("watch", "--follow").exit_code == 2
    assert invoke("watch", "--from-start").exit_code == 2
    r = invoke("watch", "--source", "gopher://x")
    assert r.exit_code == 2 and "unknown source" in r.stderr
    r = invoke("watch", "--source", "file:/no/such/file.ndjson")
    assert r.exit_code == 2 and "no such file" in r.stderr
    r = invoke("watch", "--policy", "/no/such/policy.yaml", input=b"")
    assert r.exit_code == 2
