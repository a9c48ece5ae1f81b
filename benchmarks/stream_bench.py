"""Stream figures through the local NATS JetStream (nats://127.0.0.1:4222).

- ``stream_step_to_finding_p50_ms`` / ``_p99_ms``: from the publisher's clock when a step
  is published to the moment the worker has the finding that step produced (stored, when
  the worker has a store), while a separate publisher process sends a sustained
  ``--rate`` steps/s (default 10,000). ``achieved_rate`` says what the publisher managed.
- ``stream_steps_per_s``: one worker draining a pre-filled stream at saturation, with and
  without the durable SQLite store (``..._analysis_only``); ``..._cpu`` is the same per
  second of the consuming process's CPU time (``time.process_time``: fetch, decode, fold,
  store, acknowledge), which moves much less than wall clock on a shared machine.
- ``raw_parse_steps_per_s``: decoding the same events, for the ratio.

Nothing is asserted. Usage: ``python benchmarks/stream_bench.py [--steps N] [--rate R]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).parent))
from corpus import make_trace
from sentrail import _native
from sentrail.bus.nats import NatsBus
from sentrail.engine.engine import Engine
from sentrail.evidence.note import Signer
from sentrail.model.decode import decode_event
from sentrail.model.events import StepEvent, events_of
from sentrail.model.trace import Run
from sentrail.runtime.compose import listener_pipeline
from sentrail.runtime.pipeline import RunUpdate
from sentrail.runtime.worker import Worker
from sentrail.store.sqlite import SqliteStore

URL = "nats://127.0.0.1:4222"
SIGNER = Signer("bench.sentrail.local/log", Ed25519PrivateKey.generate())


def make_events(n: int) -> list[tuple[str, str, bytes]]:
    import random

    rng = random.Random(7)
    out: list[tuple[str, str, bytes]] = []
    i = 0
    while len(out) < n:
        run = msgspec.convert(make_trace(rng, i), Run)
        for k, ev in enumerate(events_of(run)):
            out.append((run.agent_id, f"{run.run_id}/{k}", msgspec.json.encode(ev)))
        i += 1
    return out[:n]


async def _publish(tenant: str, events: list[tuple[str, str, bytes]], rate: float) -> float:
    bus = await NatsBus.connect(URL)
    await bus.ensure_stream(tenant)
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    start = time.perf_counter()
    for k in range(0, len(events), per_tick):
        chunk = events[k : k + per_tick]
        await asyncio.gather(*(bus.publish(tenant, a, e, d) for a, e, d in chunk))
        if rate > 0:
            due = start + (k + len(chunk)) / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
    took = time.perf_counter() - start
    await bus.close()
    return len(events) / took


def _publisher(tenant: str, n: int, rate: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    out.put(asyncio.run(_publish(tenant, make_events(n), rate)))


async def _consume(
    tenant: str, total: int, store: SqliteStore | None, latencies: list[float] | None
) -> tuple[float, float, Worker]:
    bus = await NatsBus.connect(URL)
    published: dict[tuple[str, int | None], float] = {}  # (run, step) -> publisher's clock

    def sink(u: RunUpdate) -> None:
        if latencies is None or not u.findings:
            return
        at = published.get((u.run_id, u.step.step.step_index if u.step.step else None))
        if at:
            latencies.extend(time.time() - at for _ in u.findings)

    pipeline = listener_pipeline(sink)
    worker = Worker(bus, Engine(), tenant, store=store, pipeline=pipeline, batch=512)
    consumer = await bus.consumer(tenant, worker.durable)
    seen = 0
    start = cpu = 0.0
    while seen < total:
        msgs = await consumer.fetch(512, 5.0)
        if not msgs:
            if start:
                break
            continue
        if not start:
            start, cpu = time.perf_counter(), time.process_time()
        if latencies is not None:
            for m in msgs:
                ev = decode_event(m.data)
                index = ev.step.step_index if isinstance(ev, StepEvent) else None
                published[(ev.run_id, index)] = m.published_at
        worker.process(msgs)
        await consumer.ack(msgs)
        seen += len(msgs)
    took = time.perf_counter() - start
    cpu = time.process_time() - cpu
    await consumer.close()
    await bus.delete_stream(tenant)
    await bus.close()
    return seen / took, seen / cpu, worker


def latency(steps: int, rate: float, tmp: Path) -> dict[str, float]:
    tenant = f"bench-lat-{uuid.uuid4().hex[:8]}"
    store = SqliteStore(tmp / "lat.db", SIGNER)
    store.migrate()
    lat: list[float] = []
    q: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()  # type: ignore[type-arg]
    asyncio.run(_ensure(tenant))
    proc = multiprocessing.get_context("spawn").Process(
        target=_publisher, args=(tenant, steps, rate, q)
    )
    proc.start()
    asyncio.run(_consume(tenant, steps, store, lat))
    proc.join()
    achieved = q.get()
    store.close()
    lat.sort()
    return {
        "stream_step_to_finding_p50_ms": round(statistics.median(lat) * 1000, 2),
        "stream_step_to_finding_p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 2),
        "stream_latency_findings": len(lat),
        "stream_target_rate": rate,
        "stream_achieved_rate": round(achieved),
    }


async def _ensure(tenant: str) -> None:
    bus = await NatsBus.connect(URL)
    await bus.ensure_stream(tenant)
    await bus.close()


def saturation(steps: int, tmp: Path, durable: bool) -> tuple[float, float]:
    """Steps per second of wall clock and per second of the consumer's CPU time."""
    tenant = f"bench-sat-{uuid.uuid4().hex[:8]}"
    events = make_events(steps)
    asyncio.run(_publish(tenant, events, 0))
    store = None
    if durable:
        store = SqliteStore(tmp / f"sat-{tenant}.db", SIGNER)
        store.migrate()
    rate, cpu_rate, _ = asyncio.run(_consume(tenant, steps, store, None))
    if store is not None:
        store.close()
    return rate, cpu_rate


def raw_parse(steps: int) -> float:
    events = make_events(steps)
    start = time.perf_counter()
    for _, _, d in events:
        decode_event(d)
    return steps / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--rate", type=float, default=10_000)
    ap.add_argument("--low-rate", type=float, default=2_000)
    ap.add_argument(
        "--only", choices=("latency", "saturation"), help="one half of the figures (quicker)"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        out: dict[str, object] = {"build": _native.running(), "stream_steps": args.steps}
        if args.only != "saturation":
            out.update(latency(args.steps, args.rate, tmp))
            # The same at a rate one worker sustains on this machine, to show the pipeline's
            # own latency apart from queueing behind a saturated worker.
            low = latency(args.steps // 4, args.low_rate, tmp)
            out.update({f"{k}_at_low_rate": v for k, v in low.items() if "rate" not in k})
            out["stream_low_rate"] = args.low_rate
        if args.only == "latency":
            print(json.dumps(out, indent=2))
            return
        wall, cpu = saturation(args.steps, tmp, durable=True)
        out["stream_steps_per_s"], out["stream_steps_per_s_cpu"] = round(wall), round(cpu)
        wall, cpu = saturation(args.steps, tmp, durable=False)
        out["stream_steps_per_s_analysis_only"] = round(wall)
        out["stream_steps_per_s_analysis_only_cpu"] = round(cpu)
        parse = raw_parse(args.steps)
        out["raw_parse_steps_per_s"] = round(parse)
        out["stream_ratio"] = round(float(out["stream_steps_per_s"]) / parse, 4)  # type: ignore[arg-type]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
