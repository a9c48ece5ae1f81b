"""Driving a watch: feed a source into the watcher until the input ends, a signal comes,
or enough runs completed.

SIGINT and SIGTERM set a :class:`StopFlag` (installed by :func:`handle_signals`, main
thread only). The flag raises :class:`Interrupted` only while a *blocking* source waits
for input, so an event is never half processed; polling sources check the flag.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from sentrail.runtime.watch import Watcher
from sentrail.runtime.watch_sources import Source


class Interrupted(BaseException):
    """Raised by the signal handler while a blocking source waits for input."""


class StopFlag:
    """Set by SIGINT/SIGTERM. Raises only while a blocking read is in progress, so an
    event is never half processed; polling sources check the flag themselves."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.blocking = False

    def __call__(self) -> bool:
        return self.signum is not None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        if self.blocking:
            self.blocking = False
            raise Interrupted


@contextlib.contextmanager
def handle_signals(flag: StopFlag) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, flag.handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def pump(source: Source, watcher: Watcher, flag: StopFlag, max_runs: int | None) -> str:
    """Feed the watcher until the input ends (``eof``), a signal (``signal``) or
    ``max_runs`` completed runs (``max_runs``)."""
    items = source.items(flag)
    try:
        while not flag():
            flag.blocking = source.blocking
            try:
                item = next(items)
            except StopIteration:
                return "signal" if flag() else "eof"  # a polling source saw the flag
            finally:
                flag.blocking = False
            if source.documents:
                watcher.feed_document(item, f"{source.name}: message")
            else:
                watcher.feed_line(item, source.name)
            if max_runs is not None and watcher.stats.runs_completed >= max_runs:
                return "max_runs"
        return "signal"
    except Interrupted:
        return "signal"
    finally:
        items.close()
