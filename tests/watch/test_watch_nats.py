"""emit to NATS JetStream, watch from it. Real NATS: these fail (never skip) when it is down."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sentrail.bus.base import Bus, stream_name
from sentrail.engine.engine import Engine
from sentrail.model.decode import decode_run
from sentrail.runtime.emit import BusTarget, EventReader, emit
from sentrail.runtime.watch import Watcher
from sentrail.runtime.watch_loop import StopFlag, pump
from sentrail.runtime.watch_records import RunClosed, StepSeen, WatchRecord
from sentrail.runtime.watch_sources import BusSource
from tests.watch.conftest import (
    NATS_URL,
    PATIENCE,
    TRACES,
    TRIAGE,
    TRIAGE_EVENTS,
    LineReader,
    child_env,
    invoke,
    json_lines,
    module_cmd,
)


async def connect() -> Bus:
    from sentrail.bus.nats import NatsBus

    return await NatsBus.connect(NATS_URL)


@pytest.fixture
def tenant() -> Iterator[str]:
    name = f"watch-{uuid.uuid4().hex[:12]}"
    yield name

    async def cleanup() -> None:
        bus: Any = await connect()
        await bus.delete_stream(name)
        await bus.close()

    asyncio.run(cleanup())


def publish(path: Path, tenant: str) -> None:
    async def go() -> None:
        sink = BusTarget(await connect(), tenant, NATS_URL)
        try:
            await emit(EventReader(str(path), lambda m: None), sink)
        finally:
            await sink.close()

    asyncio.run(go())


async def consumer_names(tenant: str) -> list[str]:
    bus: Any = await connect()
    try:
        infos = await bus.js.consumers_info(stream_name(tenant))
        return [i.name for i in infos]
    finally:
        await bus.close()


def test_emit_to_nats_then_watch_from_the_start(tenant: str) -> None:
    injected = TRACES / "injected-transfer.json"
    for path in (TRIAGE, injected):
        r = invoke("emit", str(path), "--to", NATS_URL, "--tenant", tenant)
        assert r.exit_code == 0, r.output
        assert "Emitted" in r.stderr and f"tenant {tenant}" in r.stderr
    again = invoke("emit", str(TRIAGE), "--to", NATS_URL, "--tenant", tenant)
    assert "(14 duplicates)" in again.stderr  # same event ids: deduplicated by the stream
    r = invoke(
        "watch",
        "--source",
        NATS_URL,
        "--tenant",
        tenant,
        "--from-start",
        "--max-runs",
        "2",
        "--format",
        "json",
    )
    assert r.exit_code == 0, r.output
    objs = json_lines(r.stdout)
    done = [o for o in objs if o.get("phase") == "completed"]
    assert [o["run_id"] for o in done] == ["run-a4f8c312-9e7b", "run-0f6c2a88-b514"]
    steps = [o for o in objs if o["type"] == "step"]
    assert len(steps) == 12 + 4 and any(s["escalated"] for s in steps)
    for path, run_id in ((TRIAGE, "run-a4f8c312-9e7b"), (injected, "run-0f6c2a88-b514")):
        expected = {f.id for f in Engine().analyze(decode_run(path.read_bytes())).findings}
        got = {o["id"] for o in objs if o["type"] == "finding" and o["run_id"] == run_id}
        assert got == expected
    assert asyncio.run(consumer_names(tenant)) == []  # the watch removed its consumer


def test_watch_from_nats_shows_only_new_events_by_default(tenant: str) -> None:
    publish(TRACES / "prod-delete.json", tenant)  # before the watch: not shown
    seen: list[WatchRecord] = []
    w = Watcher(Engine(), seen.append)
    src = BusSource(
        connect, tenant, name="nats", poll=0.2, on_ready=lambda: publish(TRIAGE, tenant)
    )
    assert pump(src, w, StopFlag(), max_runs=1) == "max_runs"
    assert {r.run_id for r in seen} == {"run-a4f8c312-9e7b"}
    assert len([r for r in seen if isinstance(r, StepSeen)]) == 12
    assert [r.result.verdict.value for r in seen if isinstance(r, RunClosed)] == ["suspicious"]


def test_sigint_on_a_nats_watch_saves_the_partial_run(
    tenant: str, tmp_path: Path, _home: Path, child: list[subprocess.Popen[bytes]]
) -> None:
    head = tmp_path / "head.ndjson"
    head.write_bytes(b"".join(TRIAGE_EVENTS.read_bytes().splitlines(keepends=True)[:4]))
    publish(head, tenant)
    proc = subprocess.Popen(
        module_cmd("watch", "--source", NATS_URL, "--tenant", tenant, "--from-start"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(_home),
    )
    child.append(proc)
    assert proc.stdout is not None and proc.stderr is not None
    out, err = LineReader(proc.stdout), LineReader(proc.stderr)
    out.wait_for("[step 2]")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(PATIENCE) == 130, err.rest()
    saved = [ln for ln in out.rest() if "Partial trace saved to: " in ln]
    assert len(saved) == 1 and saved[0].startswith("Disconnected. ")
    doc = json.loads(Path(saved[0].split("saved to: ", 1)[1]).read_bytes())
    assert doc["status"] == "partial" and len(doc["steps"]) == 3
    assert asyncio.run(consumer_names(tenant)) == []
