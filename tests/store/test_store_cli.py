"""The store commands end to end, in a temporary SENTRAIL_HOME."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sentrail.cli.app import app
from sentrail.evidence.keys import KeyStore
from sentrail.store.schema import LATEST_VERSION
from tests.conftest import EXAMPLES

runner = CliRunner()
TRIAGE = str(EXAMPLES / "traces" / "triage-restart.json")
RUN = "run-a4f8c312-9e7b"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SENTRAIL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def run(*args: str) -> Any:
    return runner.invoke(app, list(args))


def test_upgrade_ingest_verify_export_round_trip(home: Path, tmp_path: Path) -> None:
    r = run("db", "upgrade")
    assert r.exit_code == 0, r.output
    assert f"Schema version: {LATEST_VERSION}" in r.output
    assert (home / "sentrail.db").exists()

    r = run("ingest", TRIAGE, "--tenant", "acme")
    assert r.exit_code == 0, r.output
    assert "1 run(s), 1 new event(s), 0 duplicate(s)" in r.output
    r = run("ingest", TRIAGE, "--tenant", "acme")  # idempotent
    assert "0 new event(s), 1 duplicate(s)" in r.output

    r = run("log", "verify")
    assert r.exit_code == 0, r.output
    assert "ok: tenant acme: 1 event(s)" in r.output

    bundle = tmp_path / "bundle.zip"
    r = run("evidence", "export", "--tenant", "acme", "--run", RUN, "--output", str(bundle))
    assert r.exit_code == 0, r.output
    key = KeyStore(home / "keys").active().verifier_key()

    r = run("evidence", "verify", str(bundle), "--key", key)
    assert r.exit_code == 0, r.output
    assert f"OK: run {RUN} of app default of tenant acme: 1 event(s)" in r.output
    assert "NOT pinned" not in r.output

    r = run("evidence", "verify", str(bundle))
    assert r.exit_code == 0, r.output
    assert "the signer is NOT pinned" in r.output

    data = bytearray(bundle.read_bytes())
    data[len(data) // 3] ^= 0x01
    bad = bytes(data)
    (tmp_path / "bad.zip").write_bytes(bad)
    r = run("evidence", "verify", str(tmp_path / "bad.zip"), "--key", key)
    assert r.exit_code == 1 and "FAIL" in r.output


def test_log_verify_names_tampering_and_export_refuses(home: Path, tmp_path: Path) -> None:
    assert run("ingest", str(EXAMPLES / "traces"), "--tenant", "t").exit_code in (0, 2)
    conn = sqlite3.connect(home / "sentrail.db", isolation_level=None)
    conn.execute("UPDATE events SET payload = CAST('{}' AS BLOB) WHERE seq = 3")
    conn.close()
    r = run("log", "verify", "--tenant", "t")
    assert r.exit_code == 1
    assert "seq 3: payload does not match its stored digest" in r.output
    r = run("evidence", "export", "--tenant", "t", "--run", RUN, "-o", str(tmp_path / "b.zip"))
    assert r.exit_code == 1 and "does not verify" in r.output


def test_bad_database_url_is_a_usage_error(home: Path) -> None:
    r = run("db", "upgrade", "--database", "mysql://x")
    assert r.exit_code == 2
    assert "unknown database URL" in r.output


def test_export_of_an_unknown_run_is_a_usage_error(home: Path, tmp_path: Path) -> None:
    r = run("evidence", "export", "--run", "nope", "-o", str(tmp_path / "b.zip"))
    assert r.exit_code == 2 and "no events of run" in r.output


def test_an_event_id_reused_with_other_bytes_is_named_and_the_rest_stored(
    home: Path, tmp_path: Path
) -> None:
    streams = tmp_path / "streams"
    streams.mkdir()
    line = '{"type":"run_started","run_id":"%s","agent_id":"x","event_id":"%s"}\n'
    (streams / "a.ndjson").write_text(line % ("r1", "e1"))
    assert run("ingest", str(streams)).exit_code == 0
    (streams / "b.ndjson").write_text(line % ("r2", "e1"))  # e1 again, other bytes
    (streams / "c.ndjson").write_text(line % ("r3", "e3"))
    r = run("ingest", str(streams))
    assert r.exit_code == 2, r.output
    assert "b.ndjson" in r.output and "'e1' is already stored" in r.output
    assert "1 new event(s), 1 duplicate(s), 1 invalid" in r.output


def test_a_new_home_and_store_are_private_and_an_existing_file_keeps_its_mode(
    home: Path, tmp_path: Path
) -> None:
    assert run("ingest", TRIAGE, "--tenant", "acme").exit_code == 0
    mode = {p.name: stat.S_IMODE(os.stat(p).st_mode) for p in [home, *home.iterdir()]}
    assert mode["home"] == mode["keys"] == 0o700
    assert all(m == 0o600 for name, m in mode.items() if name.startswith("sentrail.db"))
    shared = tmp_path / "shared.db"  # a store the operator made shared on purpose
    shared.touch(mode=0o640)
    os.chmod(shared, 0o640)
    assert run("db", "upgrade", "--database", f"sqlite:///{shared}").exit_code == 0
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o640


def test_evidence_verify_says_what_is_wrong_with_what_it_was_given(
    home: Path, tmp_path: Path
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    r = run("evidence", "verify", str(text))
    assert r.exit_code == 1 and "FAIL" in r.output and "not an evidence bundle" in r.output
    assert "NOT pinned" not in r.output  # nothing was checked: no word on who signed it
    r = run("evidence", "verify", str(tmp_path))
    assert r.exit_code == 2 and "a directory, not a bundle file" in r.output
    r = run("evidence", "verify", "/dev/null")
    assert r.exit_code == 2 and "not a regular file" in r.output
    r = run("evidence", "verify", str(text), "--key", str(tmp_path))
    assert r.exit_code == 2 and "is a directory" in r.output
    r = run("evidence", "verify", str(text), "--key", str(tmp_path / "missing.key"))
    assert r.exit_code == 2
    assert "missing.key: no such file, and not a verifier key" in r.output
