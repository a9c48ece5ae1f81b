"""Streaming forwarders: records in, batches out to a stream (file, stdout) or Splunk HEC.

``Forwarder`` keeps at most ``batch_size`` records or ``max_batch_bytes`` bytes and writes a
batch as soon as either is reached, so memory is bounded whatever the input; ``close``
writes the rest. A batch that cannot be delivered raises ``DeliveryError`` (after the HEC
sink's retries) and is counted in ``failed``: an export fails loudly, it does not drop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Protocol

from sentrail.siem.formats import ExportFormat, encode_record
from sentrail.siem.records import Record

if TYPE_CHECKING:
    import httpx

    from sentrail.alerts.retry import RetryPolicy, Wait


class BatchSink(Protocol):
    def write_batch(self, lines: list[bytes]) -> None: ...

    def close(self) -> None: ...


class StreamSink:
    """Lines to a binary stream (a file, ``sys.stdout.buffer``); the stream is not closed."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream

    def write_batch(self, lines: list[bytes]) -> None:
        self.stream.write(b"".join(line + b"\n" for line in lines))
        self.stream.flush()

    def close(self) -> None:
        pass


class HecSink:
    """Splunk HEC (``/services/collector/event``): a batch is the events one after another
    in one POST, with ``Authorization: Splunk <token>``. Needs httpx."""

    def __init__(
        self,
        url: str,
        token: str,
        retry: RetryPolicy | None = None,
        *,
        client: httpx.Client | None = None,
        wait: Wait | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        import httpx

        from sentrail.alerts.retry import Sender

        if not token:
            raise ValueError("a Splunk HEC token is required")
        self.url = url
        self._headers = {
            "Authorization": f"Splunk {token}",
            "Content-Type": "application/json",
        }
        self._client = client or httpx.Client(follow_redirects=False)
        self._sender = Sender(self._client, "splunk-hec", retry, wait=wait, clock=clock)

    def write_batch(self, lines: list[bytes]) -> None:
        self._sender.post(self.url, b"\n".join(lines), lambda _attempt: self._headers)

    def close(self) -> None:
        self._client.close()


class Forwarder:
    def __init__(
        self,
        fmt: ExportFormat,
        sink: BatchSink,
        *,
        batch_size: int = 500,
        max_batch_bytes: int = 1 << 20,
        host: str | None = None,
        index: str | None = None,
    ) -> None:
        if batch_size < 1 or max_batch_bytes < 1:
            raise ValueError("batch_size and max_batch_bytes must be positive")
        self.fmt = fmt
        self.sink = sink
        self.batch_size = batch_size
        self.max_batch_bytes = max_batch_bytes
        self.host = host
        self.index = index
        self.sent = 0
        self.failed = 0
        self.batches = 0
        self._lines: list[bytes] = []
        self._bytes = 0

    def send(self, record: Record) -> None:
        line = encode_record(self.fmt, record, host=self.host, index=self.index)
        if self._lines and self._bytes + len(line) > self.max_batch_bytes:
            self.flush()
        self._lines.append(line)
        self._bytes += len(line) + 1
        if len(self._lines) >= self.batch_size or self._bytes >= self.max_batch_bytes:
            self.flush()

    def flush(self) -> None:
        if not self._lines:
            return
        lines, self._lines, self._bytes = self._lines, [], 0
        try:
            self.sink.write_batch(lines)
        except Exception:
            self.failed += len(lines)
            raise
        self.sent += len(lines)
        self.batches += 1

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.sink.close()

    def __enter__(self) -> Forwarder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
