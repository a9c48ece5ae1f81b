"""Ctrl-C and SIGTERM on a real `trace watch` process reading a pipe that stays open."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from sentrail.cli.app import app as sentrail_app
from tests.watch.conftest import (
    PATIENCE,
    TRACES,
    TRIAGE_EVENTS,
    LineReader,
    child_env,
    module_cmd,
)

SAVED = "Partial trace saved to: "


def start_watch(
    home: Path, child: list[subprocess.Popen[bytes]], *args: str
) -> tuple[subprocess.Popen[bytes], LineReader, LineReader]:
    proc = subprocess.Popen(
        module_cmd("watch", *args),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(home),
    )
    child.append(proc)
    assert proc.stdout is not None and proc.stderr is not None
    return proc, LineReader(proc.stdout), LineReader(proc.stderr)


def send(proc: subprocess.Popen[bytes], data: bytes) -> None:
    assert proc.stdin is not None
    proc.stdin.write(data)
    proc.stdin.flush()  # the pipe stays open: the watch must not wait for its end


def check_partial(path: Path, home: Path, steps: int) -> None:
    assert path.parent == home / "traces"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    doc = json.loads(path.read_bytes())
    assert doc["status"] == "partial" and len(doc["steps"]) == steps
    r = CliRunner().invoke(sentrail_app, ["trace", "analyze", str(path)])
    assert r.exit_code in (0, 1), r.output  # analysable: never 2
    assert "missing_telemetry" in r.output or "Telemetry missing" in r.output


def test_sigint_saves_the_partial_trace_and_exits_130(
    _home: Path, child: list[subprocess.Popen[bytes]]
) -> None:
    proc, out, err = start_watch(_home, child)
    lines = TRIAGE_EVENTS.read_bytes().splitlines(keepends=True)
    send(proc, b"".join(lines[:3]))  # run_started, steps 0 and 1
    seen = out.wait_for("[step 1]")
    assert seen[0] == "Watching agent: prod-triage-au-east (run-a4f8c312-9e7b)"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(PATIENCE) == 130
    rest = out.rest()
    saved = [ln for ln in rest if ln.startswith("Disconnected. " + SAVED)]
    assert len(saved) == 1, rest
    assert "Traceback" not in "\n".join(err.rest())
    path = Path(saved[0].split(SAVED, 1)[1])
    assert path.name.startswith("run-a4f8c312-9e7b-partial-")
    check_partial(path, _home, 2)
    assert proc.stdin is not None
    proc.stdin.close()


def test_sigterm_saves_one_file_per_open_run_and_exits_143(
    _home: Path, child: list[subprocess.Popen[bytes]]
) -> None:
    proc, out, err = start_watch(_home, child, "--format", "json")
    triage = TRIAGE_EVENTS.read_bytes().splitlines(keepends=True)
    other = (TRACES / "prod-delete.json").read_bytes()  # a whole (completed) trace
    finance = {
        "type": "run_started",
        "run_id": "run/with/../slashes",
        "agent_id": "finance-ap",
    }
    step = {"type": "step", "run_id": finance["run_id"], "step": {"step_index": 0}}
    send(proc, b"".join(triage[:2]) + other)
    send(proc, json.dumps(finance).encode() + b"\n" + json.dumps(step).encode() + b"\n")
    out.wait_for('"run_id":"run/with/../slashes","agent_id":"finance-ap","step_index":0')
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(PATIENCE) == 143
    objs = [json.loads(ln) for ln in out.rest()]
    saved = [o for o in objs if o["type"] == "partial_trace"]
    assert {o["run_id"] for o in saved} == {"run-a4f8c312-9e7b", "run/with/../slashes"}
    messages = [ln for ln in err.rest() if SAVED in ln]
    assert len(messages) == 2 and all(m.startswith("Disconnected. ") for m in messages)
    for o in saved:
        check_partial(Path(o["path"]), _home, 1)
    # the completed run was analysed and is not saved
    assert any(o.get("phase") == "completed" for o in objs)
    assert len(list((_home / "traces").iterdir())) == 2
    assert proc.stdin is not None
    proc.stdin.close()


def test_sigint_with_nothing_open_just_disconnects(
    _home: Path, child: list[subprocess.Popen[bytes]]
) -> None:
    proc, out, _ = start_watch(_home, child)
    send(proc, TRIAGE_EVENTS.read_bytes())
    out.wait_for("Run completed:")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(PATIENCE) == 130
    assert out.rest()[-1] == "Disconnected."
    assert not (_home / "traces").exists()
    assert proc.stdin is not None
    proc.stdin.close()
