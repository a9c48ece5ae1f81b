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
    import nats
    from nats.errors import Error as NatsError
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js import api
    from nats.js.errors import (
        KeyDeletedError,
        KeyNotFoundError,
        KeyWrongLastSequenceError,
        NotFoundError,
    )
except ImportError as _exc:  # pragma: no cover - depends on the installed extras
    raise BusError("NATS needs the extra: pip install 'sentrail[nats]'") from _exc

PUBLISHED_AT = "Sentrail-Published-At"
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


class NatsConsumer:
    def __init__(self, sub: Any, tenant: str, nc: Any = None, delivered_before: int = 0) -> None:
        self.sub = sub
        self.tenant = tenant
        self.nc = nc
        # Messages up to this stream seq went to the durable's previous holder (resumed):
        # their delivery counts start over on the recreated consumer, so one is added.
        self.delivered_before = delivered_before
        self._raw: dict[int, Any] = {}

    async def fetch(self, max_msgs: int, timeout: float) -> list[BusMessage]:
        try:
            msgs = await self.sub.fetch(max_msgs, timeout=timeout)
        except (NatsTimeout, TimeoutError):
            return []  # nothing arrived in time
        except NatsError as exc:
            raise BusError(f"NATS fetch failed: {exc!r}") from exc
        out = []
        for m in msgs:
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
            out.append(
                BusMessage(
                    self.tenant,
                    agent,
                    headers.get("Nats-Msg-Id", ""),
                    bytes(m.data),
                    seq,
                    int(meta.num_delivered) + (seq <= self.delivered_before),
                    at,
                )
            )
        return out

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
        with contextlib.suppress(NatsError):
            await self.sub.unsubscribe()


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
            nc = await nats.connect(
                url,
                connect_timeout=5,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                allow_reconnect=True,
            )
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
            try:
                await self.js.stream_info(name)
            except NotFoundError:
                await self.js.add_stream(config)
        except NatsError as exc:
            raise BusError(f"cannot create the JetStream stream {name}: {exc}") from exc
        self._streams.add(name)
        return name

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
            sub = await self.js.pull_subscribe(
                f"{SUBJECT_PREFIX}.{token(tenant)}.>",
                durable=durable,
                stream=stream,
                config=config,
            )
        except NatsError as exc:
            raise BusError(f"cannot create the consumer {durable}: {exc}") from exc
        return NatsConsumer(sub, tenant, self.nc, delivered_before)

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
