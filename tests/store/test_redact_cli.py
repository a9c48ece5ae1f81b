"""``sentrail redact`` and ``sentrail retention`` end to end, in a temporary SENTRAIL_HOME."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sentrail.cli.app import app
from sentrail.evidence.keys import KeyStore
from sentrail.store.sqlite import SqliteStore
from tests.conftest import EXAMPLES

runner = CliRunner()
TRIAGE = str(EXAMPLES / "traces" / "triage-restart.json")
RUN = "run-a4f8c312-9e7b"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SENTRAIL_HOME", str(tmp_path / "home"))
    r = run("ingest", TRIAGE, "--tenant", "acme")
    assert r.exit_code == 0, r.output
    return tmp_path / "home"


def run(*args: str) -> Any:
    return runner.invoke(app, list(args))


def db(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "sentrail.db", isolation_level=None)


def test_redact_fields_then_export_and_verify(home: Path, tmp_path: Path) -> None:
    command = "steps.*.tool_call.parameters.command"
    r = run(
        "redact", "--tenant", "acme", "--run", RUN, "--field", "reasoning", "--field", command,
        "--by", "dpo@acme", "--reason", "ticket SEC-7: \x1b[31mcredentials in a trace",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (
        f"Redacted run {RUN} of app default of tenant acme (fields reasoning, {command})"
        in r.output
    )
    assert "1 payload(s) erased, 1 view(s) kept" in r.output and "by dpo@acme" in r.output
    assert "\x1b" not in r.output  # escaped

    store = SqliteStore(home / "sentrail.db")
    try:
        trace, record = store.run_events("acme", "default", RUN)
    finally:
        store.close()
    assert trace.payload is None and trace.view is not None and record.kind == "redaction"
    view = json.loads(trace.view)
    assert all(s["reasoning"] == "[REDACTED]" for s in view["steps"])
    calls = [s.get("tool_call") or {} for s in view["steps"]]
    commands = [c["parameters"]["command"] for c in calls if "command" in c.get("parameters", {})]
    assert len(commands) == 4 and set(commands) == {"[REDACTED]"}
    assert view["agent_id"] == "prod-triage-au-east"

    r = run("log", "verify", "--tenant", "acme")
    assert r.exit_code == 0, r.output
    bundle = tmp_path / "bundle.zip"
    r = run("evidence", "export", "--tenant", "acme", "--run", RUN, "-o", str(bundle))
    assert r.exit_code == 0, r.output
    key = KeyStore(home / "keys").active().verifier_key()
    r = run("evidence", "verify", str(bundle), "--key", key)
    assert r.exit_code == 0, r.output
    assert "2 event(s) (seq 0..1), 1 redacted" in r.output
    assert "Redacted (seq 1) at 20" in r.output and "by dpo@acme" in r.output
    assert f"fields reasoning, {command}" in r.output and "ticket SEC-7" in r.output
    assert "erased seqs: 0; views kept: 0" in r.output

    r = run("ingest", TRIAGE, "--tenant", "acme")  # the same trace again: a duplicate
    assert r.exit_code == 0 and "1 duplicate(s)" in r.output, r.output


def test_redact_whole_run_scrubs_the_index(home: Path) -> None:
    with db(home) as conn:
        bodies = [json.loads(b) for (b,) in conn.execute("SELECT body FROM findings")]
    assert bodies and any(b.get("evidence") for b in bodies)
    r = run("redact", "--tenant", "acme", "--run", RUN, "--by", "dpo", "--reason", "erasure")
    assert r.exit_code == 0, r.output
    assert "(whole payloads): 1 payload(s) erased, 0 view(s) kept" in r.output
    with db(home) as conn:
        bodies = [json.loads(b) for (b,) in conn.execute("SELECT body FROM findings")]
        (key,) = conn.execute("SELECT dek, erased_by FROM run_keys").fetchall()
    assert key == (None, "dpo")
    for b in bodies:
        assert set(b["evidence"].values()) <= {"[REDACTED]"} and b["message"] == "[REDACTED]"
    assert run("log", "verify").exit_code == 0


def test_redact_errors_are_usage_errors(home: Path) -> None:
    r = run("redact", "--tenant", "acme", "--run", "nope", "--by", "a", "--reason", "r")
    assert r.exit_code == 2 and "no events of run 'nope'" in r.output
    r = run(
        "redact", "--tenant", "acme", "--run", RUN, "--by", "a", "--reason", "r", "--field", "a..b"
    )
    assert r.exit_code == 2 and "empty component" in r.output
    r = run("redact", "--tenant", "acme", "--run", RUN)
    assert r.exit_code == 2  # --by and --reason are required


def test_retention_set_dry_run_and_apply(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = run("retention", "set", "--tenant", "acme", "--days", "7")
    assert r.exit_code == 0, r.output
    assert "Retention of tenant acme: runs are kept 7 day(s)" in r.output
    r = run("retention", "apply", "--dry-run")
    assert r.exit_code == 0 and "0 run(s) would be erased" in r.output, r.output

    later = time.time() + 30 * 86400  # 30 days on (received_at is in the log: not edited)
    monkeypatch.setattr(time, "time", lambda: later)
    r = run("retention", "apply", "--dry-run", "--tenant", "acme")
    assert r.exit_code == 0, r.output
    assert f"would erase: run {RUN} of app default of tenant acme" in r.output
    assert "retention 7 day(s)" in r.output
    assert "1 run(s) would be erased (dry run: nothing changed)" in r.output
    with db(home) as conn:
        assert conn.execute("SELECT COUNT(*) FROM run_keys WHERE dek IS NULL").fetchone() == (0,)

    r = run("retention", "apply")
    assert r.exit_code == 0, r.output
    assert f"Redacted run {RUN} of app default of tenant acme (whole payloads)" in r.output
    assert "by retention" in r.output and "retention 7 days" in r.output
    assert "1 run(s) erased by retention" in r.output
    with db(home) as conn:
        assert conn.execute("SELECT COUNT(*) FROM steps").fetchone() == (0,)
    assert "0 run(s) erased" in run("retention", "apply").output
    assert run("log", "verify").exit_code == 0


@pytest.mark.parametrize(
    ("days", "code", "text"),
    [("none", 0, "kept forever"), ("x", 2, "--days"), ("0", 2, "whole number")],
)
def test_retention_set_values(home: Path, days: str, code: int, text: str) -> None:
    r = run("retention", "set", "--tenant", "acme", "--days", days)
    assert r.exit_code == code and text in r.output, r.output
