"""What a new user trips on, answered by one clear error each (issue 10, item 16)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import POLICY, TRACES, Cli


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_postgresql_is_one_error_naming_host_and_port(cli: Cli) -> None:
    port = _closed_port()  # nothing listens there any more: connection refused
    r = cli("db", "upgrade", "--database", f"postgresql://127.0.0.1:{port}/test")
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert lines == [
        f"error: cannot connect to PostgreSQL at 127.0.0.1:{port} (database test): "
        "Connection refused"
    ], r.output
    bad = cli("log", "verify", "--database", "postgresql://127.0.0.1/test?bogus=1")
    assert bad.exit_code == 2 and "not a PostgreSQL URL" in bad.output


def test_serve_on_a_busy_port_is_one_error_and_never_says_it_is_serving(home: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "sentrail", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    assert done.returncode == 2, done.stderr
    assert "serving on" not in done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: the address is already in use "
        "(another process listens there; --port)"
    ]


def test_policy_test_on_a_copied_bundle_names_the_path_it_tried(cli: Cli, tmp_path: Path) -> None:
    copy = tmp_path / "mine" / "policy.yaml"
    copy.parent.mkdir()
    shutil.copy(POLICY, copy)
    r = cli("policy", "test", copy)
    assert r.exit_code == 2
    tried = copy.parent / "traces" / "prod-delete.json"
    assert f"cannot analyse {tried}: cannot read" in r.output
    assert f"relative to the bundle's directory ({copy.parent})" in r.output
    shutil.copytree(TRACES, copy.parent / "traces")  # examples copied along: it works
    assert cli("policy", "test", copy).exit_code == 0


def test_a_folder_without_trace_files_is_an_error_not_an_empty_success(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("not a trace")
    r = cli("trace", "analyze", str(tmp_path))
    assert r.exit_code == 2
    assert f"error: no trace files in {tmp_path} (looked for *.json" in r.output
