"""`sentrail emit --loop` stops on SIGINT even when the cancellation is lost in a publish.

Python 3.11's ``asyncio.wait_for`` (what nats-py awaits a JetStream publish's ack with)
returns the result and drops the ``CancelledError`` when the ack arrives together with
the cancellation that ``asyncio.run`` sends on Ctrl-C; ``asyncio.run`` cancels only once,
so a loop that relied on that one cancellation went on publishing for ever.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import pytest
import typer

import sentrail.cli.watch as watch_cli
from sentrail.runtime.emit import EventReader, Outgoing, emit_until_signal
from tests.watch.conftest import TRACES


class LosesTheCancellation:
    """A sink whose send, when cancelled, completes as if its ack had come with the
    cancellation (the ``wait_for`` race above); it sends SIGINT to this process itself."""

    def __init__(self, signal_at: int) -> None:
        self.signal_at = signal_at
        self.sends = 0
        self.after_signal = 0
        self.lost = 0
        self.closed = False

    async def send(self, batch: list[Outgoing]) -> int:
        self.sends += 1
        if self.sends > self.signal_at:
            self.after_signal += 1
            assert self.after_signal < 100, "still publishing long after SIGINT"
        if self.sends == self.signal_at:
            os.kill(os.getpid(), signal.SIGINT)
        try:
            await asyncio.sleep(0.002)
        except asyncio.CancelledError:
            self.lost += 1  # the ack "arrived": the cancellation is gone
        return 0

    async def close(self) -> None:
        self.closed = True


def test_emit_loop_stops_on_sigint_even_when_a_publish_loses_the_cancellation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = LosesTheCancellation(signal_at=5)

    def fake_sink_for(to: str, **options: Any) -> tuple[str, Any]:
        async def opener() -> LosesTheCancellation:
            return sink

        return "fake", opener

    monkeypatch.setattr(watch_cli, "sink_for", fake_sink_for)
    with pytest.raises(typer.Exit) as stopped:
        watch_cli.emit_command(
            str(TRACES / "triage-restart.json"),
            rate=0.0,
            to="nats://127.0.0.1:1",
            key=None,
            app_id=None,
            tenant="t",
            loop=True,
            batch=1,
        )
    assert stopped.value.exit_code == 130
    assert sink.lost == 1  # the race happened
    assert sink.after_signal <= 1  # and at most the send in flight went on
    assert sink.closed
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


class NeverAwaits:
    """A sink that completes every send without yielding to the event loop (NDJSON to
    stdout is written this way); it sends SIGINT to this process itself."""

    def __init__(self, signal_at: int) -> None:
        self.signal_at = signal_at
        self.sends = 0
        self.after_signal = 0

    async def send(self, batch: list[Outgoing]) -> int:
        self.sends += 1
        if self.sends > self.signal_at:
            self.after_signal += 1
            assert self.after_signal < 100, "still sending long after SIGINT"
        if self.sends == self.signal_at:
            os.kill(os.getpid(), signal.SIGINT)
        return 0

    async def close(self) -> None:
        return None


def test_emit_loop_stops_on_sigint_with_a_sink_that_never_yields() -> None:
    sink = NeverAwaits(signal_at=5)

    async def opener() -> NeverAwaits:
        return sink

    reader = EventReader(str(TRACES / "triage-restart.json"), lambda m: None)
    stats = asyncio.run(emit_until_signal(reader, opener, repeat=True, batch=1))
    assert stats.stopped_by == signal.SIGINT
    assert sink.after_signal <= 2  # the loop handles the signal within a turn or two
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
