"""Where ``trace watch`` reads live events: stdin, a file (optionally followed), a
streaming HTTP response, or a tenant's stream on the bus.

Every source yields items through ``items(stop)``: lines (``documents = False``: the
watcher frames them) or whole messages (``documents = True``). ``stop()`` turns true when
the watch should end. Sources that poll (a followed file, the bus) check it themselves;
sources whose reads block (``blocking = True``: stdin, HTTP) are interrupted by the
caller's signal handler raising while they wait.

Lines are bounded: a line longer than the document limit is cut to ``limit + 1`` bytes
(so the watcher reports it as too large) and the rest of it is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Generator, Iterator
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from sentrail.bus.base import (
    Bus,
    BusError,
    BusMessage,
    Consumer,
    stream_name,
)
from sentrail.errors import InputError, UsageError
from sentrail.model.decode import MAX_DOCUMENT_BYTES
from sentrail.runtime.framing import bounded_lines, skip_rest

Stop = Callable[[], bool]
T = TypeVar("T")


class Source(Protocol):
    name: str
    documents: bool
    blocking: bool

    def items(self, stop: Stop) -> Generator[bytes, None, None]: ...


class StdinSource:
    """NDJSON on standard input, line by line as it arrives (works with ``tail -f |``)."""

    documents = False
    blocking = True

    def __init__(self, stream: IO[bytes] | None = None, limit: int = MAX_DOCUMENT_BYTES) -> None:
        self.stream = stream
        self.limit = limit
        self.name = "stdin"

    def items(self, stop: Stop) -> Generator[bytes, None, None]:
        stream = self.stream if self.stream is not None else sys.stdin.buffer
        for line in bounded_lines(stream.readline, self.limit):
            yield line
            if stop():
                return


class FileSource:
    """An NDJSON (or trace) file; with ``follow`` keep reading what is appended to it,
    like ``tail -f`` (a truncated file is read again from the start, a replaced one is
    reopened)."""

    documents = False
    blocking = False

    def __init__(
        self,
        path: str,
        *,
        follow: bool = False,
        poll: float = 0.25,
        limit: int = MAX_DOCUMENT_BYTES,
    ) -> None:
        self.path = path
        self.follow = follow
        self.poll = poll
        self.limit = limit
        self.name = path

    def _open(self) -> IO[bytes]:
        try:
            if self.path.endswith(".gz") and not self.follow:
                return gzip.open(self.path, "rb")  # type: ignore[return-value]
            return open(self.path, "rb")
        except IsADirectoryError:
            raise UsageError("is a directory (watch reads one file)", self.path) from None
        except OSError as exc:
            raise UsageError(f"cannot read: {exc.strerror or exc}", self.path) from None

    def items(self, stop: Stop) -> Generator[bytes, None, None]:
        fh = self._open()
        try:
            if not self.follow:
                for line in bounded_lines(fh.readline, self.limit):
                    yield line
                    if stop():
                        return
                return
            yield from self._follow(fh, stop)
        finally:
            fh.close()

    def _follow(self, fh: IO[bytes], stop: Stop) -> Generator[bytes, None, None]:
        partial = b""
        while not stop():
            chunk = fh.readline(self.limit + 1 - len(partial))
            if chunk:
                partial += chunk
                if partial.endswith(b"\n") or len(partial) > self.limit:
                    if not partial.endswith(b"\n"):
                        skip_rest(fh.readline)
                    line, partial = partial, b""
                    yield line
                continue
            fh = self._reopen_if_replaced(fh)
            time.sleep(self.poll)

    def _reopen_if_replaced(self, fh: IO[bytes]) -> IO[bytes]:
        try:
            st = os.stat(self.path)
        except OSError:
            return fh  # gone for now (being rotated): keep the old one
        mine = os.fstat(fh.fileno())
        if (st.st_ino, st.st_dev) != (mine.st_ino, mine.st_dev):
            fh.close()
            return self._open()
        if st.st_size < fh.tell():
            fh.seek(0)  # truncated in place
        return fh


class HttpSource:
    """A streaming HTTP GET whose body is NDJSON, read incrementally (``httpx.stream``)."""

    documents = False
    blocking = True

    def __init__(
        self, url: str, *, key: str | None = None, limit: int = MAX_DOCUMENT_BYTES
    ) -> None:
        self.url = url
        self.key = key
        self.limit = limit
        self.name = display_url(url)

    def items(self, stop: Stop) -> Generator[bytes, None, None]:
        httpx = import_httpx()
        headers = {"Accept": "application/x-ndjson"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        timeout = httpx.Timeout(10.0, read=None)
        try:
            with httpx.stream("GET", self.url, headers=headers, timeout=timeout) as resp:
                if resp.status_code != 200:
                    raise InputError(f"HTTP {resp.status_code} from the event stream", self.name)
                yield from self._lines(resp.iter_bytes(), stop)
        except httpx.HTTPError as exc:
            raise InputError(
                f"HTTP stream failed: {type(exc).__name__}: {exc}", self.name
            ) from None

    def _lines(self, chunks: Iterator[bytes], stop: Stop) -> Iterator[bytes]:
        buf = bytearray()
        skipping = False
        for chunk in chunks:
            start = 0
            while True:
                nl = chunk.find(b"\n", start)
                piece = chunk[start:] if nl < 0 else chunk[start : nl + 1]
                if not skipping:
                    buf += piece[: self.limit + 1 - len(buf)]
                    if len(buf) > self.limit:
                        yield bytes(buf)  # too long: reported by the watcher, rest skipped
                        buf.clear()
                        skipping = True
                if nl < 0:
                    break
                if not skipping:
                    yield bytes(buf)
                buf.clear()
                skipping = False
                start = nl + 1
                if stop():
                    return
        if buf and not skipping:
            yield bytes(buf)


def display_url(url: str) -> str:
    """``url`` without credentials, query or fragment (safe to print in messages)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def import_httpx() -> Any:
    try:
        import httpx
    except ImportError:
        raise UsageError(
            "HTTP needs httpx: pip install 'sentrail[alerts]' (or 'sentrail[server]')"
        ) from None
    return httpx


# -- the bus -------------------------------------------------------------------------------
async def _nats_consumer(bus: Any, tenant: str, name: str, from_start: bool) -> Consumer:
    """A NATS consumer for watching: no acknowledgements, new messages only unless
    ``from_start``, removed by the server a minute after its watcher goes away."""
    from nats.js import api

    config = api.ConsumerConfig(
        durable_name=name,
        ack_policy=api.AckPolicy.NONE,
        deliver_policy=api.DeliverPolicy.ALL if from_start else api.DeliverPolicy.NEW,
        inactive_threshold=60.0,
    )
    consumer: Consumer = await bus.pull_consumer(tenant, name, config)
    return consumer


class _Stopped(Exception):
    """The stop flag was set while waiting on the bus."""


def _run(loop: asyncio.AbstractEventLoop, aw: Coroutine[Any, Any, T], stop: Stop) -> T:
    """Run ``aw`` on ``loop``, checking ``stop`` every 0.2 s (cancelled when it is set),
    so that nothing on the bus (a connect, a fetch) can keep a watch from stopping."""
    task = loop.create_task(aw)
    while not task.done():
        loop.run_until_complete(asyncio.wait({task}, timeout=0.2))
        if stop() and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                loop.run_until_complete(task)
            raise _Stopped
    return task.result()


async def probe_nats(url: str, timeout: float = 5.0) -> None:
    """Fail fast and clearly when nothing listens at ``url`` (the client would retry
    its first connection for ever)."""
    if "," in url:
        return  # a server list: the client tries each
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 4222
    except ValueError:
        raise UsageError("not a valid NATS URL", display_url(url)) from None
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as exc:
        why = getattr(exc, "strerror", None) or type(exc).__name__
        raise BusError(f"cannot connect to NATS at {display_url(url)}: {why}") from None
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()


def _is_nats(bus: Bus) -> bool:
    return type(bus).__module__ == "sentrail.bus.nats"


def _stream_tail(bus: Bus, tenant: str) -> int:
    """The last sequence of the tenant stream on a bus that is not NATS (memory://)."""
    stream = getattr(bus, "stream", None)
    return len(stream(tenant).messages) if callable(stream) else 0


class BusSource:
    """A tenant's stream on the bus, through a consumer of its own (``watch-<random>``).

    Without ``from_start`` only events published after the watch started are shown.
    """

    documents = True
    blocking = False

    def __init__(
        self,
        open_bus: Callable[[], Coroutine[Any, Any, Bus]],
        tenant: str,
        *,
        name: str,
        from_start: bool = False,
        poll: float = 0.5,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.open_bus = open_bus
        self.tenant = tenant
        self.name = name
        self.from_start = from_start
        self.poll = poll
        self.on_ready = on_ready or (lambda: None)
        self.consumer_name = f"watch-{uuid.uuid4().hex[:16]}"

    async def _subscribe(self, bus: Bus) -> tuple[Consumer, int, bool]:
        if _is_nats(bus):
            consumer = await _nats_consumer(bus, self.tenant, self.consumer_name, self.from_start)
            return consumer, 0, False
        skip = 0 if self.from_start else _stream_tail(bus, self.tenant)
        return await bus.consumer(self.tenant, self.consumer_name), skip, True

    def items(self, stop: Stop) -> Generator[bytes, None, None]:
        loop = asyncio.new_event_loop()
        bus: Bus | None = None
        consumer: Consumer | None = None
        try:
            bus = _run(loop, self.open_bus(), stop)
            consumer, skip, ack = _run(loop, self._subscribe(bus), stop)
            self.on_ready()
            failures = 0
            while not stop():
                try:
                    msgs: list[BusMessage] = _run(loop, consumer.fetch(256, self.poll), stop)
                    if msgs and ack:
                        _run(loop, consumer.ack(msgs), stop)
                    failures = 0
                except BusError:
                    failures += 1  # a bus restart: nats-py reconnects; give it a while
                    if failures > 20:
                        raise
                    time.sleep(self.poll)
                    continue
                for m in msgs:
                    if m.seq > skip:
                        yield m.data
        except _Stopped:
            return
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.wait_for(self._close(bus, consumer), 10))
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.close()

    async def _close(self, bus: Bus | None, consumer: Consumer | None) -> None:
        if consumer is not None:
            await consumer.close()
        if bus is None:
            return
        if _is_nats(bus):
            nats_bus: Any = bus
            with contextlib.suppress(Exception):
                await nats_bus.js.delete_consumer(stream_name(self.tenant), self.consumer_name)
        await bus.close()


def open_source(
    spec: str,
    *,
    follow: bool = False,
    tenant: str = "default",
    from_start: bool = False,
    key: str | None = None,
) -> Source:
    """``stdin`` | ``-`` | ``file:PATH`` | ``nats://HOST:PORT`` | ``http(s)://URL``."""
    if spec in ("stdin", "-"):
        return StdinSource()
    if spec.startswith("file:"):
        path = spec[len("file:") :]
        if not path:
            raise UsageError("file: needs a path (file:PATH)")
        if not Path(path).exists():
            raise UsageError("no such file", path)
        return FileSource(path, follow=follow)
    if spec.startswith(("nats://", "tls://")):
        from sentrail.bus.factory import open_bus

        async def opener() -> Bus:
            await probe_nats(spec)
            return await open_bus(spec)

        where = display_url(spec)  # never echo credentials in a URL
        return BusSource(opener, tenant, name=f"{where} tenant {tenant}", from_start=from_start)
    if spec.startswith(("http://", "https://")):
        return HttpSource(spec, key=key)
    raise UsageError(
        "unknown source (use stdin, file:PATH, nats://HOST:PORT or http(s)://URL)", spec[:200]
    )
