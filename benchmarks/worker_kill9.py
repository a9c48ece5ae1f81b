"""kill -9 rounds of real ``sentrail worker`` processes while ``sentrail emit`` publishes at
a steady rate to the local NATS (nats://127.0.0.1:4222), counted against the stream.

One worker killed 30 times (right after a fetch or right after its store commit, chosen at
random), then two partitioned workers killed one at a time. Prints the figures as JSON
(events lost and doubled, runs not indexed, findings not stored, never emitted, emitted
twice, the checkpoint against the log). Nothing is asserted here; the test
``tests/stream/test_worker_kill9.py`` asserts a few rounds. Figures depend on the machine.

Usage: ``python benchmarks/worker_kill9.py [--rounds 30] [--rate 100]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.stream.kill9 import Harness


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--nats", default="nats://127.0.0.1:4222")
    args = ap.parse_args()
    out: dict[str, object] = {}
    for partitions in (1, 2):
        with tempfile.TemporaryDirectory() as d:
            harness = Harness(args.nats, Path(d), partitions, args.rate, seed=partitions)
            out[f"partitions_{partitions}"] = harness.run(args.rounds).as_dict()
        print(json.dumps({f"partitions_{partitions}": out[f"partitions_{partitions}"]}), flush=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
