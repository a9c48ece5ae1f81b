"""What every bus provides: per-tenant ordered streams, durable consumers, dedup by event id.

Delivery is at least once: a consumer that fails before acknowledging gets the messages
again (from its durable acknowledgement floor). Publishing is idempotent by event id
within the bus's duplicate window; beyond it the evidence store's own dedup by event id
makes delivery exactly once in effect.

Subjects are ``sentrail.events.<tenant>.<agent_id>``. A tenant or agent id that is not a
plain NATS token (letters, digits, ``-``, ``_``) is written ``_x`` + the hex of its UTF-8
bytes, so ids containing ``.``, ``*``, ``>`` or spaces cannot change the subject's shape.

Consumers acknowledge message by message (``ack``: exactly the messages given, like
JetStream's ``AckExplicit``), and a worker acknowledges only what it stored. A durable's
*acknowledgement floor* is the last message of its longest acknowledged prefix. A new
consumer of a durable (a replacement worker) delivers first, at once and in stream
order, every message after the floor — what its predecessor fetched and never
acknowledged comes before anything newer — so nothing a dead consumer fetched is lost,
and a run's events are never seen out of order. (A message acknowledged above the floor
may come again; the store's dedup by event id absorbs it.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

import msgspec

from sentrail.errors import SentrailError

SUBJECT_PREFIX = "sentrail.events"
_PLAIN = re.compile(r"[A-Za-z0-9_-]{1,200}")


class BusError(SentrailError):
    """The bus cannot do what was asked (unreachable, misconfigured, closed)."""


class BusMessage(msgspec.Struct, frozen=True):
    """One delivered event. ``seq`` is its position in the tenant stream (from 1)."""

    tenant: str
    agent_id: str
    event_id: str
    data: bytes
    seq: int
    delivered: int = 1  # how many times it was delivered to this consumer
    published_at: float = 0.0  # publisher's wall clock (seconds), for latency figures


def token(value: str) -> str:
    """A NATS subject token that stands for ``value`` and only for it."""
    if _PLAIN.fullmatch(value) and not value.startswith("_x"):
        return value
    return "_x" + value.encode().hex()


def untoken(tok: str) -> str:
    if tok.startswith("_x"):
        try:
            return bytes.fromhex(tok[2:]).decode()
        except (ValueError, UnicodeDecodeError):
            raise BusError(f"malformed subject token {tok[:40]!r}") from None
    return tok


def subject_for(tenant: str, agent_id: str) -> str:
    return f"{SUBJECT_PREFIX}.{token(tenant)}.{token(agent_id)}"


def stream_name(tenant: str) -> str:
    return f"SENTRAIL_{token(tenant)}"


class Consumer(Protocol):
    """A durable consumer of one tenant's stream."""

    async def fetch(self, max_msgs: int, timeout: float) -> list[BusMessage]:
        """Up to ``max_msgs`` messages in stream order; empty after ``timeout`` seconds."""
        ...

    async def ack(self, msgs: Sequence[BusMessage]) -> None:
        """Acknowledge exactly ``msgs`` (delivered to this consumer), nothing else."""
        ...

    async def close(self) -> None: ...


class Bus(Protocol):
    async def publish(
        self, tenant: str, agent_id: str, event_id: str, data: bytes
    ) -> tuple[int, bool]:
        """Append to the tenant stream; returns (stream seq, duplicate)."""
        ...

    async def consumer(self, tenant: str, durable: str, *, ack_wait: float = 30.0) -> Consumer:
        """The durable consumer ``durable`` of the tenant stream (created if new). It
        resumes after the durable's acknowledgement floor: every message after the floor
        is delivered first, in stream order. A live consumer gets a message it did not
        acknowledge again after ``ack_wait`` seconds (NATS)."""
        ...

    async def close(self) -> None: ...
