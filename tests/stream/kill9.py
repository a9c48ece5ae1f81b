"""kill -9 rounds of real ``sentrail worker`` processes under continuous publishing.

A real ``sentrail emit --loop --rate R`` publishes the example traces to a real NATS
JetStream (each pass renames its runs); workers (one, or two partitions) consume into one
SQLite store and, through ``SENTRAIL_TEST_KILL_AT``, SIGKILL themselves right after a
fetch or right after a store commit; each is replaced (once its lease expires) until the
rounds are done. Then the publisher stops, a last worker per partition drains the stream
and stops cleanly, and everything is counted against the stream itself:

- every event in the stream is stored exactly once (by event id);
- every finding the fold of the stream's events implies is stored once, and printed
  exactly once (at least once; never twice — every kill point is before the notifier);
- every completed run is indexed; the latest checkpoint covers the whole log.

Used by ``tests/stream/test_worker_kill9.py`` (a few rounds) and
``benchmarks/worker_kill9.py`` (30 rounds, figures as JSON).
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sentrail.bus.nats import NatsBus
from sentrail.engine.engine import Engine
from sentrail.engine.fold import Fold, OutOfOrder
from sentrail.model.decode import decode_event
from sentrail.store.records import FindingFilter, RunFilter, records
from sentrail.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "examples" / "traces"
FINDING_LINE = re.compile(rb"^\[[A-Z]+\] \S+ run (\S+) step \S+: \S+: .* \((F-[0-9a-f-]+)\)$")


@dataclass
class Figures:
    rounds: int
    partitions: int
    kills: dict[str, int] = field(default_factory=dict)
    stream_events: int = 0
    stored_events: int = 0
    events_lost: int = 0
    events_doubled: int = 0
    runs: int = 0
    runs_completed: int = 0
    completed_runs_not_indexed: int = 0
    findings_expected: int = 0
    findings_stored: int = 0
    findings_not_stored: int = 0
    findings_emitted: int = 0
    findings_never_emitted: int = 0
    findings_emitted_twice: int = 0
    publisher_restarts: int = 0
    publisher_killed: bool = False
    checkpoint_size: int = 0
    log_size: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _env(home: Path, kill: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRAIL_TEST_KILL")}
    env["SENTRAIL_HOME"] = str(home)
    if kill:
        env["SENTRAIL_TEST_KILL_AT"] = kill
    return env


def _worker_cmd(nats: str, tenant: str, partition: int, partitions: int) -> list[str]:
    return [
        sys.executable, "-m", "sentrail", "worker", "--bus", nats, "--tenant", tenant,
        "--partition", str(partition), "--partitions", str(partitions),
        "--lease-ttl", "2", "--idle-timeout", "3600", "--min-severity", "info",
    ]  # fmt: skip


class Harness:
    def __init__(self, nats: str, home: Path, partitions: int, rate: float, seed: int) -> None:
        self.nats = nats
        self.home = home
        self.partitions = partitions
        self.rate = rate
        self.rng = random.Random(seed)
        self.tenant = f"kill9-{uuid.uuid4().hex[:10]}"
        self.outputs: list[Path] = []
        self.kills: collections.Counter[str] = collections.Counter()
        self.publisher_restarts = 0
        self.publisher_killed = False
        self._n = 0

    def _start_worker(self, partition: int, kill: str | None) -> subprocess.Popen[bytes]:
        """A worker process, started again while the previous holder's lease runs out."""
        cmd = _worker_cmd(self.nats, self.tenant, partition, self.partitions)
        deadline = time.monotonic() + 60
        while True:
            self._n += 1
            out = self.home / f"worker-{self._n}.out"
            err = self.home / f"worker-{self._n}.err"
            self.outputs.append(out)
            with out.open("wb") as o, err.open("wb") as e:
                proc = subprocess.Popen(cmd, env=_env(self.home, kill), stdout=o, stderr=e)
            while proc.poll() is None and b": tenant " not in err.read_bytes():
                time.sleep(0.1)  # until it holds the lease (it says so) or exits
            if proc.poll() is None or proc.returncode == -signal.SIGKILL:
                return proc
            said = err.read_bytes()
            if b"is held by" not in said and b"cannot connect to NATS" not in said:
                raise AssertionError(f"worker failed: {err.read_text()[-2000:]}")
            # The lease is still held, or the shared NATS is restarting (other suites
            # restart it): try again.
            assert time.monotonic() < deadline, "no worker could start"
            time.sleep(0.5)

    def _publisher(self) -> subprocess.Popen[bytes]:
        cmd = [
            sys.executable, "-m", "sentrail", "emit", str(TRACES), "--to", self.nats,
            "--tenant", self.tenant, "--rate", str(self.rate), "--loop",
        ]  # fmt: skip
        log = (self.home / "emit.err").open("wb")
        return subprocess.Popen(
            cmd, env=_env(self.home, None), stdout=subprocess.DEVNULL, stderr=log
        )

    def run(self, rounds: int) -> Figures:
        """``rounds`` kills, one partition at a time (the others keep a clean worker)."""
        start = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        publisher = self._publisher()
        clean: dict[int, subprocess.Popen[bytes]] = {}
        try:
            time.sleep(1.0)
            for r in range(rounds):
                publisher = self._keep(publisher)
                partition = r % self.partitions
                self._stop(clean.pop(partition, None))
                for p in range(self.partitions):
                    if p != partition and p not in clean:
                        clean[p] = self._start_worker(p, None)
                point = self.rng.choice(["fetched", "committed"])
                proc = self._start_worker(partition, f"{point}:{self.rng.randint(1, 4)}")
                deadline = time.monotonic() + 300
                while proc.poll() is None:
                    assert time.monotonic() < deadline, f"round {r}: the worker was not killed"
                    publisher = self._keep(publisher)
                    time.sleep(0.2)
                assert proc.returncode == -signal.SIGKILL, (
                    f"round {r}: exit {proc.returncode}: "
                    + (self.home / f"worker-{self._n}.err").read_text()[-2000:]
                )
                self.kills[point] += 1
        finally:
            publisher.send_signal(signal.SIGINT)
            try:
                publisher.wait(timeout=60)
            except subprocess.TimeoutExpired:
                # `emit --loop` still publishing 60 s after SIGINT (seen before emit stopped
                # on a flag as well as by cancellation): stop it so that the stream can be
                # counted, and say so in the figures (the test asserts it did not happen).
                publisher.kill()
                publisher.wait()
                self.publisher_killed = True
            for proc in clean.values():
                self._stop(proc)
        stream = asyncio.run(self._stream())
        self._drain(len({eid for eid, _ in stream}))
        figures = self._count(stream)
        figures.kills = dict(self.kills)
        figures.publisher_restarts = self.publisher_restarts
        figures.publisher_killed = self.publisher_killed
        figures.seconds = round(time.monotonic() - start, 1)
        asyncio.run(self._drop())
        return figures

    def _keep(self, publisher: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        """The publisher, started again if it stopped (other suites restart the shared
        NATS; the publisher gives up on a failed publish)."""
        if publisher.poll() is None:
            return publisher
        self.publisher_restarts += 1
        return self._publisher()

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes] | None) -> None:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)

    # -- the end --------------------------------------------------------------------------
    async def _stream(self) -> list[tuple[str, bytes]]:
        """Every message of the tenant stream: (event id, data)."""
        bus = await NatsBus.connect(self.nats)
        consumer = await bus.consumer(self.tenant, f"audit-{uuid.uuid4().hex[:8]}")
        out: list[tuple[str, bytes]] = []
        while msgs := await consumer.fetch(1000, 2.0):
            out.extend((m.event_id, m.data) for m in msgs)
            await consumer.ack(msgs)
        await consumer.close()
        await bus.close()
        return out

    async def _drop(self) -> None:
        bus = await NatsBus.connect(self.nats)
        await bus.delete_stream(self.tenant)
        await bus.close()

    def _store(self) -> SqliteStore:
        return SqliteStore(self.home / "sentrail.db")

    def _drain(self, total: int) -> None:
        """A clean worker per partition until every event is stored, then a clean stop."""
        procs = [self._start_worker(p, None) for p in range(self.partitions)]
        deadline = time.monotonic() + 180
        store = self._store()
        try:
            while len(store.leaf_hashes(self.tenant)) < total:
                assert time.monotonic() < deadline, "the workers did not catch up"
                time.sleep(0.5)
            time.sleep(1.0)  # the last batch's notifications and acknowledgement
        finally:
            store.close()
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=120)

    def _count(self, stream: list[tuple[str, bytes]]) -> Figures:
        f = Figures(rounds=sum(self.kills.values()), partitions=self.partitions)
        f.stream_events = len({eid for eid, _ in stream})  # a restarted publisher repeats
        expected, runs, completed = _expected(stream)
        store = self._store()
        try:
            stored_ids = collections.Counter(e.event_id for e in store.events(self.tenant))
            f.stored_events = sum(stored_ids.values())
            wanted = {eid for eid, _ in stream}
            f.events_lost = len(wanted - set(stored_ids))
            f.events_doubled = sum(n - 1 for n in stored_ids.values() if n > 1)
            f.runs, f.runs_completed = len(runs), len(completed)
            with records(store) as rtx:
                indexed = {r.run_id for r in _all_runs(rtx, self.tenant)}
                stored_findings = {
                    (x.run_id, x.finding_id) for x in _all_findings(rtx, self.tenant)
                }
            f.completed_runs_not_indexed = len(completed - indexed)
            f.findings_expected = len(expected)
            f.findings_stored = len(expected & stored_findings)
            f.findings_not_stored = len(expected - stored_findings)
            latest = store.latest_checkpoint(self.tenant)
            f.checkpoint_size = latest.size if latest else 0
            f.log_size = len(store.leaf_hashes(self.tenant))
        finally:
            store.close()
        emitted = collections.Counter(_printed(self.outputs))
        f.findings_emitted = sum(1 for k in expected if emitted[k] > 0)
        f.findings_never_emitted = sum(1 for k in expected if emitted[k] == 0)
        f.findings_emitted_twice = sum(1 for k in expected if emitted[k] > 1)
        return f


def _expected(
    stream: list[tuple[str, bytes]],
) -> tuple[set[tuple[str, str]], set[str], set[str]]:
    """What the one fold of the stream implies: (run, finding id) of every finding, every
    run, and the completed runs (runs still open raise no end-of-run findings yet)."""
    fold = Fold(Engine())
    found: set[tuple[str, str]] = set()
    runs: set[str] = set()
    completed: set[str] = set()
    for _, data in stream:
        try:
            step = fold.feed(decode_event(data))
        except OutOfOrder:
            continue
        runs.add(step.run_id)
        found.update((step.run_id, x.id) for x in step.findings)
        if step.result is not None:
            completed.add(step.run_id)
    return found, runs, completed


def _printed(outputs: list[Path]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for path in outputs:
        for line in path.read_bytes().splitlines():
            m = FINDING_LINE.match(line)
            if m:
                out.append((m.group(1).decode(), m.group(2).decode()))
    return out


def _all_runs(rtx: object, tenant: str) -> list[object]:
    out: list[object] = []
    after = None
    while True:
        page = rtx.list_runs(tenant, "default", RunFilter(), 500, after)  # type: ignore[attr-defined]
        out.extend(page)
        if len(page) < 500:
            return out
        after = (page[-1].started_at, page[-1].run_id)


def _all_findings(rtx: object, tenant: str) -> list[object]:
    out: list[object] = []
    after = None
    while True:
        page = rtx.list_findings(tenant, "default", FindingFilter(), 500, after)  # type: ignore[attr-defined]
        out.extend(page)
        if len(page) < 500:
            return out
        after = page[-1].finding_id
