"""kill -9 while ingesting: no acknowledged event is lost and the store still verifies."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from sentrail.evidence.keys import KeyStore
from sentrail.store.log_verify import verify_log
from sentrail.store.sqlite import SqliteStore

CHILD = r"""
import os, sys
from pathlib import Path
from sentrail.evidence.keys import KeyStore
from sentrail.store.base import NewEvent
from sentrail.store.sqlite import SqliteStore

db, keys = sys.argv[1], sys.argv[2]
store = SqliteStore(db, KeyStore(Path(keys)).active(), checkpoint_every=50)
store.migrate()
pid = os.getpid()
i = 0
while True:
    batch = [
        NewEvent(
            "t1", "default", f"run-{pid}-{(i + k) % 4}", f"{pid}-{i + k}", "step",
            b"x" * (i % 97 + k),
        )
        for k in range(5)
    ]
    for ack in store.append(batch):
        sys.stdout.write(f"{ack.seq}\n")
    sys.stdout.flush()
    i += 5
"""


def test_kill_9_loses_no_acknowledged_event(tmp_path: Path) -> None:
    db, keys = tmp_path / "store.db", tmp_path / "keys"
    signer = KeyStore(keys).ensure()
    acked: set[int] = set()
    rng = random.Random()
    for _ in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(db), str(keys)],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert child.stdout is not None
        first = child.stdout.readline()  # started appending
        assert first, "the child acknowledged nothing"
        acked.add(int(first))
        time.sleep(rng.uniform(0.01, 0.3))
        os.kill(child.pid, signal.SIGKILL)
        rest, _ = child.communicate()
        assert child.returncode == -signal.SIGKILL
        for line in rest.split(b"\n")[:-1]:  # a line cut by the kill has no newline
            acked.add(int(line))
    store = SqliteStore(db, signer)
    try:
        report = verify_log(store, "t1", [signer.verifier_key()])
        assert report.problem is None, str(report.problem)
        stored = {e.seq for e in store.events("t1")}
        assert acked <= stored
        assert report.size == len(stored) >= len(acked)
    finally:
        store.close()
