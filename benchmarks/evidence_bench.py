"""Evidence figures: Merkle append rate and offline verification of a 100,000-event bundle.

Builds, in a temporary directory, a tenant log whose run has ``--events`` events (version 2
leaves: app, time received, sealed flag; plus a few events of other runs interleaved), a
signed checkpoint of the tenant's log origin and the run's bundle, then
times ``verify_bundle``. Prints JSON: ``merkle_append_per_s``, ``bundle_verify_s`` and
sizes. Usage: ``python benchmarks/evidence_bench.py [--events N]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sentrail.evidence.bundle import EventRecord, build_bundle
from sentrail.evidence.chain import GENESIS, EventLeaf
from sentrail.evidence.checkpoint import Checkpoint, log_signer, sign_checkpoint
from sentrail.evidence.merkle import MerkleTree, leaf_hash
from sentrail.evidence.note import Signer
from sentrail.evidence.verify import verify_bundle

ORIGIN = "bench.sentrail.local/log"


def merkle_append_per_s(n: int = 200_000) -> float:
    leaves = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(n)]
    tree = MerkleTree()
    start = time.perf_counter()
    for h in leaves:
        tree.append(h)
    return n / (time.perf_counter() - start)


def build(directory: Path, n_events: int) -> tuple[Path, str]:
    signer = Signer(ORIGIN, Ed25519PrivateKey.generate())
    tree = MerkleTree()
    records: list[EventRecord] = []
    prev = GENESIS
    for i in range(n_events + n_events // 50):
        seq = len(tree)
        if i % 51 == 50:  # another run's event, interleaved in the tenant log
            other = EventLeaf("t1", seq, "other", f"o{i}", "step", bytes(32), GENESIS)
            tree.append(leaf_hash(other.leaf_data()))
            continue
        payload = json.dumps(
            {"seq": seq, "tool": "metrics.query", "args": {"q": "x" * (i % 200)}}
        ).encode()
        digest = hashlib.sha256(payload).digest()
        at = 1_760_000_000.0 + seq / 1000
        leaf = EventLeaf("t1", seq, "run-1", f"e{i}", "step", digest, prev, "app", at, True, 2)
        chained = leaf.chain_hash()
        tree.append(leaf_hash(leaf.leaf_data()))
        records.append(
            EventRecord(
                seq, "run-1", f"e{i}", "step", payload, digest, prev, chained, None,
                "app", at, True, 2,
            )
        )  # fmt: skip
        prev = chained
    log_key = log_signer(signer, "t1")
    note = sign_checkpoint(Checkpoint(log_key.name, len(tree), tree.root()), log_key)
    path = directory / "bundle.zip"
    build_bundle(
        path,
        tenant="t1",
        run_id="run-1",
        events=records,
        tree=tree,
        checkpoint_note=note,
        signer=signer,
        findings=b'{"findings": [], "decisions": []}',
        tree_size=records[-1].seq + 1,
    )
    return path, signer.verifier_key()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path, key = build(Path(tmp), args.events)
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        report = verify_bundle(path, trusted_key=key)
        verify_s = time.perf_counter() - start
        size = os.path.getsize(path)
    print(
        json.dumps(
            {
                "events": report.events,
                "tree_size": report.tree_size,
                "checkpoint_size": report.checkpoint_size,
                "bundle_bytes": size,
                "bundle_build_s": round(build_s, 3),
                "bundle_verify_s": round(verify_s, 3),
                "merkle_append_per_s": round(merkle_append_per_s()),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
