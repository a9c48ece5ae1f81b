"""Replay figures: stored runs replayed under a new policy bundle, against ``trace analyze`` of
the same runs under the same bundle, measured in the same run.

- ``analyze_runs_per_s``: each run's trace document decoded and judged (what
  ``trace analyze`` does per file, without the file system);
- ``replay_runs_per_s``: the same runs, stored in a SQLite log (judged under the example
  policy, which the store keeps by hash), replayed under the new bundle as
  ``sentrail replay --since`` does in one process: each run's events read back from the
  log, folded, its stored judgement read and diffed, the diffs summed;
- ``replay_ratio``: replay rate / analyze rate (target >= 0.8: replay costs little more
  than analysis), by wall time; ``replay_cpu_ratio`` the same by CPU time (steadier on a
  shared machine). Each side is the best of three, taken in turns.

Usage: ``python benchmarks/replay_bench.py [--runs N]`` (default 10,000, or
``$BENCH_REPLAY_RUNS``). Prints JSON. No figure is asserted by a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).parent))
from corpus import ensure_corpus
from sentrail.engine.engine import Engine
from sentrail.evidence.note import Signer
from sentrail.model.decode import decode_run
from sentrail.model.events import StepEvent
from sentrail.policy.compiled import Policy
from sentrail.policy.load import load_policy
from sentrail.runtime.pipeline import RunUpdate
from sentrail.runtime.replay import Replayer, ReplaySpec, fleet_runs, replay_fleet
from sentrail.runtime.store_writer import StoreWriter
from sentrail.store.base import NewEvent
from sentrail.store.records import RecordTx, records
from sentrail.store.sql import SqlTx
from sentrail.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "benchmarks" / ".corpus"
POLICY = ROOT / "examples" / "policy.yaml"
SIGNER = Signer("bench.sentrail.local/log", Ed25519PrivateKey.generate())
TENANT, APP = "bench", "app"
BATCH = 500


def new_policy(tmp: Path) -> Path:
    """The example bundle with one rule removed and one deny added: a policy change."""
    text = POLICY.read_text()
    start, end = text.index("  - id: no-large-transfers"), text.index("  - id: no-shell-in-prod")
    text = text[:start] + text[end:]
    text = text.replace(
        "  - id: write-without-reasoning",
        "  - id: no-outside-email\n"
        "    description: No email outside the company\n"
        "    severity: critical\n"
        '    tools: ["email.*"]\n'
        '    condition: has(params.to) && !params.to.endsWith("@corp.example.com")\n\n'
        "  - id: write-without-reasoning",
    )
    path = tmp / "new-policy.yaml"
    path.write_text(text)
    return path


def store_runs(store: SqliteStore, blobs: list[bytes], engine: Engine) -> None:
    """Every trace stored as one ``trace`` event with its index rows, as ingest does (in
    batches of transactions, to keep the setup short)."""
    sha = engine.policy.sha256
    assert sha is not None
    with records(store, write=True) as rtx:
        rtx.put_policy(sha, POLICY.read_bytes(), time.time())
    writer = StoreWriter(store, policy_sha256=sha)
    for i in range(0, len(blobs), BATCH):
        events, updates = [], []
        for data in blobs[i : i + BATCH]:
            run = decode_run(data)
            h = hashlib.sha256(data).hexdigest()
            folder = engine.start(run.header())
            for s in run.steps:
                folder.feed(StepEvent(run_id=run.run_id, step=s))
            updates.append(RunUpdate(TENANT, APP, folder.run, folder.close(), h))
            events.append(
                NewEvent(TENANT, APP, run.run_id, f"{run.run_id}/trace/{h[:32]}", "trace", data)
            )

        def index(tx: object, acks: object, updates: list[RunUpdate] = updates) -> None:
            assert isinstance(tx, SqlTx)
            writer.write(RecordTx(tx), updates)

        store.append(events, also=index)


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_REPLAY_RUNS", "10000")))
    args = ap.parse_args()
    paths = ensure_corpus(CORPUS, args.runs)[: args.runs]
    blobs = [p.read_bytes() for p in paths]
    with tempfile.TemporaryDirectory() as tmp:
        changed = new_policy(Path(tmp))
        after = Engine(Policy(load_policy(str(changed))))
        store = SqliteStore(str(Path(tmp) / "bench.db"), SIGNER)
        store.migrate()
        t0 = time.perf_counter()
        store_runs(store, blobs, Engine(Policy(load_policy(str(POLICY)))))
        setup_s = time.perf_counter() - t0
        rows = fleet_runs(store, TENANT)
        assert len(rows) == len(blobs)
        spec = ReplaySpec(policy_path=str(changed))
        summaries = []

        def analyze() -> None:
            for b in blobs:
                after.analyze(decode_run(b))

        def replay() -> None:
            replayer = Replayer.open(store, spec)
            summaries.append(replay_fleet(replayer, TENANT, fleet_runs(store, TENANT)))

        # Alternate the two, best of three each: the machine is shared and noisy.
        a_wall, a_cpu, r_wall, r_cpu = [], [], [], []
        for _ in range(3):
            w, c = timed(analyze)
            a_wall.append(w)
            a_cpu.append(c)
            w, c = timed(replay)
            r_wall.append(w)
            r_cpu.append(c)
        store.close()
    analyze_s, replay_s = min(a_wall), min(r_wall)
    s = summaries[-1]
    n = len(blobs)
    figures = {
        "replay_runs": n,
        "setup_store_s": round(setup_s, 1),
        "analyze_runs_per_s": round(n / analyze_s),
        "replay_runs_per_s": round(n / replay_s),
        "replay_ratio": round(analyze_s / replay_s, 3),
        "replay_cpu_ratio": round(min(a_cpu) / min(r_cpu), 3),
        "replay_changed_runs": s.changed,
        "replay_newly_unauthorized": s.newly_unauthorized,
        "targets": {"replay_ratio": 0.8},
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
