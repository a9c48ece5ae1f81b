"""kill -9 rounds of a real ``sentrail serve`` while a client posts live events to it.

For each backend (SQLite, and PostgreSQL in a fresh database on the local server): a
client posts NDJSON event batches (``run_started``, steps, ``run_completed`` of a new run
each) to ``POST /v1/apps/{app}/events`` as fast as the service answers; at a random
moment the service is killed with SIGKILL and started again, ``--rounds`` times. A batch is
*acknowledged* when the service answered 2xx. Afterwards the store is counted against
what was acknowledged:

- ``events_lost``: acknowledged event ids that are not stored (must be 0);
- ``events_doubled``: event ids stored more than once;
- ``completed_runs_not_indexed``: acknowledged complete runs without a run index row;
- ``log_verify``: the exit code of ``sentrail log verify`` on the tenant (0 = ok), after a
  last clean start of the service (which checkpoints a tenant whose log is ahead).

Prints JSON per backend. Nothing here is asserted by a test (``tests/store/test_kill9.py``
asserts the store's side); figures depend on the machine.

Usage: ``python benchmarks/serve_kill9.py [--rounds 40] [--backend sqlite|postgres|both]``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

from sentrail.evidence.keys import KeyStore
from sentrail.store.factory import open_store
from sentrail.store.records import records

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "examples" / "events" / "triage-restart.ndjson"
PG_ADMIN = os.environ.get("SENTRAIL_TEST_PG", "postgresql://127.0.0.1:5432/test")
TENANT, APP = "kill9", "live"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _batch(run_id: str) -> bytes:
    """The example run's events, renamed to ``run_id`` with event ids of their own."""
    lines = []
    for i, line in enumerate(EVENTS.read_bytes().splitlines()):
        event = json.loads(line)
        event["run_id"] = run_id
        event["event_id"] = f"{run_id}/{i}"
        lines.append(json.dumps(event).encode())
    return b"\n".join(lines) + b"\n"


class Client(threading.Thread):
    """Posts batches until stopped; records what the service acknowledged."""

    def __init__(self, key: str) -> None:
        super().__init__(daemon=True)
        self.key = key
        self.base = ""
        self.stop = threading.Event()
        self.acked: list[str] = []
        self.acked_runs: list[str] = []
        self.refused: collections.Counter[int] = collections.Counter()
        self.failed = 0

    def run(self) -> None:
        n = 0
        with httpx.Client(timeout=10) as http:
            while not self.stop.is_set():
                if not self.base:
                    time.sleep(0.01)
                    continue
                run_id = f"run-{n:06d}-{uuid.uuid4().hex[:6]}"
                n += 1
                body = _batch(run_id)
                try:
                    r = http.post(
                        f"{self.base}/v1/apps/{APP}/events",
                        content=body,
                        headers={"Authorization": f"Bearer {self.key}"},
                    )
                except httpx.TransportError:
                    self.failed += 1
                    time.sleep(0.02)
                    continue
                if r.is_success:
                    self.acked.extend(a["event_id"] for a in r.json()["acknowledged"])
                    self.acked_runs.extend(r.json()["completed_runs"])
                else:
                    self.refused[r.status_code] += 1


def _serve(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    """A started service and its port (another port when the one picked was taken)."""
    for _ in range(5):
        port = _free_port()
        log = tempfile.TemporaryFile()  # noqa: SIM115 (the child writes to it until killed)
        proc = subprocess.Popen(
            [sys.executable, "-m", "sentrail", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    return proc, port
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        proc.kill()
        proc.wait()
        log.seek(0)
        why = log.read().decode(errors="replace")
        if "address" not in why.lower():  # not a port taken meanwhile: a real failure
            raise SystemExit(f"serve did not come up (exit {proc.returncode}):\n{why}")
    raise SystemExit("serve did not come up: no free port")


def _sentrail(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentrail", *args], env=env, capture_output=True, text=True
    )


def run(backend: str, url: str, home: Path, rounds: int, seed: int) -> dict[str, object]:
    env = {**os.environ, "SENTRAIL_HOME": str(home), "SENTRAIL_DATABASE": url}
    made = _sentrail(env, "apikey", "create", "--tenant", TENANT, "--app", APP)
    if made.returncode != 0:
        raise SystemExit(made.stderr)
    client = Client(made.stdout.split()[0])
    client.start()
    rng = random.Random(seed)
    t0 = time.monotonic()
    for _ in range(rounds):
        proc, port = _serve(env)
        client.base = f"http://127.0.0.1:{port}"
        time.sleep(rng.uniform(0.3, 2.0))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        client.base = ""
    client.stop.set()
    client.join()
    seconds = time.monotonic() - t0
    # A last clean start: it checkpoints the tenant whose log is ahead, then stops.
    proc, _ = _serve(env)
    time.sleep(2.5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    verify = _sentrail(env, "log", "verify", "--tenant", TENANT)

    store = open_store(url, KeyStore(home / "keys").active())
    try:
        runs = {eid.rsplit("/", 1)[0] for eid in client.acked}
        stored: collections.Counter[str] = collections.Counter()
        for run_id in runs:
            stored.update(e.event_id for e in store.run_events(TENANT, APP, run_id))
        with records(store) as rtx:
            indexed = {r.run_id for r in rtx.runs_of(TENANT)}
        latest = store.latest_checkpoint(TENANT)
        log_size = len(store.leaf_hashes(TENANT))
    finally:
        store.close()
    return {
        "backend": backend,
        "rounds": rounds,
        "seconds": round(seconds, 1),
        "events_acknowledged": len(client.acked),
        "runs_acknowledged_complete": len(client.acked_runs),
        "events_lost": sum(1 for e in client.acked if stored[e] == 0),
        "events_doubled": sum(1 for n in stored.values() if n > 1),
        "completed_runs_not_indexed": sum(1 for r in client.acked_runs if r not in indexed),
        "requests_failed_by_the_kill": client.failed,
        "requests_refused": dict(client.refused),
        "log_size": log_size,
        "checkpoint_size": latest.size if latest else 0,
        "log_verify_exit": verify.returncode,
        "log_verify": verify.stdout.strip().splitlines()[-1:],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    args = ap.parse_args()
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as d:
        if args.backend in ("sqlite", "both"):
            home = Path(d) / "sqlite"
            url = f"sqlite:///{home / 'sentrail.db'}"
            out["sqlite"] = run("sqlite", url, home, args.rounds, seed=1)
            print(json.dumps(out["sqlite"]), flush=True)
        if args.backend in ("postgres", "both"):
            import psycopg

            db = f"sentrail_kill9_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f"CREATE DATABASE {db}")
            try:
                url = PG_ADMIN.rsplit("/", 1)[0] + "/" + db
                out["postgres"] = run("postgres", url, Path(d) / "pg", args.rounds, seed=2)
                print(json.dumps(out["postgres"]), flush=True)
            finally:
                with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                    admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
