"""``sentrail emit``: replay traces as live events, at a chosen rate, to a sink.

Input: a trace document, a directory of them, or an NDJSON event file (``-`` for stdin).
A trace is replayed as ``run_started``, one ``step`` per step, ``run_completed``
(:func:`~sentrail.model.events.events_of`). Every event gets an ``event_id``: its own,
or ``<run_id>/<kind>/<index>`` (its position in the run), so a retried send is a
duplicate, not a new event. With ``repeat`` the input is replayed again and again; each
pass renames the runs (``<run_id>-loop<n>``) and their event ids, so a pass is new runs.

Sinks (:func:`sink_for`): NDJSON on a byte stream (stdout), a bus (``nats://``: the
tenant's stream, subject per agent), or the HTTP service (NDJSON batches POSTed to
``/v1/apps/{app}/events``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol
from urllib.parse import quote

import msgspec

from sentrail.bus.base import Bus
from sentrail.errors import InputError, SentrailError, UsageError
from sentrail.model.decode import decode_event, decode_run
from sentrail.model.events import Event, RunCompleted, RunStarted, StepEvent, events_of
from sentrail.runtime.framing import ndjson_lines
from sentrail.runtime.sources import (
    STDIN,
    is_event_stream_name,
    iter_trace_paths,
    looks_like_event_stream,
    read_document,
)
from sentrail.runtime.watch_sources import display_url, import_httpx, probe_nats

_KIND: dict[type, str] = {
    RunStarted: "run_started",
    StepEvent: "step",
    RunCompleted: "run_completed",
}


class Outgoing(msgspec.Struct, frozen=True):
    run_id: str
    agent_id: str
    event_id: str
    kind: str
    data: bytes  # one NDJSON line, without the newline


class EventReader:
    """The events of ``path``, pass after pass (``events(n)`` renames runs for n > 0)."""

    def __init__(self, path: str, on_error: Callable[[str], None]) -> None:
        self.path = path
        self.on_error = on_error
        self.invalid = 0
        self._stdin: bytes | None = None
        self._index: dict[str, int] = {}
        self._agents: dict[str, str] = {}

    def _read(self, path: str) -> bytes:
        if path != STDIN:
            return read_document(path)
        if self._stdin is None:
            self._stdin = read_document(STDIN)
        return self._stdin

    def _bad(self, message: str) -> None:
        self.invalid += 1
        self.on_error(message)

    def events(self, copy: int = 0) -> Iterator[Outgoing]:
        self._index, self._agents = {}, {}
        for path in iter_trace_paths(self.path):
            try:
                data = self._read(path)
            except SentrailError as exc:
                self._bad(f"{path}: {exc.message}")
                continue
            if is_event_stream_name(path) or looks_like_event_stream(data):
                yield from self._lines(path, data, copy)
                continue
            try:
                run = decode_run(data)
            except SentrailError as exc:
                self._bad(f"{path}: {exc}")
                continue
            for ev in events_of(run):
                yield self._out(ev, None, copy)

    def _lines(self, path: str, data: bytes, copy: int) -> Iterator[Outgoing]:
        for lineno, line in ndjson_lines(data):
            try:
                ev = decode_event(line)
            except SentrailError as exc:
                self._bad(f"{path}:line {lineno}: {exc}")
                continue
            yield self._out(ev, line, copy)

    def _out(self, ev: Event, raw: bytes | None, copy: int) -> Outgoing:
        run_id = ev.run_id if copy == 0 else f"{ev.run_id}-loop{copy}"
        kind = _KIND[type(ev)]
        index = self._index.get(run_id, 0)
        self._index[run_id] = index + 1
        if isinstance(ev, RunStarted):
            self._agents[run_id] = ev.agent_id
        if ev.event_id:
            event_id = ev.event_id if copy == 0 else f"{ev.event_id}-loop{copy}"
        else:
            event_id = f"{run_id}/{kind}/{index}"
        if raw is not None and copy == 0 and ev.event_id:
            data = raw  # exactly the bytes we were given
        else:
            obj: dict[str, Any] = (
                msgspec.json.decode(raw) if raw is not None else msgspec.to_builtins(ev)
            )
            obj["run_id"] = run_id
            obj["event_id"] = event_id
            data = msgspec.json.encode(obj)
        return Outgoing(run_id, self._agents.get(run_id, "unknown"), event_id, kind, data)


class Pacer:
    """Spaces events ``1/rate`` seconds apart (no spacing when ``rate`` <= 0)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.clock = clock
        self._due: float | None = None

    def delay(self) -> float:
        """Seconds to wait before the next event (and book its slot)."""
        if not self.interval:
            return 0.0
        now = self.clock()
        if self._due is None or self._due < now - 1.0:
            self._due = now  # first event, or far behind: do not burst to catch up
        wait = max(0.0, self._due - now)
        self._due += self.interval
        return wait


# -- sinks -----------------------------------------------------------------------------------
class EmitTarget(Protocol):
    name: str

    async def send(self, batch: list[Outgoing]) -> int:
        """Deliver ``batch`` in order; returns how many were duplicates."""
        ...

    async def close(self) -> None: ...


class StreamTarget:
    """NDJSON lines on a byte stream (stdout), flushed after every batch."""

    def __init__(self, stream: IO[bytes], name: str = "stdout") -> None:
        self.stream = stream
        self.name = name

    async def send(self, batch: list[Outgoing]) -> int:
        self.stream.write(b"".join(o.data + b"\n" for o in batch))
        self.stream.flush()
        return 0

    async def close(self) -> None:
        return None


class BusTarget:
    """The tenant's stream on a bus (subject per agent, deduplicated by event id)."""

    def __init__(self, bus: Bus, tenant: str, name: str) -> None:
        self.bus = bus
        self.tenant = tenant
        self.name = name

    async def send(self, batch: list[Outgoing]) -> int:
        duplicates = 0
        for o in batch:
            _, dup = await self.bus.publish(self.tenant, o.agent_id, o.event_id, o.data)
            duplicates += dup
        return duplicates

    async def close(self) -> None:
        await self.bus.close()


class HttpTarget:
    """NDJSON batches POSTed to ``{base}/v1/apps/{app}/events`` with a Bearer key.

    Retries (same bytes, so the same event ids) on transport errors, 429 and 5xx."""

    def __init__(
        self,
        base: str,
        app: str,
        key: str,
        *,
        attempts: int = 4,
        backoff: float = 0.5,
        transport: Any = None,
    ) -> None:
        httpx = import_httpx()
        self.name = display_url(base)
        self.endpoint = f"{base.rstrip('/')}/v1/apps/{quote(app, safe='')}/events"
        self.attempts = attempts
        self.backoff = backoff
        self._httpx = httpx
        self.client = httpx.AsyncClient(
            timeout=30.0,
            transport=transport,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"},
        )

    async def send(self, batch: list[Outgoing]) -> int:
        body = b"".join(o.data + b"\n" for o in batch)
        why = ""
        for attempt in range(self.attempts):
            try:
                r = await self.client.post(self.endpoint, content=body)
            except self._httpx.TransportError as exc:
                why = type(exc).__name__
            else:
                if r.status_code in (200, 201):
                    return _duplicates(r)
                if r.status_code != 429 and r.status_code < 500:
                    raise InputError(
                        f"the service refused the events: HTTP {r.status_code}: {_detail(r)}",
                        self.name,
                    )
                why = f"HTTP {r.status_code}"
            if attempt + 1 < self.attempts:
                await asyncio.sleep(self.backoff * 2**attempt)
        raise InputError(
            f"the service did not take the events after {self.attempts} attempts ({why})",
            self.name,
        )

    async def close(self) -> None:
        await self.client.aclose()


def _duplicates(r: Any) -> int:
    try:
        acks = r.json().get("acknowledged", [])
        return sum(1 for a in acks if isinstance(a, dict) and a.get("duplicate"))
    except (ValueError, AttributeError):
        return 0


def _detail(r: Any) -> str:
    try:
        body = r.json()
        text = body.get("detail") or body.get("title") or ""
    except (ValueError, AttributeError):
        text = r.text
    return str(text)[:300]


# -- the loop --------------------------------------------------------------------------------
@dataclass
class EmitStats:
    events: int = 0
    duplicates: int = 0
    passes: int = 0
    stopped_by: int | None = None  # the signal that stopped it (:func:`emit_until_signal`)


CLOSE_TIMEOUT = 10.0  # seconds a sink may take to close (a bus drains) before it is left


def _never() -> bool:
    return False


async def emit(
    reader: EventReader,
    sink: EmitTarget,
    *,
    rate: float = 0.0,
    repeat: bool = False,
    batch: int = 100,
    pacer: Pacer | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    stats: EmitStats | None = None,
    stop: Callable[[], bool] = _never,
) -> EmitStats:
    """Send every event of ``reader`` to ``sink``; paced, batched, optionally forever.
    ``stop()`` is asked before every send and pause: once it is true, nothing more is
    sent (what is pending is dropped) and the stats so far are returned."""
    pacer = pacer or Pacer(rate)
    stats = stats if stats is not None else EmitStats()
    pending: list[Outgoing] = []

    async def flush() -> None:
        if pending and not stop():
            stats.duplicates += await sink.send(pending)
            stats.events += len(pending)
            pending.clear()
            # A sink that never suspends (stdout) would keep the loop from ever handling
            # a signal: let it run once per send.
            await asyncio.sleep(0)

    copy = 0
    while True:
        sent_any = False
        for out in reader.events(copy):
            if stop():
                return stats
            sent_any = True
            wait = pacer.delay()
            if wait > 0:
                await flush()  # what is due goes out before the pause
                if stop():
                    return stats
                await sleep(wait)
            pending.append(out)
            if len(pending) >= batch:
                await flush()
        await flush()
        stats.passes += 1
        if stop() or not (repeat and sent_any):
            return stats
        copy += 1


SinkOpener = Callable[[], Awaitable[EmitTarget]]


def sink_for(
    to: str, *, key: str | None = None, app: str | None = None, tenant: str = "default"
) -> tuple[str, SinkOpener]:
    """``stdout`` | ``nats://HOST:PORT`` | ``http(s)://SERVICE``: the sink's display name
    and how to open it (in the event loop that will use it)."""
    if to in ("stdout", "-"):

        async def stdout_sink() -> EmitTarget:
            return StreamTarget(sys.stdout.buffer)

        return "stdout", stdout_sink
    if to.startswith(("nats://", "tls://")):

        async def nats_sink() -> EmitTarget:
            from sentrail.bus.factory import open_bus

            await probe_nats(to)
            return BusTarget(await open_bus(to), tenant, display_url(to))

        return f"{display_url(to)} tenant {tenant}", nats_sink
    if to.startswith(("http://", "https://")):
        if not key or not app:
            raise UsageError("--to http(s):// needs --key (or SENTRAIL_API_KEY) and --app")
        service_key, service_app = key, app

        async def http_sink() -> EmitTarget:
            return HttpTarget(to, service_app, service_key)

        return display_url(to), http_sink
    raise UsageError("--to must be stdout, nats://HOST:PORT or http(s)://SERVICE", to[:200])


async def emit_to(reader: EventReader, open_sink: SinkOpener, **options: Any) -> EmitStats:
    """Open the sink, :func:`emit` into it, close it (waiting at most ``CLOSE_TIMEOUT``)."""
    sink = await open_sink()
    try:
        return await emit(reader, sink, **options)
    finally:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sink.close(), CLOSE_TIMEOUT)


async def emit_until_signal(
    reader: EventReader, open_sink: SinkOpener, **options: Any
) -> EmitStats:
    """:func:`emit_to` until SIGINT or SIGTERM; ``stopped_by`` names the signal.

    The signal sets a flag that :func:`emit` asks before every send, and cancels what is
    awaited (a pause, a publish waiting for a NATS server that is away). The flag is what
    stops the loop: a cancellation alone can be lost — Python 3.11's ``asyncio.wait_for``
    (nats-py awaits a publish's ack with it) returns the result and drops the
    ``CancelledError`` when the ack arrives together with it, and ``asyncio.run`` cancels
    only once — and ``emit --loop`` then went on publishing for ever."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    stats = EmitStats()

    def on_signal(signum: int) -> None:
        if stats.stopped_by is None:
            stats.stopped_by = signum
        if task is not None:
            task.cancel()

    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await emit_to(
            reader, open_sink, stats=stats, stop=lambda: stats.stopped_by is not None, **options
        )
    except asyncio.CancelledError:
        if stats.stopped_by is None:
            raise
        if task is not None:
            task.uncancel()
        return stats
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
