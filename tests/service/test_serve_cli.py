"""`sentrail apikey` and a real `sentrail serve` process on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from sentrail.cli.app import app
from tests.service.conftest import example

runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_apikey_commands_and_a_served_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("SENTRAIL_HOME", str(home))
    r = runner.invoke(app, ["apikey", "create", "--tenant", "acme", "--app", "pay"])
    assert r.exit_code == 0, r.output
    key = r.stdout.strip().splitlines()[0]
    assert key.startswith("sk_")
    key_id = key.split("_")[1]
    listed = runner.invoke(app, ["apikey", "list"])
    assert key_id in listed.stdout and "active" in listed.stdout and key not in listed.stdout
    bad = runner.invoke(
        app, ["apikey", "create", "--tenant", "acme", "--app", "pay", "--scopes", "ingest,root"]
    )
    assert bad.exit_code == 2 and "unknown scope 'root'" in bad.output
    bad = runner.invoke(app, ["apikey", "create", "--tenant", "../x", "--app", "pay"])
    assert bad.exit_code == 2

    port = _free_port()
    env = {**os.environ, "SENTRAIL_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sentrail", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "the service did not come up"
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {key}"}
        r2 = httpx.post(
            f"{base}/v1/apps/pay/traces",
            content=example("prod-delete.json"),
            headers=headers,
            timeout=30,
        )
        assert r2.status_code == 201, r2.text
        assert r2.json()["verdict"] == "unauthorized"
        assert (
            httpx.get(
                f"{base}/v1/apps/pay/traces", headers={"Authorization": "Bearer x"}, timeout=10
            ).status_code
            == 401
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    revoked = runner.invoke(app, ["apikey", "revoke", key_id])
    assert revoked.exit_code == 0, revoked.output
    again = runner.invoke(app, ["apikey", "revoke", key_id])
    assert again.exit_code == 2
    verify = runner.invoke(app, ["log", "verify"])
    assert verify.exit_code == 0 and "ok: tenant acme: 1 event(s)" in verify.output
