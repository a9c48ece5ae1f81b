"""The proxy on raw pipes: exact bytes, hostile lines, stderr, exit codes and signals."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.conftest import DEADLINE, SERVER, TEE, Box

HANDSHAKE = [
    b'{ "jsonrpc" : "2.0", "id": "init-1", "method": "initialize", "params": {"protocolVersion":'
    b' "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw\\u00e9", "version": "1"}} }',
    b'{"method":"notifications/initialized","jsonrpc":"2.0"}',
]


class RawProxy:
    """``mcp-proxy`` as a subprocess with pipes; replies are read by a thread."""

    def __init__(self, box: Box, *options: str, server: list[str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *box.proxy_argv(*options, server=server)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **box.env},
        )
        self.raw = bytearray()
        self.raw_lines: list[bytes] = []
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.stderr = b""
        self.readers = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.raw += line
            self.raw_lines.append(line)
            self.lines.put(line)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    def send(self, line: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + b"\n")
        self.proc.stdin.flush()

    def recv(self) -> Any:
        return json.loads(self.lines.get(timeout=DEADLINE))

    def handshake(self) -> None:
        self.send(HANDSHAKE[0])
        assert self.recv()["id"] == "init-1"
        self.send(HANDSHAKE[1])

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        code = self.proc.wait(timeout=DEADLINE)
        for reader in self.readers:  # the pipes are at their end: what was written is read
            reader.join(timeout=DEADLINE)
        return code


def call(rid: Any, tool: str, arguments: Any) -> bytes:
    msg = {"jsonrpc": "2.0", "id": rid, "method": "tools/call"}
    msg["params"] = {"name": tool, "arguments": arguments}
    return json.dumps(msg).encode()


def test_messages_pass_byte_for_byte_both_ways(box: Box, tmp_path: Path) -> None:
    record = tmp_path / "record"
    record.mkdir()
    proxy = RawProxy(
        box, server=[sys.executable, str(TEE), str(record), sys.executable, str(SERVER)]
    )
    listing = b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{}}'
    allowed = (
        b'{"params":{"arguments":{"path":"/x"},"name":"read_file"},'
        b'"jsonrpc":"2.0","id":8,"method":"tools/call"}'
    )
    denied = call(9, "send_money", {"account": "1", "amount": 1e6})
    proxy.handshake()
    for line in (listing, allowed, denied):
        proxy.send(line)
        reply = proxy.recv()
        assert "error" not in reply
    assert reply["id"] == 9 and reply["result"]["isError"] is True
    assert proxy.close() == 0
    sent = b"".join(line + b"\n" for line in [*HANDSHAKE, listing, allowed])
    assert (record / "to_server.bin").read_bytes() == sent
    [denial] = [line for line in proxy.raw_lines if json.loads(line).get("id") == 9]
    relayed = bytes(proxy.raw).replace(denial, b"")
    assert relayed == (record / "from_server.bin").read_bytes()
    assert len(relayed) > 1000  # the handshake, the tool list and the result
    assert [c["tool"] for c in box.server_calls()] == ["read_file"]


def test_hostile_lines_are_answered_and_never_forwarded(box: Box) -> None:
    proxy = RawProxy(box, "--max-message-bytes", "4096")
    bad = [
        (b"{not json", None, -32700),
        (b"\xff\xfe{}", None, -32700),
        (b"42", None, -32600),
        (b"[]", None, -32600),
        (b"[" * 1500 + b"]" * 1500, None, -32700),
        (
            b'{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/call","params":{"name":"send_money"}}',
            None,
            -32700,
        ),
        (
            b'{"jsonrpc":"2.0","id":1.5,"method":"tools/call","params":{"name":"read_file"}}',
            None,
            -32600,
        ),
        (
            b'{"jsonrpc":"2.0","id":true,"method":"tools/call","params":{"name":"read_file"}}',
            None,
            -32600,
        ),
        (b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":"x"}', 3, -32602),
        (call(4, "read_file", [1]), 4, -32602),
        (call(5, "read_file", {"path": "a" * 10_000}), 5, -32600),
        (call(6, "\u202eread_file", {}), 6, None),
    ]
    for line, _, _ in bad:
        proxy.send(line)
    proxy.send(b"   ")  # blank: nothing
    proxy.send(
        call(None, "send_money", {"account": "1", "amount": 1}).replace(b'"id": null, ', b"")
    )
    proxy.send(b"[" + call(10, "read_file", {}) + b"]")  # a batch, and no 2025-03-26 handshake
    for _, rid, code in bad:
        reply = proxy.recv()
        assert reply["id"] == rid, reply
        if code is None:  # an unknown tool: the policy's answer, as a tool result
            assert reply["result"]["isError"] is True
        else:
            assert reply["error"]["code"] == code, reply
    batch_reply = proxy.recv()
    assert isinstance(batch_reply, list) and batch_reply[0]["id"] == 10
    proxy.handshake()  # still relaying
    proxy.send(call(11, "read_file", {"path": "/ok"}))
    ok = proxy.recv()
    assert ok["id"] == 11 and ok["result"]["content"][0]["text"] == "contents of /ok: hello"
    assert proxy.close() == 0
    assert box.server_calls() == [{"tool": "read_file", "arguments": {"path": "/ok"}}]
    assert b"\\u202e" in proxy.stderr and "\u202e".encode() not in proxy.stderr  # escaped


def test_the_servers_stderr_passes_through_and_its_exit_code_is_ours(box: Box) -> None:
    proxy = RawProxy(box, server=[sys.executable, str(SERVER), "--exit-code", "3"])
    proxy.handshake()
    proxy.send(call(2, "shout", {"text": "hello from the server"}))
    assert proxy.recv()["id"] == 2
    assert proxy.close() == 3
    assert b"server stderr: hello from the server" in proxy.stderr


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_a_signal_stops_the_server_too(box: Box, tmp_path: Path) -> None:
    pid_file = tmp_path / "server.pid"
    os.environ["SENTRAIL_TEST_PID"] = str(pid_file)
    try:
        proxy = RawProxy(box)
    finally:
        del os.environ["SENTRAIL_TEST_PID"]
    proxy.handshake()
    server_pid = int(pid_file.read_text())
    proxy.proc.send_signal(signal.SIGTERM)
    code = proxy.proc.wait(timeout=DEADLINE)
    assert code == 128 + signal.SIGTERM  # the server died of the SIGTERM we passed on
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)


def test_a_server_that_ignores_the_end_of_input_is_terminated(box: Box) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(3600)"]
    proxy = RawProxy(box, server=sleeper)
    assert proxy.close() == 128 + signal.SIGTERM


def test_a_server_that_cannot_start_is_a_usage_error(box: Box) -> None:
    proxy = RawProxy(box, server=[str(box.root / "no-such-server")])
    assert proxy.close() == 2
    assert b"cannot start the MCP server" in proxy.stderr
