from __future__ import annotations

import io
import json

import pytest

from sentrail.alerts.retry import DeliveryError, RetryPolicy
from sentrail.siem.formats import ExportFormat
from sentrail.siem.forward import Forwarder, HecSink, StreamSink
from sentrail.siem.records import Record
from tests.alerts.helpers import Waits
from tests.alerts.stub_server import StubServer


class CountingSink:
    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []
        self.closed = False

    def write_batch(self, lines: list[bytes]) -> None:
        self.batches.append(lines)

    def close(self) -> None:
        self.closed = True


def test_batches_are_bounded_by_count(example_records: list[Record]) -> None:
    sink = CountingSink()
    with Forwarder(ExportFormat.ocsf, sink, batch_size=7) as fw:
        for r in example_records:
            fw.send(r)
            assert len(fw._lines) < 7  # never more than a batch held
    assert sink.closed
    assert all(len(b) <= 7 for b in sink.batches)
    assert sum(len(b) for b in sink.batches) == len(example_records) == fw.sent
    assert fw.batches == len(sink.batches) == -(-len(example_records) // 7)


def test_batches_are_bounded_by_bytes(example_records: list[Record]) -> None:
    sink = CountingSink()
    with Forwarder(ExportFormat.ecs, sink, batch_size=10_000, max_batch_bytes=4000) as fw:
        for r in example_records:
            fw.send(r)
    for batch in sink.batches:
        assert len(batch) == 1 or sum(len(x) + 1 for x in batch) <= 4000
    assert fw.sent == len(example_records)


def test_stream_sink_writes_one_line_per_record(example_records: list[Record]) -> None:
    out = io.BytesIO()
    with Forwarder(ExportFormat.cef, StreamSink(out), batch_size=3) as fw:
        for r in example_records[:10]:
            fw.send(r)
    lines = out.getvalue().decode().splitlines()
    assert len(lines) == 10 and all(line.startswith("CEF:0|") for line in lines)


def test_hec_sink_posts_batches_with_the_splunk_token(
    stub: StubServer, example_records: list[Record]
) -> None:
    stub.default = stub.default._replace(body=b'{"text":"Success","code":0}')
    sink = HecSink(stub.url("/services/collector/event"), "tok-123")
    with Forwarder(ExportFormat.splunk_hec, sink, batch_size=5, host="h") as fw:
        for r in example_records[:12]:
            fw.send(r)
    assert [len(req.body.split(b"\n")) for req in stub.requests] == [5, 5, 2]
    req = stub.requests[0]
    assert req.path == "/services/collector/event"
    assert req.headers["authorization"] == "Splunk tok-123"
    events = [json.loads(line) for line in req.body.split(b"\n")]
    assert all(e["sourcetype"].startswith("sentrail:") and e["host"] == "h" for e in events)


def test_hec_busy_is_retried_and_a_refusal_fails_loudly(
    stub: StubServer, example_records: list[Record], waits: Waits
) -> None:
    stub.reply(503, b'{"text":"Server is busy","code":9}', {"Retry-After": "2"})
    stub.reply(403, b'{"text":"Invalid token","code":4}')
    sink = HecSink(stub.url(), "tok", RetryPolicy(attempts=3), wait=waits)
    fw = Forwarder(ExportFormat.splunk_hec, sink, batch_size=2)
    with pytest.raises(DeliveryError, match="HTTP 403"):
        for r in example_records[:2]:
            fw.send(r)
    assert fw.failed == 2 and fw.sent == 0
    assert 2 <= waits.delays[0] <= 2.5
    fw.close()


def test_forwarder_refuses_silly_bounds() -> None:
    with pytest.raises(ValueError):
        Forwarder(ExportFormat.ocsf, CountingSink(), batch_size=0)
