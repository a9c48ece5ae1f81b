"""`sentrail emit`: event ids, repeats, pacing, and emit -> watch end to end."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest

from sentrail.bus.memory import MemoryBus
from sentrail.engine.engine import Engine
from sentrail.model.decode import decode_event, decode_run
from sentrail.runtime.emit import (
    BusTarget,
    EventReader,
    HttpTarget,
    Outgoing,
    Pacer,
    StreamTarget,
    emit,
)
from sentrail.runtime.watch import Watcher
from sentrail.runtime.watch_loop import StopFlag, pump
from sentrail.runtime.watch_records import RunClosed, StepSeen, WatchRecord
from sentrail.runtime.watch_sources import BusSource
from tests.watch.conftest import (
    PATIENCE,
    TRACES,
    TRIAGE,
    TRIAGE_EVENTS,
    child_env,
    invoke,
    json_lines,
    module_cmd,
)


def test_a_trace_is_emitted_as_events_with_derived_ids() -> None:
    r = invoke("emit", str(TRIAGE))
    assert r.exit_code == 0, r.output
    objs = json_lines(r.stdout)
    assert [o["type"] for o in objs] == ["run_started"] + ["step"] * 12 + ["run_completed"]
    rid = "run-a4f8c312-9e7b"
    assert [o["event_id"] for o in objs] == (
        [f"{rid}/run_started/0"]
        + [f"{rid}/step/{i}" for i in range(1, 13)]
        + [f"{rid}/run_completed/13"]
    )
    for line in r.stdout.splitlines():
        decode_event(line.encode())


def test_ndjson_events_keep_their_own_ids_and_bytes() -> None:
    r = invoke("emit", str(TRIAGE_EVENTS))
    assert r.exit_code == 0, r.output
    assert r.stdout.encode() == TRIAGE_EVENTS.read_bytes()


def test_a_directory_is_emitted_and_a_bad_file_reported() -> None:
    r = invoke("emit", str(TRACES))
    assert r.exit_code == 2  # truncated.json is invalid; the rest still goes out
    assert "invalid:" in r.stderr and "truncated.json" in r.stderr
    runs = {o["run_id"] for o in json_lines(r.stdout) if o["type"] == "run_started"}
    assert len(runs) == len(list(TRACES.glob("*.json"))) - 1
    assert invoke("emit", "/no/such/path").exit_code == 2


def test_stdin_input_and_repeats_rename_runs_and_ids() -> None:
    reader = EventReader("-", lambda m: None)
    reader._stdin = TRIAGE.read_bytes()  # what `cat triage.json | sentrail emit -` reads
    first = list(reader.events(0))
    again = list(reader.events(0))
    third = list(reader.events(2))
    assert [o.event_id for o in first] == [o.event_id for o in again]
    assert {o.run_id for o in third} == {"run-a4f8c312-9e7b-loop2"}
    assert third[1].event_id == "run-a4f8c312-9e7b-loop2/step/1"
    assert all(o.agent_id == "prod-triage-au-east" for o in third)
    own = EventReader(str(TRIAGE_EVENTS), lambda m: None)
    looped = list(own.events(1))
    assert looped[0].event_id == "evt-a4f8c312-0000-loop1"
    assert json.loads(looped[0].data)["run_id"] == "run-a4f8c312-9e7b-loop1"
    # a watcher sees each pass as a new run
    seen: list[WatchRecord] = []
    w = Watcher(Engine(), seen.append)
    for o in [*first, *looped, *third]:
        w.feed_document(o.data, "t")
    assert [r.run_id for r in seen if isinstance(r, RunClosed)] == [
        "run-a4f8c312-9e7b",
        "run-a4f8c312-9e7b-loop1",
        "run-a4f8c312-9e7b-loop2",
    ]


class FakeTime:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Recorder:
    name = "recorder"

    def __init__(self, when: FakeTime) -> None:
        self.when = when
        self.batches: list[tuple[float, list[str]]] = []

    async def send(self, batch: list[Outgoing]) -> int:
        self.batches.append((self.when.now, [o.event_id for o in batch]))
        return 0

    async def close(self) -> None:
        return None


def test_rate_paces_events_and_flushes_what_is_due_before_each_pause() -> None:
    t = FakeTime()
    sink = Recorder(t)
    reader = EventReader(str(TRIAGE_EVENTS), lambda m: None)
    stats = asyncio.run(
        emit(reader, sink, rate=5, pacer=Pacer(5, clock=t.clock), sleep=t.sleep, batch=100)
    )
    assert stats.events == 14 and stats.passes == 1
    assert t.sleeps == [pytest.approx(0.2)] * 13
    # every event goes out on its own, at its slot: 0.2 s apart on the fake clock
    assert [len(ids) for _, ids in sink.batches] == [1] * 14
    times = [when for when, _ in sink.batches]
    assert times[1:] == [pytest.approx(100.0 + 0.2 * i) for i in range(1, 14)]
    # no rate: no pauses, batches of --batch
    t2 = FakeTime()
    sink2 = Recorder(t2)
    asyncio.run(emit(reader, sink2, rate=0, sleep=t2.sleep, batch=5))
    assert t2.sleeps == [] and [len(b) for _, b in sink2.batches] == [5, 5, 4]


def test_pacer_does_not_burst_after_falling_behind() -> None:
    t = FakeTime()
    p = Pacer(10, clock=t.clock)
    assert p.delay() == 0.0
    assert p.delay() == pytest.approx(0.1)
    t.now += 5.0  # stalled for 5 s (a slow sink)
    assert p.delay() == 0.0
    assert p.delay() == pytest.approx(0.1)


def test_emit_piped_into_watch_end_to_end(_home: Path) -> None:
    env = child_env(_home)
    producer = subprocess.Popen(
        module_cmd("emit", str(TRIAGE), "--rate", "200"), stdout=subprocess.PIPE, env=env
    )
    watcher = subprocess.run(
        module_cmd("watch"),
        stdin=producer.stdout,
        capture_output=True,
        env=env,
        timeout=PATIENCE,
    )
    assert producer.stdout is not None
    producer.stdout.close()
    assert producer.wait(PATIENCE) == 0
    out = watcher.stdout.decode()
    assert watcher.returncode == 0, watcher.stderr.decode()
    assert out.startswith("Watching agent: prod-triage-au-east (run-a4f8c312-9e7b)\n")
    assert "[ESCALATED] [WARN]" in out and out.count("[step ") == 12
    assert "Run completed: run-a4f8c312-9e7b — verdict suspicious" in out


def test_emit_to_an_in_process_bus_then_watch_it() -> None:
    bus = MemoryBus()
    reader = EventReader(str(TRACES / "injected-transfer.json"), lambda m: None)
    asyncio.run(emit(reader, BusTarget(bus, "acme", "memory")))  # not closed: shared below

    async def same_bus() -> Any:
        return bus

    seen: list[WatchRecord] = []
    w = Watcher(Engine(), seen.append)
    src = BusSource(same_bus, "acme", name="memory", from_start=True, poll=0.05)
    assert pump(src, w, StopFlag(), max_runs=1) == "max_runs"
    closed = [r for r in seen if isinstance(r, RunClosed)]
    assert closed[0].result.verdict.value == "unauthorized"
    expected = Engine().analyze(decode_run((TRACES / "injected-transfer.json").read_bytes()))
    shown = {f.id for r in seen if isinstance(r, StepSeen | RunClosed) for f in r.findings}
    assert shown == {f.id for f in expected.findings}


def test_a_bus_watch_without_from_start_sees_only_new_runs() -> None:
    bus = MemoryBus()
    old = EventReader(str(TRACES / "prod-delete.json"), lambda m: None)
    asyncio.run(emit(old, BusTarget(bus, "acme", "memory")))

    async def same_bus() -> Any:
        return bus

    def publish_new() -> None:
        fresh = EventReader(str(TRIAGE), lambda m: None)
        asyncio.run(emit(fresh, BusTarget(bus, "acme", "memory")))

    seen: list[WatchRecord] = []
    w = Watcher(Engine(), seen.append)
    src = BusSource(same_bus, "acme", name="memory", poll=0.05, on_ready=publish_new)
    assert pump(src, w, StopFlag(), max_runs=1) == "max_runs"
    assert {r.run_id for r in seen} == {"run-a4f8c312-9e7b"}  # nothing of the old run


# -- to the HTTP service ---------------------------------------------------------------------
class IngestStub(BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, str, bytes]]] = []
    fail_first: ClassVar[int] = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).requests.append((self.path, self.headers.get("Authorization", ""), body))
        if type(self).fail_first:
            type(self).fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        if self.headers.get("Authorization") != "Bearer sk_good":
            payload = json.dumps({"title": "Unauthorized", "detail": "bad key\x1b[31m"}).encode()
            self.send_response(401)
        else:
            acks = [
                {"event_id": json.loads(ln)["event_id"], "seq": 1, "duplicate": False}
                for ln in body.splitlines()
            ]
            payload = json.dumps({"acknowledged": acks, "completed_runs": []}).encode()
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def stub() -> Iterator[str]:
    IngestStub.requests = []
    IngestStub.fail_first = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), IngestStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_emit_posts_ndjson_batches_with_the_bearer_key(stub: str) -> None:
    args = ["--to", stub, "--key", "sk_good", "--app", "pay/x", "--batch", "5"]
    r = invoke("emit", str(TRIAGE), *args)
    assert r.exit_code == 0, r.output
    assert "Emitted 14 events to http://127.0.0.1:" in r.stderr
    assert [len(b.splitlines()) for _, _, b in IngestStub.requests] == [5, 5, 4]
    assert {p for p, _, _ in IngestStub.requests} == {"/v1/apps/pay%2Fx/events"}
    assert {a for _, a, _ in IngestStub.requests} == {"Bearer sk_good"}
    sent = b"".join(b for _, _, b in IngestStub.requests)
    assert sent.decode() == invoke("emit", str(TRIAGE)).stdout
    assert "sk_good" not in r.output


def test_emit_to_http_refusals_retries_and_usage(stub: str) -> None:
    r = invoke("emit", str(TRIAGE), "--to", stub, "--key", "sk_bad", "--app", "pay")
    assert r.exit_code == 2 and "HTTP 401: bad key\\x1b[31m" in r.stderr
    assert invoke("emit", str(TRIAGE), "--to", stub, "--app", "pay").exit_code == 2
    assert invoke("emit", str(TRIAGE), "--to", "ftp://x").exit_code == 2
    IngestStub.requests = []
    IngestStub.fail_first = 2
    sink = HttpTarget(stub, "pay", "sk_good", backoff=0.0)
    reader = EventReader(str(TRIAGE_EVENTS), lambda m: None)

    async def go() -> Any:
        try:
            return await emit(reader, sink, batch=100)
        finally:
            await sink.close()

    stats = asyncio.run(go())
    assert stats.events == 14 and len(IngestStub.requests) == 3
    assert IngestStub.requests[0][2] == IngestStub.requests[2][2]  # the same bytes again


def test_emit_into_the_real_service(tmp_path: Path) -> None:
    import httpx

    from tests.service.conftest import make_api
    from tests.store.conftest import _sqlite

    backend = next(_sqlite(tmp_path))
    api_iter = make_api(backend)
    api = next(api_iter)
    try:
        key = api.keys["a"]  # tenant-a, app1
        transport = httpx.ASGITransport(app=api.client.app)
        sink = HttpTarget("http://service", "app1", key, transport=transport)
        reader = EventReader(str(TRIAGE), lambda m: None)

        async def go() -> Any:
            try:
                first = await emit(reader, sink, batch=4)
                again = await emit(reader, sink, batch=100)  # a retry: all duplicates
                return first, again
            finally:
                await sink.close()

        first, again = asyncio.run(go())
        assert first.events == 14 and first.duplicates == 0
        assert again.duplicates == 14
        r = api.client.get("/v1/apps/app1/traces", headers=api.auth("a"))
        assert r.status_code == 200, r.text
        (item,) = r.json()["items"]
        assert item["run_id"] == "run-a4f8c312-9e7b" and item["steps"] == 12
        assert item["verdict"] == "suspicious"
    finally:
        api_iter.close()


def test_stream_sink_writes_lines() -> None:
    import io

    buf = io.BytesIO()
    reader = EventReader(str(TRIAGE_EVENTS), lambda m: None)
    asyncio.run(emit(reader, StreamTarget(buf)))
    assert buf.getvalue() == TRIAGE_EVENTS.read_bytes()
    assert msgspec.json.decode(buf.getvalue().splitlines()[0])["type"] == "run_started"
