"""Sources: a streaming HTTP response (a stub on 127.0.0.1), a file, a followed file."""

from __future__ import annotations

import gzip
import os
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from sentrail.engine.engine import Engine
from sentrail.errors import UsageError
from sentrail.runtime.watch import Watcher
from sentrail.runtime.watch_loop import StopFlag, pump
from sentrail.runtime.watch_records import RunClosed, StepSeen, WatchRecord
from sentrail.runtime.watch_sources import FileSource, HttpSource, display_url, import_httpx
from tests.watch.conftest import PATIENCE, TRIAGE, TRIAGE_EVENTS, invoke

LINES = TRIAGE_EVENTS.read_bytes().splitlines(keepends=True)


class StreamStub(BaseHTTPRequestHandler):
    """Sends the first three events, waits until the test has seen them, sends the rest."""

    protocol_version = "HTTP/1.1"
    first_seen: ClassVar[threading.Event] = threading.Event()
    order: ClassVar[list[str]] = []
    auth: ClassVar[list[str]] = []
    status: ClassVar[int] = 200

    def do_GET(self) -> None:
        cls = type(self)
        cls.auth.append(self.headers.get("Authorization", ""))
        if cls.status != 200:
            self.send_response(cls.status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        if self.path == "/gzip":  # the whole body compressed, sent in pieces
            self.send_header("Content-Encoding", "gzip")
            self.end_headers()
            body = gzip.compress(b"".join(LINES))
            for i in range(0, len(body), 300):
                self._chunk(body[i : i + 300])
            self.wfile.write(b"0\r\n\r\n")
            return
        self.end_headers()
        self._chunk(b"".join(LINES[:3]))
        if self.path == "/wait":
            cls.first_seen.wait(PATIENCE)  # a hang guard: the test sets it
            cls.order.append("rest sent" if cls.first_seen.is_set() else "gave up waiting")
        # the rest in odd-sized pieces, lines split across chunks
        rest = b"".join(LINES[3:])
        for i in range(0, len(rest), 777):
            self._chunk(rest[i : i + 777])
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def stream_url() -> Iterator[str]:
    StreamStub.first_seen = threading.Event()
    StreamStub.order = []
    StreamStub.auth = []
    StreamStub.status = 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), StreamStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    StreamStub.first_seen.set()
    server.shutdown()
    server.server_close()


def test_http_source_reads_the_body_incrementally(stream_url: str) -> None:
    seen: list[WatchRecord] = []

    def sink(rec: WatchRecord) -> None:
        seen.append(rec)
        if isinstance(rec, StepSeen) and rec.step.step_index == 1:
            StreamStub.order.append("step 1 seen")
            StreamStub.first_seen.set()  # only now does the server send the rest

    w = Watcher(Engine(), sink)
    assert pump(HttpSource(f"{stream_url}/wait"), w, StopFlag(), None) == "eof"
    assert StreamStub.order == ["step 1 seen", "rest sent"]
    assert len([r for r in seen if isinstance(r, StepSeen)]) == 12
    assert [r.completed for r in seen if isinstance(r, RunClosed)] == [True]


def test_watch_http_source_from_the_command_line(stream_url: str) -> None:
    r = invoke("watch", "--source", f"{stream_url}/all", "--key", "sk_stream")
    assert r.exit_code == 0, r.output
    assert r.stdout.count("[step ") == 12 and "[ESCALATED]" in r.stdout
    assert StreamStub.auth == ["Bearer sk_stream"]
    StreamStub.status = 404
    r = invoke("watch", "--source", f"http://user:secret@{stream_url[7:]}/x?token=t")
    assert r.exit_code == 2 and "HTTP 404" in r.stderr
    assert "secret" not in r.output and "token=t" not in r.output


def test_a_compressed_http_stream_is_decoded(stream_url: str) -> None:
    r = invoke("watch", "--source", f"{stream_url}/gzip", "-f", "json")
    assert r.exit_code == 0, r.output
    assert r.stdout.count('"type":"step"') == 12 and '"phase":"completed"' in r.stdout


def test_http_source_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(UsageError, match=r"pip install 'sentrail\[alerts\]'"):
        import_httpx()
    r = invoke("watch", "--source", "http://127.0.0.1:9/stream")
    assert r.exit_code == 2 and "sentrail[alerts]" in r.stderr


def test_display_url_drops_credentials_and_query() -> None:
    assert display_url("https://u:p@h.example:8443/a/b?k=v#f") == "https://h.example:8443/a/b"


def test_watch_a_file(tmp_path: Path) -> None:
    r = invoke("watch", "--source", f"file:{TRIAGE_EVENTS}")
    assert r.exit_code == 0, r.output
    assert r.stdout == invoke("watch", input=TRIAGE_EVENTS.read_bytes()).stdout
    r = invoke("watch", "--source", f"file:{TRIAGE}", "--format", "json")  # a pretty trace
    assert r.exit_code == 0 and r.stdout.count('"type":"step"') == 12
    r = invoke("watch", "--source", f"file:{tmp_path}")
    assert r.exit_code == 2 and "is a directory" in r.stderr


def test_a_followed_file_yields_appended_truncated_and_replaced_content(tmp_path: Path) -> None:
    path = tmp_path / "live.ndjson"
    path.write_bytes(LINES[0] + LINES[1])
    stop = {"now": False}
    items = FileSource(str(path), follow=True, poll=0.01).items(lambda: stop["now"])
    assert next(items) == LINES[0] and next(items) == LINES[1]
    with path.open("ab") as fh:
        fh.write(LINES[2][:50])  # half a line: not yielded until its newline comes
        fh.flush()
        fh.write(LINES[2][50:])
    assert next(items) == LINES[2]
    path.write_bytes(b'{"x": 1}\n')  # truncated in place and rewritten
    assert next(items) == b'{"x": 1}\n'
    replacement = tmp_path / "new.ndjson"
    replacement.write_bytes(b'{"y": 2}\n')
    os.replace(replacement, path)  # rotated: a new file under the same name
    assert next(items) == b'{"y": 2}\n'
    stop["now"] = True
    assert next(items, None) is None


def test_a_followed_file_stops_on_the_flag_with_the_run_still_open(tmp_path: Path) -> None:
    path = tmp_path / "live.ndjson"
    path.write_bytes(b"".join(LINES[:3]))
    flag = StopFlag()
    seen: list[WatchRecord] = []

    def sink(rec: WatchRecord) -> None:
        seen.append(rec)
        if isinstance(rec, StepSeen) and rec.step.step_index == 1:
            flag.signum = 2  # as the SIGINT handler would

    w = Watcher(Engine(), sink)
    assert pump(FileSource(str(path), follow=True, poll=0.01), w, flag, None) == "signal"
    assert list(w.runs) == ["run-a4f8c312-9e7b"]


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once closed


def test_an_unreachable_nats_fails_fast_and_clearly() -> None:
    url = f"nats://127.0.0.1:{closed_port()}"
    r = invoke("watch", "--source", url)
    assert r.exit_code == 2 and f"cannot connect to NATS at {url}" in r.stderr
    r = invoke("emit", str(TRIAGE), "--to", url)
    assert r.exit_code == 2 and f"cannot connect to NATS at {url}" in r.stderr
    assert "Traceback" not in r.output


def test_a_bus_source_stops_even_while_its_connection_hangs() -> None:
    import asyncio

    from sentrail.runtime.watch_sources import BusSource

    started: list[bool] = []

    async def never_connects() -> Any:
        started.append(True)
        await asyncio.Event().wait()

    class SignalDuringConnect(StopFlag):
        def __call__(self) -> bool:
            if started:  # the connect is in progress (and would never end)
                self.signum = 15
            return super().__call__()

    w = Watcher(Engine(), lambda r: None)
    src = BusSource(never_connects, "t", name="hanging")
    assert pump(src, w, SignalDuringConnect(), None) == "signal"
    assert started == [True]
