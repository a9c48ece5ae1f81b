"""Store figures: durable ingest rate on SQLite and PostgreSQL against the raw parse.

Generates step events from the benchmark corpus generator, encodes them in the canonical
form the CLI stores (msgspec JSON of the typed event), then measures, in the same run:

- ``raw_parse_events_per_s``: ``msgspec.json.decode`` of every event into its type;
- ``ingest_events_per_s``: ``Store.append`` in batches of 1,000 (one durable transaction
  each: SQLite WAL + synchronous=FULL, PostgreSQL synchronous_commit=on), with the run
  chains, the Merkle tree and a signed checkpoint every 1,000 events;
- ``ingest_ratio``: ingest rate / raw parse rate.

Usage: ``python benchmarks/store_bench.py [--events N] [--pg URL] [--no-pg]``. Prints JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).parent))
from corpus import make_trace
from sentrail.evidence.note import Signer
from sentrail.model.events import Event, RunCompleted, RunStarted, events_of
from sentrail.model.trace import Run
from sentrail.store.base import NewEvent
from sentrail.store.core import LogStore
from sentrail.store.log_verify import verify_log
from sentrail.store.sqlite import SqliteStore

SIGNER = Signer("bench.sentrail.local/log", Ed25519PrivateKey.generate())
BATCH = 1000


def make_events(n: int) -> list[NewEvent]:
    rng = random.Random(11)
    out: list[NewEvent] = []
    i = 0
    while len(out) < n:
        run = msgspec.convert(make_trace(rng, i), Run)
        for e in events_of(run):
            payload = msgspec.json.encode(e)
            kind = (
                "run_started"
                if isinstance(e, RunStarted)
                else "run_completed"
                if isinstance(e, RunCompleted)
                else "step"
            )
            eid = f"{e.run_id}/{kind}/{hashlib.sha256(payload).hexdigest()[:32]}"
            out.append(NewEvent("bench", "app", e.run_id, eid, kind, payload))
        i += 1
    return out[:n]


def raw_rate(events: list[NewEvent]) -> float:
    decode = msgspec.json.Decoder(Event).decode
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for e in events:
            decode(e.payload)
        best = min(best, time.perf_counter() - t0)
    return len(events) / best


def ingest_rate(store: LogStore, events: list[NewEvent]) -> float:
    store.migrate()
    t0 = time.perf_counter()
    for i in range(0, len(events), BATCH):
        store.append(events[i : i + BATCH])
    elapsed = time.perf_counter() - t0
    report = verify_log(store, "bench", [SIGNER.verifier_key()])
    assert report.problem is None and report.size == len(events), report
    return len(events) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--pg", default="postgresql://127.0.0.1:5432/test")
    ap.add_argument("--no-pg", action="store_true")
    args = ap.parse_args()
    events = make_events(args.events)
    raw = raw_rate(events)
    figures: dict[str, object] = {
        "events": len(events),
        "payload_bytes_mean": round(sum(len(e.payload) for e in events) / len(events)),
        "raw_parse_events_per_s": round(raw),
    }
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.db", SIGNER)
        try:
            rate = ingest_rate(store, events)
        finally:
            store.close()
    figures["sqlite"] = {"ingest_events_per_s": round(rate), "ingest_ratio": round(rate / raw, 4)}
    if not args.no_pg:
        import psycopg

        from sentrail.store.postgres import PostgresStore

        schema = f"bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(args.pg, autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {schema}")
            try:
                pg = PostgresStore(args.pg, SIGNER, schema=schema)
                try:
                    rate = ingest_rate(pg, events)
                finally:
                    pg.close()
            finally:
                admin.execute(f"DROP SCHEMA {schema} CASCADE")
        figures["postgres"] = {
            "ingest_events_per_s": round(rate),
            "ingest_ratio": round(rate / raw, 4),
        }
    figures["targets"] = {"sqlite_ingest_events_per_s": 50_000}
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
