"""NATS JetStream: a file-backed stream per tenant, durable pull consumers, AckExplicit.

- stream ``SENTRAIL_<tenant>`` over ``sentrail.events.<tenant>.>``, file storage,
  ``duplicate_window`` (default 2 minutes) for dedup by ``Nats-Msg-Id`` = event id;
- consumer: durable pull consumer, ``AckPolicy.EXPLICIT`` (each message processed is
  acknowledged, and nothing else: an acknowledgement never covers a message this process
  did not store), redelivery after ``ack_wait``;
- resuming: opening a durable that has delivered messages it has not had acknowledged
  (its holder died) recreates it to start right after its acknowledgement floor, so the
  new holder gets those messages first and in stream order — not after ``ack_wait``,
  behind newer ones (a run's events must be folded in order);
- the publisher's wall clock travels in the ``Sentrail-Published-At`` header.

Reconnection is nats-py's: a server restart is survived by publishers and consumers
(publishes wait for the reconnect up to their timeout and raise on failure, so nothing
is silently lost; the caller retries with the same event id and dedup does the rest).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from sentrail.bus.base import (
    SUBJECT_PREFIX,
    BusError,
    BusMessage,
    stream_name,
    subject_for,
    token,
    untoken,
)

try:
    from nats.aio.client import Client as NatsClient
    from nats.errors import Error as NatsError
    from nats.js import api
    from nats.js.errors import (
        BadRequestError,
        KeyDeletedError,
        KeyNotFoundError,
        KeyWrongLastSequenceError,
        NotFoundError,
    )
except ImportError as _exc:  # pragma: no cover - depends on the installed extras
    raise BusError("NATS needs the extra: pip install 'sentrail[nats]'") from _exc

PUBLISHED_AT = "Sentrail-Published-At"
# JetStream's answers to adding a stream whose name or subjects are taken (10058, 10065):
# after a restart, a stream not yet restored. Tried again for about 5 s.
_BEING_RESTORED = frozenset({10058, 10065})
_STREAM_TRIES = 10
# The ASCII characters for which ``str.isspace()`` is true.
_NAME_SPACE = re.compile("[\t\n\x0b\x0c\r\x1c-\x1f ]")


def parse_header_lines(raw: bytes) -> dict[str, str]:
    """nats-py's ``Client._parse_header_lines`` (``Name: Value`` lines; a name that is not
    ASCII or holds white space is skipped; values decoded with ``errors="replace"``), with
    the white-space test of a name made by one regular expression instead of a generator
    over its characters: that test was most of the client's cost per message received
    (every delivered event carries three headers). A property test holds the two equal."""
    out: dict[str, str] = {}
    for line in raw.split(b"\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        try:
            key = name.strip().decode("ascii")
        except UnicodeDecodeError:
            continue
        if _NAME_SPACE.search(key) is None:
            out[key] = value.strip().decode("utf-8", "replace")
    return out


_CONNECT: dict[str, Any] = {
    "connect_timeout": 5,
    "max_reconnect_attempts": -1,
    "reconnect_time_wait": 0.5,
    "allow_reconnect": True,
}


class _Client(NatsClient):
    """nats-py's client with :func:`parse_header_lines`."""

    _parse_header_lines = staticmethod(parse_header_lines)


LEASE_BUCKET = "sentrail_leases"


class NatsLease:
    """An exclusive lease; ``renew()`` at least every ttl/3, ``release()`` at the end."""

    def __init__(self, kv: Any, key: str, owner: str, ttl: float, revision: int) -> None:
        self.kv = kv
        self.key = key
        self.owner = owner
        self.ttl = ttl
        self.revision = revision

    def value(self) -> bytes:
        return f"{self.owner}|{time.time() + self.ttl:.3f}".encode()

    async def renew(self) -> None:
        try:
            self.revision = await self.kv.update(self.key, self.value(), last=self.revision)
        except NatsError as exc:
            raise BusError(f"the lease {self.key} was lost: {exc}") from exc

    async def release(self) -> None:
        with contextlib.suppress(NatsError):
            await self.kv.delete(self.key, last=self.revision)


def _parse_lease(value: bytes | None) -> tuple[str, float]:
    owner, _, expires = (value or b"").decode(errors="replace").rpartition("|")
    try:
        return owner or "?", float(expires)
    except ValueError:
        return "?", 0.0


_STATUS = "Status"
_HEARTBEAT = "100"
_REQUEST_ENDS = frozenset({"404", "408", "409"})  # no messages, expired, conflict (a bound)
_PENDING_MSGS = 512 * 1024
_PENDING_BYTES = 256 * 1024 * 1024


class NatsConsumer:
    """A durable pull consumer, fetched through a core subscription of its own inbox.

    A fetch is one or two pull requests to ``$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>``
    — the same two nats-py's ``PullSubscription.fetch`` makes: first ``no_wait`` (what is
    there now, ended by a 404 status), then, when that gave nothing, one that waits up to
    the timeout — with one reply subject per request, so a status that ends an earlier
    request (an expiry that came late) cannot end this one. The messages arrive through a
    callback into a buffer; nats-py's fetch instead awaits each message with a timeout of
    its own (a task per message), which cost several times the rest of the bus per
    message. A message that arrives after its request timed out stays in the buffer, in
    stream order, for the next fetch.
    """

    def __init__(
        self, nc: Any, stream: str, durable: str, tenant: str, delivered_before: int = 0
    ) -> None:
        self.nc = nc
        self.tenant = tenant
        self.subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        # Messages up to this stream seq went to the durable's previous holder (resumed):
        # their delivery counts start over on the recreated consumer, so one is added.
        self.delivered_before = delivered_before
        self._raw: dict[int, Any] = {}
        self._inbox = nc.new_inbox()
        self._sub: Any = None
        self._buffer: list[Any] = []
        self._request = ""  # the reply subject of the request in flight
        self._requests = 0
        self._ended = False  # the request in flight was ended by a status
        self._failed: str | None = None  # a status that is an error (not an end)
        self._wake = asyncio.Event()
        self._wanted = 0

    async def start(self) -> NatsConsumer:
        self._sub = await self.nc.subscribe(
            f"{self._inbox}.*",
            cb=self._on_msg,
            pending_msgs_limit=_PENDING_MSGS,
            pending_bytes_limit=_PENDING_BYTES,
        )
        return self

    async def _on_msg(self, m: Any) -> None:
        headers = m.headers
        status = headers.get(_STATUS) if headers and not m.data else None
        if status is None:
            self._buffer.append(m)
            if len(self._buffer) >= self._wanted:
                self._wake.set()
            return
        if status == _HEARTBEAT or m.subject != self._request:
            return  # a heartbeat, or the end of a request that is over
        if status not in _REQUEST_ENDS:
            self._failed = f"{status} {headers.get('Description', '')}".strip()
        self._ended = True
        self._wake.set()

    async def _pull(self, wanted: int, timeout: float, *, wait: bool) -> None:
        """One pull request for ``wanted`` messages; returns when they are in the buffer,
        when the server ends the request, or after ``timeout`` seconds."""
        self._requests += 1
        self._request = f"{self._inbox}.{self._requests}"
        self._ended, self._failed = False, None
        self._wanted = len(self._buffer) + wanted
        self._wake.clear()
        request: dict[str, object] = {"batch": wanted}
        if wait:
            request["expires"] = max(int(timeout * 1e9) - 100_000, 1)
        else:
            request["no_wait"] = True
        try:
            await self.nc.publish(self.subject, json.dumps(request).encode(), reply=self._request)
        except NatsError as exc:
            raise BusError(f"NATS fetch failed: {exc!r}") from exc
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._request = ""
        if self._failed is not None:
            raise BusError(f"NATS fetch failed: status {self._failed}")

    async def fetch(self, max_msgs: int, timeout: float) -> list[BusMessage]:
        if self._sub is None:
            await self.start()
        start = time.monotonic()
        if len(self._buffer) < max_msgs:
            await self._pull(max_msgs - len(self._buffer), timeout, wait=False)
        if not self._buffer:
            left = timeout - (time.monotonic() - start)
            if left > 0.001:
                await self._pull(max_msgs, left, wait=True)
        taken, self._buffer = self._buffer[:max_msgs], self._buffer[max_msgs:]
        return [self._message(m) for m in taken]

    def _message(self, m: Any) -> BusMessage:
        meta = m.metadata
        parts = m.subject.split(".")
        agent = untoken(parts[3]) if len(parts) >= 4 else ""
        headers = m.headers or {}
        try:
            at = float(headers.get(PUBLISHED_AT, "0"))
        except ValueError:
            at = 0.0
        seq = int(meta.sequence.stream)
        self._raw[seq] = m
        return BusMessage(
            self.tenant,
            agent,
            headers.get("Nats-Msg-Id", ""),
            bytes(m.data),
            seq,
            int(meta.num_delivered) + (seq <= self.delivered_before),
            at,
        )

    async def ack(self, msgs: Sequence[BusMessage]) -> None:
        raws = []
        for m in msgs:
            raw = self._raw.get(m.seq)
            if raw is None:
                raise BusError(f"message {m.seq} was not delivered to this consumer")
            raws.append(raw)
        try:
            # The consumer handles acknowledgements in order: the last one is sent as a
            # request, and its answer says the server processed all of them (a flush only
            # says they arrived). A consumer opened next then starts past them, always.
            for raw in raws[:-1]:
                await raw.ack()
            if raws:
                await raws[-1].ack_sync(timeout=10)
        except (NatsError, TimeoutError) as exc:
            raise BusError(f"NATS ack failed: {exc!r}") from exc
        for m in msgs:
            self._raw.pop(m.seq, None)

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(NatsError):
                await self._sub.unsubscribe()


class NatsBus:
    def __init__(self, nc: Any, duplicate_window: float = 120.0) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.duplicate_window = duplicate_window
        self._streams: set[str] = set()

    @classmethod
    async def connect(cls, url: str, **options: Any) -> NatsBus:
        # nats-py retries a first connection forever when reconnects are allowed: fail
        # fast on a server that is not there (later outages are ridden out by reconnects).
        parts = urlsplit(url)
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(parts.hostname or "127.0.0.1", parts.port or 4222), 5
            )
            writer.close()
        except (OSError, TimeoutError) as exc:
            raise BusError(f"cannot connect to NATS at {url}: {exc}") from None
        try:
            nc = _Client()
            await nc.connect(url, **_CONNECT)
        except (NatsError, OSError) as exc:
            raise BusError(f"cannot connect to NATS at {url}: {exc}") from None
        return cls(nc, **options)

    async def ensure_stream(self, tenant: str) -> str:
        name = stream_name(tenant)
        if name in self._streams:
            return name
        config = api.StreamConfig(
            name=name,
            subjects=[f"{SUBJECT_PREFIX}.{token(tenant)}.>"],
            storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS,
            duplicate_window=self.duplicate_window,
        )
        try:
            await self._find_or_add(config)
        except NatsError as exc:
            raise BusError(f"cannot create the JetStream stream {name}: {exc}") from exc
        self._streams.add(name)
        return name

    async def _find_or_add(self, config: api.StreamConfig) -> None:
        """The stream ``config`` names, made when it is not there. Right after a server
        restart JetStream may still be restoring it from disk: not found by name, yet its
        name or subjects taken. Then it is looked for again, for a few seconds."""
        assert config.name is not None
        for attempt in range(_STREAM_TRIES):
            try:
                await self.js.stream_info(config.name)
                return
            except NotFoundError:
                pass
            try:
                await self.js.add_stream(config)
                return
            except BadRequestError as exc:
                if exc.err_code not in _BEING_RESTORED or attempt == _STREAM_TRIES - 1:
                    raise
            await asyncio.sleep(0.1 * (attempt + 1))

    async def publish(
        self, tenant: str, agent_id: str, event_id: str, data: bytes
    ) -> tuple[int, bool]:
        stream = await self.ensure_stream(tenant)
        headers = {"Nats-Msg-Id": event_id, PUBLISHED_AT: repr(time.time())}
        try:
            ack = await self.js.publish(
                subject_for(tenant, agent_id), data, timeout=10, stream=stream, headers=headers
            )
        except (NatsError, TimeoutError) as exc:
            raise BusError(f"NATS publish failed: {exc!r}") from exc
        return int(ack.seq), bool(ack.duplicate)

    async def consumer(self, tenant: str, durable: str, *, ack_wait: float = 30.0) -> NatsConsumer:
        stream = await self.ensure_stream(tenant)
        config = api.ConsumerConfig(
            durable_name=durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_ack_pending=100_000,
            deliver_policy=api.DeliverPolicy.ALL,
        )
        try:
            delivered_before = await self._resume(stream, durable, config)
        except NatsError as exc:
            raise BusError(f"cannot create the consumer {durable}: {exc}") from exc
        return await self.pull_consumer(tenant, durable, config, delivered_before)

    async def pull_consumer(
        self, tenant: str, durable: str, config: Any, delivered_before: int = 0
    ) -> NatsConsumer:
        """The durable pull consumer ``durable`` of the tenant stream — created with
        ``config`` (filtered to the tenant's subjects) unless it exists — started."""
        stream = await self.ensure_stream(tenant)
        try:
            try:
                await self.js.consumer_info(stream, durable)
            except NotFoundError:
                config.filter_subject = f"{SUBJECT_PREFIX}.{token(tenant)}.>"
                config.name = config.durable_name = durable
                await self.js.add_consumer(stream, config=config)
            consumer = NatsConsumer(self.nc, stream, durable, tenant, delivered_before)
            return await consumer.start()
        except NatsError as exc:
            raise BusError(f"cannot create the consumer {durable}: {exc}") from exc

    async def _resume(self, stream: str, durable: str, config: Any) -> int:
        """Recreate ``durable`` to start after its acknowledgement floor when it holds
        messages delivered and never acknowledged (or predates explicit acks); returns
        the last stream seq it had delivered when it was recreated (else 0)."""
        try:
            info = await self.js.consumer_info(stream, durable)
        except NotFoundError:
            return 0  # created fresh by pull_subscribe
        floor = int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0
        if info.config.deliver_policy == api.DeliverPolicy.BY_START_SEQUENCE:
            # A consumer created to start at a seq reports no floor until it acks one in
            # order: everything before its start was acknowledged by the one it replaced.
            floor = max(floor, int(info.config.opt_start_seq or 1) - 1)
        delivered = int(info.delivered.stream_seq or 0) if info.delivered else 0
        explicit = info.config.ack_policy == api.AckPolicy.EXPLICIT
        if delivered <= floor and explicit:
            return 0  # nothing in flight: the durable resumes where it is
        await self.js.delete_consumer(stream, durable)
        config.deliver_policy = api.DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = floor + 1
        return delivered

    async def lease(self, name: str, owner: str, ttl: float = 10.0) -> NatsLease:
        """Hold ``name`` exclusively: a KV entry ``owner|expires_at`` that its holder renews.
        A lease past its expiry (a dead holder) is taken over; BusError while another
        owner holds it. (Expiry is judged on each host's clock: keep clocks in sync.)"""
        try:
            kv = await self.js.create_key_value(api.KeyValueConfig(bucket=LEASE_BUCKET, history=1))
        except NatsError:
            kv = await self.js.key_value(LEASE_BUCKET)
        key = token(name)
        lease = NatsLease(kv, key, owner, ttl, 0)
        try:
            lease.revision = await kv.create(key, lease.value())
            return lease
        except KeyWrongLastSequenceError:
            pass
        except NatsError as exc:
            raise BusError(f"cannot take the lease {name}: {exc}") from exc
        try:
            entry = await kv.get(key)
        except (KeyNotFoundError, KeyDeletedError):
            entry = None
        except NatsError as exc:
            raise BusError(f"cannot read the lease {name}: {exc}") from exc
        holder, expires = _parse_lease(entry.value if entry is not None else b"")
        if entry is not None and expires > time.time():
            raise BusError(
                f"{name} is held by {holder!r} until it stops renewing "
                f"(expires in {expires - time.time():.0f} s)"
            )
        try:
            if entry is None:
                lease.revision = await kv.create(key, lease.value())
            else:
                lease.revision = await kv.update(key, lease.value(), last=entry.revision)
        except NatsError as exc:
            raise BusError(f"lost the race for the lease {name}: {exc}") from exc
        return lease

    async def delete_stream(self, tenant: str) -> None:
        """Remove the tenant's stream (tests and operators; not used by workers)."""
        with contextlib.suppress(NotFoundError):
            await self.js.delete_stream(stream_name(tenant))
        self._streams.discard(stream_name(tenant))

    async def close(self) -> None:
        try:
            await self.nc.drain()
        except NatsError:
            await self.nc.close()
