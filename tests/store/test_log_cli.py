"""``sentrail log checkpoint`` and ``log verify`` against outside records, end to end."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sentrail.cli.app import app
from sentrail.evidence.checkpoint import log_signer, verify_checkpoint
from sentrail.evidence.keys import KeyStore
from tests.conftest import EXAMPLES
from tests.store.s3_stub import ACCESS_KEY, SECRET_KEY, Buckets, versions
from tests.store.witness_stub import StubWitness, serve_witness

runner = CliRunner()
TRACES = EXAMPLES / "traces"
STREAM = EXAMPLES / "events" / "triage-restart.ndjson"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SENTRAIL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def run(*args: str) -> Any:
    return runner.invoke(app, list(args))


def ingest(*names: str, tenant: str = "acme") -> None:
    for name in names:
        r = run("ingest", str(TRACES / name), "--tenant", tenant, "--app", "pay")
        assert r.exit_code == 0, r.output


def db(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "sentrail.db", isolation_level=None)


def saved_checkpoint(tmp_path: Path) -> Path:
    r = run("log", "checkpoint", "--tenant", "acme")
    assert r.exit_code == 0, r.output
    path = tmp_path / "cp.txt"
    path.write_text(r.stdout)
    return path


def test_log_checkpoint_prints_a_signed_note_and_its_key(home: Path, tmp_path: Path) -> None:
    ingest("prod-delete.json")
    r = run("log", "checkpoint", "--tenant", "acme")
    assert r.exit_code == 0, r.output
    key = r.stderr.removeprefix("verifier key: ").strip()
    head = verify_checkpoint(r.stdout, [key])
    assert (head.origin, head.size) == ("sentrail.local/log/acme", 1)
    assert run("log", "checkpoint", "--tenant", "nope").exit_code == 2


def test_a_missing_tenant_is_a_failure(home: Path) -> None:
    ingest("prod-delete.json")
    r = run("log", "verify", "--tenant", "nope")
    assert r.exit_code == 1 and "FAIL" in r.output and "no log" in r.output, r.output


def test_verify_holds_the_store_to_a_checkpoint_kept_outside(home: Path, tmp_path: Path) -> None:
    ingest("prod-delete.json", "exfil-base64.json", "triage-restart.json")
    held = saved_checkpoint(tmp_path)
    r = run("log", "verify", "--tenant", "acme", "--checkpoint", str(held))
    assert r.exit_code == 0 and "consistent with 1 outside checkpoint(s)" in r.output, r.output
    ingest("clean-support-lookup.json")
    assert run("log", "verify", "--tenant", "acme", "--checkpoint", str(held)).exit_code == 0
    with db(home) as conn:  # cut the log back to the checkpoint before, and hide it
        conn.execute("DELETE FROM events WHERE seq >= 2")
        conn.execute("DELETE FROM checkpoints WHERE size > 2")
    assert run("log", "verify", "--tenant", "acme").exit_code == 0  # the log alone: fine
    r = run("log", "verify", "--tenant", "acme", "--checkpoint", str(held))
    assert r.exit_code == 1 and "cut off" in r.output, r.output


def test_a_checkpoint_signed_by_an_unknown_key_fails(home: Path, tmp_path: Path) -> None:
    ingest("prod-delete.json")
    held = saved_checkpoint(tmp_path)
    KeyStore(home / "keys").rotate()  # the old key stays trusted ...
    ingest("exfil-base64.json")
    assert run("log", "verify", "--checkpoint", str(held)).exit_code == 0
    foreign = tmp_path / "foreign"
    r = runner.invoke(
        app, ["log", "checkpoint", "--tenant", "acme"], env={"SENTRAIL_HOME": str(foreign)}
    )
    assert r.exit_code == 2  # another home: no such tenant there
    other = KeyStore(foreign / "keys").ensure()
    text = held.read_text().split("\n\n")[0] + "\n"
    from sentrail.evidence.note import sign_note

    forged = tmp_path / "forged.txt"
    forged.write_text(sign_note(text, log_signer(other, "acme")))
    r = run("log", "verify", "--checkpoint", str(forged))
    assert r.exit_code == 1 and "does not verify" in r.output, r.output


def test_a_checkpoint_is_fetched_from_a_url(home: Path, tmp_path: Path) -> None:
    ingest("prod-delete.json")
    saved_checkpoint(tmp_path)
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/cp.txt"
        r = run("log", "verify", "--checkpoint", url)
        assert r.exit_code == 0, r.output
        r = run("log", "verify", "--checkpoint", url.replace("cp.txt", "none.txt"))
        # an outside record that cannot be fetched says nothing about the log: input error
        assert r.exit_code == 2 and "cannot fetch" in r.output, r.output
    finally:
        server.shutdown()
        server.server_close()


def test_events_past_an_old_checkpoint_and_unsealed_rows_fail(home: Path) -> None:
    ingest("prod-delete.json", "exfil-base64.json")
    with db(home) as conn:
        conn.execute("DELETE FROM checkpoints")
    assert run("log", "verify").exit_code == 0  # within the allowed age
    r = run("log", "verify", "--max-unsigned-age", "0")
    assert r.exit_code == 1 and "covered by no checkpoint" in r.output, r.output
    ingest("triage-restart.json")  # signs again
    assert run("log", "verify", "--max-unsigned-age", "0").exit_code == 0


def test_an_unsealed_row_fails(home: Path) -> None:
    ingest("prod-delete.json")
    plaintext = (TRACES / "prod-delete.json").read_bytes()
    with db(home) as conn:
        conn.execute("UPDATE events SET payload = ?, sealed = 0 WHERE seq = 0", (plaintext,))
    r = run("log", "verify")
    assert r.exit_code == 1 and "stored unsealed (plaintext at rest)" in r.output, r.output


@pytest.fixture
def witness(home: Path) -> Iterator[StubWitness]:
    keys = KeyStore(home / "keys").ensure()
    log_key = log_signer(keys, "acme")
    with serve_witness(StubWitness({log_key.name: log_key.verifier})) as w:
        yield w


def test_witnesses_get_every_checkpoint_and_hold_the_store(
    home: Path, tmp_path: Path, witness: StubWitness, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "witness.log"
    monkeypatch.setenv("SENTRAIL_WITNESS", f"{file},{witness.url}")
    ingest("prod-delete.json", "exfil-base64.json", "triage-restart.json")
    assert witness.latest["sentrail.local/log/acme"][0] == 3
    vkey = witness.cosigner.vkey()
    r = run(
        "log", "verify", "--witness", str(file), "--witness", witness.url, "--witness-key", vkey
    )
    assert r.exit_code == 0 and "consistent with 4 outside checkpoint(s)" in r.output, r.output
    with db(home) as conn:
        conn.execute("DELETE FROM events WHERE seq >= 2")
        conn.execute("DELETE FROM checkpoints WHERE size > 2")
    r = run("log", "verify", "--witness", witness.url)
    assert r.exit_code == 1 and "holds a larger tree" in r.output, r.output
    r = run("log", "verify", "--witness", str(file))
    assert r.exit_code == 1 and "cut off" in r.output, r.output


def test_a_witness_that_holds_nothing_of_a_tenant_with_events_fails(
    home: Path, tmp_path: Path
) -> None:
    """An empty witness proves nothing: never pushed to, or its copies gone."""
    ingest("prod-delete.json")
    empty = tmp_path / "empty-witness.log"
    empty.write_bytes(b"")
    r = run("log", "verify", "--witness", str(empty))
    assert r.exit_code == 1 and "holds no checkpoint of tenant 'acme'" in r.output, r.output


def test_an_s3_witness_gets_every_checkpoint_and_holds_the_store(
    home: Path, s3: Buckets, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = s3.spec(s3.locked)
    monkeypatch.setenv("SENTRAIL_WITNESS", spec)
    ingest("prod-delete.json", "exfil-base64.json", "triage-restart.json")
    pushed = len(versions(s3.client, s3.locked))
    assert pushed >= 3  # each ingest signed at least once
    r = run("log", "verify", "--witness", spec)
    assert r.exit_code == 0, r.output
    assert f"consistent with {pushed} outside checkpoint(s)" in r.output, r.output
    with db(home) as conn:
        conn.execute("DELETE FROM events WHERE seq >= 2")
        conn.execute("DELETE FROM checkpoints WHERE size > 2")
    r = run("log", "verify", "--witness", spec)
    assert r.exit_code == 1 and "cut off" in r.output, r.output


def test_a_witness_that_cannot_be_read_is_an_input_error(
    home: Path, tmp_path: Path, s3: Buckets, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest("prod-delete.json")
    for spec, said in [
        ("s3://Not_A_Bucket", "s3://BUCKET[/PREFIX]"),
        ("s3://no-such-bucket-here/x", "no bucket 'no-such-bucket-here'"),
        (str(tmp_path / "no-witness.log"), "cannot read"),
    ]:
        r = run("log", "verify", "--witness", spec)
        assert r.exit_code == 2 and said in r.stderr, (spec, r.output)
    monkeypatch.setenv("SENTRAIL_WITNESS_S3_ENDPOINT", "http://127.0.0.1:9")
    r = run("log", "verify", "--witness", s3.spec(s3.locked))
    assert r.exit_code == 2 and "cannot list the checkpoints" in r.stderr, r.output
    assert ACCESS_KEY not in r.output and SECRET_KEY not in r.output
    monkeypatch.setenv("SENTRAIL_WITNESS", "s3://Not_A_Bucket")  # a writer refuses to start
    r = run("ingest", str(TRACES / "exfil-base64.json"), "--tenant", "acme", "--app", "pay")
    assert r.exit_code == 2 and "s3://BUCKET[/PREFIX]" in r.stderr, r.output


def test_deep_names_every_index_row_that_disagrees(home: Path) -> None:
    ingest("prod-delete.json", "exfil-base64.json")
    r = run("ingest", str(STREAM), "--tenant", "acme", "--app", "web")
    assert r.exit_code == 0, r.output
    r = run("log", "verify", "--deep")
    assert r.exit_code == 0 and "3 run(s) re-derived" in r.output, r.output
    with db(home) as conn:
        conn.execute("UPDATE runs SET verdict = 'allowed' WHERE run_id = 'run-e4b70d19-8c2f'")
        (fid,) = conn.execute(
            "SELECT finding_id FROM findings WHERE app_id = 'web' LIMIT 1"
        ).fetchone()
        conn.execute("UPDATE findings SET resolved = 1 WHERE finding_id = ?", (fid,))
        (gone,) = conn.execute(
            "SELECT finding_id FROM findings WHERE run_id = 'run-e4b70d19-8c2f' LIMIT 1"
        ).fetchone()
        conn.execute("DELETE FROM findings WHERE finding_id = ?", (gone,))
    assert run("log", "verify").exit_code == 0  # the log itself is untouched
    r = run("log", "verify", "--deep")
    assert r.exit_code == 1, r.output
    out = r.output
    assert "app pay: run run-e4b70d19-8c2f: the verdict is 'allowed' in the index" in out
    assert f"finding {gone}" in out and "missing from the index (deleted)" in out
    assert f"finding {fid} is marked resolved in the index without a triage event" in out
    assert "3 index row(s) disagree" in out
