"""Dashboard figures: server time of the fleet overview over 10,000 stored runs, and of
the timeline of a 1,000-step run.

Builds a SQLite store in a temporary directory: 10,000 generated runs (the benchmark
corpus generator, starts spread over 30 days) analysed and indexed as ingestion indexes
them, and one 1,000-step trace ingested whole. Then, in process (no network), signs in
and measures each page's full request (routing, session check, queries, template
rendering) ``--repeat`` times; reports the median and the slowest. Targets: overview
< 1 s, timeline < 500 ms. Figures from a shared machine are noisy: compare within a run.

Usage: ``python benchmarks/ui_bench.py [--runs N] [--steps N] [--repeat N]``. Prints JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import msgspec
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).parent))
from corpus import make_trace
from sentrail.engine.engine import Engine
from sentrail.evidence.note import Signer
from sentrail.model.trace import Run
from sentrail.runtime.ingest import Ingestor, ToIndex
from sentrail.service.app import ServiceConfig, create_app
from sentrail.service.auth import create_key
from sentrail.store.sqlite import SqliteStore

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

SIGNER = Signer("bench.sentrail.local/log", Ed25519PrivateKey.generate())
START = 1_767_225_600  # 2026-01-01T00:00:00Z
SPAN = 30 * 86_400


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch))


def fill(store: SqliteStore, engine: Engine, runs: int) -> float:
    ingestor = Ingestor(store, engine)
    rng = random.Random(5)
    began = time.perf_counter()
    batch: list[ToIndex] = []
    for n in range(runs):
        doc = make_trace(rng, n)
        doc["started_at"] = _iso(START + SPAN * n / runs)
        run = msgspec.convert(doc, Run)
        digest = hashlib.sha256(msgspec.json.encode(doc)).hexdigest()
        batch.append(ToIndex(run, engine.analyze(run), digest))
        if len(batch) == 500:
            ingestor.index_runs("bench", "bench", batch)
            batch = []
    if batch:
        ingestor.index_runs("bench", "bench", batch)
    return time.perf_counter() - began


def long_trace(steps: int) -> bytes:
    rng = random.Random(9)
    doc = make_trace(rng, 999_999)
    base = doc["steps"]
    assert isinstance(base, list)
    out = []
    for i in range(steps):
        step = dict(base[i % len(base)])
        step["step_index"] = i
        step["timestamp"] = _iso(START + SPAN + i * 2)
        if i % 50 == 7:
            step["alternatives"] = [{"action": "wait", "rejected_reason": "the alert is live"}]
        out.append(step)
    doc["steps"] = out
    doc["run_id"] = "run-bench-long"
    doc["started_at"] = _iso(START + SPAN)
    return msgspec.json.encode(doc)


def timed(client: TestClient, url: str, repeat: int) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = client.get(url)
        times.append(time.perf_counter() - t)
        assert r.status_code == 200, (url, r.status_code)
    return {
        "median_ms": round(statistics.median(times) * 1000, 1),
        "max_ms": round(max(times) * 1000, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=1_000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.db", SIGNER)
        store.migrate()
        engine = Engine()
        fill_s = fill(store, engine, args.runs)
        long = long_trace(args.steps)
        done = Ingestor(store, engine).ingest_trace("bench", "bench", long)
        store.checkpoint("bench")
        app = create_app(store, engine, SIGNER, ServiceConfig(checkpoint_interval_s=3600))
        cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        key, _ = create_key(store, "bench", "bench", "read,triage", hasher=cheap)
        host = "http://testserver"
        with TestClient(app, base_url=host) as client:
            r = client.post(
                "/ui/login",
                data={"api_key": key},
                headers={"Origin": host},
                follow_redirects=False,
            )
            assert r.status_code == 303, r.text
            run_page = f"/ui/apps/bench/runs/{done.trace_hash}"
            figures = {
                "runs_stored": args.runs,
                "fill_s": round(fill_s, 1),
                "overview": timed(client, "/ui/apps/bench/runs", args.repeat),
                "overview_filtered_by_verdict": timed(
                    client, "/ui/apps/bench/runs?verdict=suspicious", args.repeat
                ),
                "anomaly_feed": timed(client, "/ui/apps/bench/anomalies", args.repeat),
                "permission_heatmap_30d": timed(
                    client, "/ui/apps/bench/permissions?window=30d", args.repeat
                ),
                "timeline_steps": args.steps,
                "timeline": timed(client, run_page, args.repeat),
                "provenance_json": timed(client, run_page + "/provenance.json", args.repeat),
                "targets_ms": {"overview": 1000, "timeline": 500},
            }
        store.close()
    print(json.dumps({"ui": figures}, indent=2))


if __name__ == "__main__":
    main()
