"""A bounded key-guessing attack on a real ``sentrail serve``, on loopback only.

What it measures, while ``--clients`` threads send ``--attempts`` requests in all, each
with a wrong secret for a key id that exists (so every one would cost an argon2id check),
spread over at least ``--seconds`` (each thread pauses between its attempts, so a service
that answers fast is still attacked for the whole window):

- ``rss_idle_mb`` / ``rss_peak_mb``: the server's resident memory before and during the
  attack (``VmRSS`` / ``VmHWM`` of its process);
- ``legit_p50_ms`` / ``legit_p99_ms``: the latency of a legitimate request (a valid key,
  ``GET /v1/apps/{app}/traces``) made one after another during the attack, from another
  loopback address than the attack's (127.0.0.4; the attackers share 127.0.0.1);
- ``attack_statuses``: how the attack's requests were answered (401, 429, 503, ...);
- ``unknown_id_ms`` / ``known_id_ms``: the median time of a wrong secret for a key id that
  does not exist and for one that does, from a fresh client address each (127.0.0.2 and
  127.0.0.3), so the rate limits of the attack do not answer for them: equal costs mean
  timing does not say which ids exist.

The service runs with its production argon2id profile (``sentrail apikey create``) in a
temporary ``SENTRAIL_HOME``. Every request has a timeout and the attack has a fixed
count, so the run stops by itself. Nothing is asserted; prints JSON. Figures from a
shared machine are noisy: compare runs made on the same machine at the same time.

    .venv/bin/python benchmarks/auth_attack.py --clients 32 --attempts 320 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

APP = "bench"
ATTACK_ADDRESS = "127.0.0.1"  # every attacking thread: one client address
LEGIT_ADDRESS = "127.0.0.4"  # the legitimate client: another host, as it would be


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _wait_healthy(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the service exited before it was up")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("the service did not come up within 60 s")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _wrong(key_id: str) -> str:
    return f"sk_{key_id}_{secrets.token_urlsafe(32)}"


def _timed_probe(base: str, token: str, source: str, n: int) -> float:
    """Median milliseconds of ``n`` requests with ``token`` from address ``source``."""
    times = []
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=30) as client:
        for _ in range(n):
            start = time.perf_counter()
            client.get(f"{base}/v1/apps/{APP}/traces", headers={"Authorization": f"Bearer {token}"})
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def run(clients: int, attempts: int, seconds: float) -> dict[str, object]:
    home = Path(tempfile.mkdtemp(prefix="sentrail-auth-bench-"))
    env = {**os.environ, "SENTRAIL_HOME": str(home)}
    cli = [sys.executable, "-m", "sentrail"]
    made = subprocess.run(
        [*cli, "apikey", "create", "--tenant", "bench", "--app", APP, "--scopes", "read"],
        env=env,
        capture_output=True,
        check=True,
    )
    key = made.stdout.decode().strip().splitlines()[0]
    key_id = key.split("_")[1]
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [*cli, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_healthy(base, proc)
        good = {"Authorization": f"Bearer {key}"}
        with httpx.Client(timeout=30) as client:
            for _ in range(5):  # warm up: the first verification, caches
                client.get(f"{base}/v1/apps/{APP}/traces", headers=good)
        rss_idle = _rss_kb(proc.pid, "VmRSS")
        known_ms = _timed_probe(base, _wrong(key_id), "127.0.0.3", 5)
        unknown_ms = _timed_probe(base, _wrong(secrets.token_hex(8)), "127.0.0.2", 5)

        statuses: Counter[int | str] = Counter()
        lock = threading.Lock()
        per_client = max(1, attempts // clients)
        pause = seconds / per_client  # each attacker spreads its attempts over the window
        stop = threading.Event()
        peak = [rss_idle]

        def attacker() -> None:
            transport = httpx.HTTPTransport(local_address=ATTACK_ADDRESS)
            with httpx.Client(timeout=30, transport=transport) as client:
                for _ in range(per_client):
                    try:
                        r = client.get(
                            f"{base}/v1/apps/{APP}/traces",
                            headers={"Authorization": f"Bearer {_wrong(key_id)}"},
                        )
                        status: int | str = r.status_code
                    except httpx.TransportError as exc:
                        status = type(exc).__name__
                    with lock:
                        statuses[status] += 1
                    time.sleep(pause)

        def sampler() -> None:
            while not stop.wait(0.05):
                try:
                    peak[0] = max(peak[0], _rss_kb(proc.pid, "VmRSS"))
                except OSError:
                    return

        legit: list[float] = []
        legit_status: Counter[int] = Counter()
        threads = [threading.Thread(target=attacker) for _ in range(clients)]
        watcher = threading.Thread(target=sampler)
        watcher.start()
        started = time.perf_counter()
        for t in threads:
            t.start()
        legit_transport = httpx.HTTPTransport(local_address=LEGIT_ADDRESS)
        with httpx.Client(timeout=60, transport=legit_transport) as client:
            while any(t.is_alive() for t in threads):
                start = time.perf_counter()
                r = client.get(f"{base}/v1/apps/{APP}/traces", headers=good)
                legit.append((time.perf_counter() - start) * 1000)
                legit_status[r.status_code] += 1
                time.sleep(0.02)
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        stop.set()
        watcher.join()
        return {
            "clients": clients,
            "attempts": per_client * clients,
            "attack_s": round(elapsed, 2),
            "attack_statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
            "rss_idle_mb": round(rss_idle / 1024, 1),
            "rss_peak_mb": round(max(peak[0], _rss_kb(proc.pid, "VmHWM")) / 1024, 1),
            "legit_requests": len(legit),
            "legit_statuses": {str(k): v for k, v in sorted(legit_status.items())},
            "legit_p50_ms": round(_percentile(legit, 0.5), 1),
            "legit_p99_ms": round(_percentile(legit, 0.99), 1),
            "known_id_ms": round(known_ms, 2),
            "unknown_id_ms": round(unknown_ms, 2),
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--attempts", type=int, default=320)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    if not 1 <= args.clients <= 64 or not 1 <= args.attempts <= 2000:
        raise SystemExit("--clients 1-64 and --attempts 1-2000 keep the attack bounded")
    if not 0 <= args.seconds <= 120:
        raise SystemExit("--seconds 0-120 keeps the attack bounded")
    print(json.dumps(run(args.clients, args.attempts, args.seconds), indent=2))


if __name__ == "__main__":
    main()
