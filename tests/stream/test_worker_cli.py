"""A real `sentrail worker` process on NATS: findings printed, alerts delivered to a local
webhook, metrics on loopback, the partition lease refused to a second worker, clean stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import msgspec

from sentrail.bus.nats import NatsBus
from sentrail.model.decode import decode_run
from sentrail.model.events import events_of
from tests.bus.conftest import NATS_URL

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "traces"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        _Hook.received.append(body)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


async def _publish(tenant: str) -> None:
    bus = await NatsBus.connect(NATS_URL)
    run = decode_run((EXAMPLES / "prod-delete.json").read_bytes())
    for i, ev in enumerate(events_of(run)):
        await bus.publish(tenant, run.agent_id, f"{run.run_id}/{i}", msgspec.json.encode(ev))
    await bus.close()


async def _drop(tenant: str) -> None:
    bus = await NatsBus.connect(NATS_URL)
    await bus.delete_stream(tenant)
    await bus.close()


def _wait_for(pred: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_worker_process_end_to_end(tmp_path: Path) -> None:
    tenant = f"wcli-{uuid.uuid4().hex[:10]}"
    hook = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text(
        "version: 1\nsinks:\n  - name: soc\n    type: webhook\n    url_env: HOOK_URL\n"
        "    secret_env: HOOK_SECRET\n"
    )
    metrics = _port()
    env = {
        **os.environ,
        "SENTRAIL_HOME": str(tmp_path / "home"),
        "HOOK_URL": f"http://127.0.0.1:{hook.server_port}/alerts",
        "HOOK_SECRET": "s3cret",
    }
    cmd = [
        sys.executable,
        "-m",
        "sentrail",
        "worker",
        "--bus",
        NATS_URL,
        "--tenant",
        tenant,
        "--alerts",
        str(alerts),
        "--metrics-port",
        str(metrics),
        "--lease-ttl",
        "3",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    second = None
    try:
        _wait_for(lambda: _up(metrics), "the worker's metrics endpoint")
        second = subprocess.run(cmd[:-4], env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and "is held by" in second.stderr
        asyncio.run(_publish(tenant))
        _wait_for(lambda: _Hook.received, "an alert at the webhook")
        alert = json.loads(_Hook.received[0])
        assert "prod" in json.dumps(alert) or alert
        text = httpx.get(f"http://127.0.0.1:{metrics}/metrics", timeout=5).text
        assert 'sentrail_worker_total{what="events"}' in text
        assert 'sentrail_alerts_total{outcome="sent"}' in text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        hook.shutdown()
        asyncio.run(_drop(tenant))
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()  # 143, as the README says
    assert b"[CRITICAL]" in out
    assert b"stopped:" in err


def _up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
