"""The NATS consumer's fetch against a scripted server (no network): what ends a pull
request, and what arrives after one is over. The real server is in the contract tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from nats.aio.msg import Msg

from sentrail.bus.base import BusError
from sentrail.bus.nats import NatsConsumer

Reply = Callable[[str, dict[str, Any]], list[Msg]]


def event(seq: int, delivered: int = 1) -> Msg:
    return Msg(
        None,  # type: ignore[arg-type]
        subject="sentrail.events.t.agent-1",
        reply=f"$JS.ACK.S.D.{delivered}.{seq}.{seq}.1700000000000000000.0",
        data=f'{{"seq":{seq}}}'.encode(),
        headers={"Nats-Msg-Id": f"e{seq}", "Sentrail-Published-At": "12.5"},
    )


def status(subject: str, code: str, description: str = "") -> Msg:
    headers = {"Status": code, "Description": description} if description else {"Status": code}
    return Msg(None, subject=subject, data=b"", headers=headers)  # type: ignore[arg-type]


class ScriptedNats:
    """Answers each pull request with what ``reply(reply_subject, request)`` says, through
    the subscription's callback, as the client's reading task would."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.cb: Callable[[Msg], Awaitable[None]] | None = None

    def new_inbox(self) -> str:
        return "_INBOX.test"

    async def subscribe(self, subject: str, cb: Any, **limits: Any) -> Any:
        assert subject == "_INBOX.test.*"
        self.cb = cb
        return self

    async def unsubscribe(self) -> None:
        return None

    async def publish(self, subject: str, payload: bytes, reply: str) -> None:
        assert subject == "$JS.API.CONSUMER.MSG.NEXT.S.D"
        request = json.loads(payload)
        self.requests.append((reply, request))
        answer = self.reply(reply, request)

        async def deliver() -> None:
            assert self.cb is not None
            for m in answer:
                await self.cb(m)

        asyncio.get_running_loop().create_task(deliver())


def fetch(nc: ScriptedNats, n: int, timeout: float, times: int = 1) -> list[list[int]]:
    async def go() -> list[list[int]]:
        consumer = await NatsConsumer(nc, "S", "D", "t").start()
        return [[m.seq for m in await consumer.fetch(n, timeout)] for _ in range(times)]

    return asyncio.run(go())


def test_a_status_left_from_an_earlier_request_does_not_end_this_one() -> None:
    def reply(subject: str, request: dict[str, Any]) -> list[Msg]:
        stale = status("_INBOX.test.0", "408", "Request Timeout")
        return [stale, event(1), event(2), status(subject, "404", "No Messages")]

    nc = ScriptedNats(reply)
    assert fetch(nc, 10, 2.0) == [[1, 2]]
    assert nc.requests == [("_INBOX.test.1", {"batch": 10, "no_wait": True})]


def test_an_empty_stream_waits_with_a_second_request_that_expires() -> None:
    def reply(subject: str, request: dict[str, Any]) -> list[Msg]:
        if request.get("no_wait"):
            return [status(subject, "404", "No Messages")]
        return [event(7), status(subject, "408", "Request Timeout")]

    nc = ScriptedNats(reply)
    assert fetch(nc, 5, 1.0) == [[7]]
    (first, _), (second, lingering) = nc.requests
    assert first != second and lingering["batch"] == 5 and 0 < lingering["expires"] < 1e9


def test_what_arrives_beyond_a_fetch_is_kept_in_order_for_the_next() -> None:
    def reply(subject: str, request: dict[str, Any]) -> list[Msg]:
        if subject == "_INBOX.test.1":  # more than asked: a late answer to an older request
            return [event(1), event(2), event(3), event(4)]
        return [status(subject, "404", "No Messages")]

    nc = ScriptedNats(reply)
    assert fetch(nc, 3, 1.0, times=2) == [[1, 2, 3], [4]]


def test_nothing_at_all_is_an_empty_fetch_after_the_timeout() -> None:
    nc = ScriptedNats(lambda subject, request: [])
    assert fetch(nc, 3, 0.05) == [[]]


def test_a_status_that_is_an_error_is_a_bus_error() -> None:
    def reply(subject: str, request: dict[str, Any]) -> list[Msg]:
        return [status(subject, "503", "No Responders")]

    with pytest.raises(BusError, match="503"):
        fetch(ScriptedNats(reply), 3, 1.0)


def test_delivery_counts_and_ids_come_from_the_message() -> None:
    nc = ScriptedNats(lambda subject, request: [event(9, delivered=3), status(subject, "404")])

    async def go() -> Any:
        consumer = await NatsConsumer(nc, "S", "D", "t", delivered_before=9).start()
        return await consumer.fetch(5, 1.0)

    (m,) = asyncio.run(go())
    assert (m.event_id, m.agent_id, m.seq, m.delivered, m.published_at) == (
        "e9",
        "agent-1",
        9,
        4,
        12.5,
    )
