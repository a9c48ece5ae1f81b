"""Sign a checkpoint within ``delay`` seconds of any append, in any process that signs.

``log verify`` fails when events stay uncovered by a checkpoint for long (deleted
checkpoints look exactly like that), so every process that appends must sign soon after:
the service and the worker have their 1-second timers, but a gateway that records a
decision and then idles, or any other writer, has none. :class:`AutoSigner` is that timer
for any store: a daemon thread, woken by each commit that leaves a tenant past its latest
checkpoint, that waits ``delay`` (so a burst costs one signature) and signs every tenant
still behind. A failure is logged and retried at the next wake-up; the store signs what
is left when it closes.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from sentrail.errors import SentrailError

if TYPE_CHECKING:
    from sentrail.store.core import LogStore

log = logging.getLogger("sentrail.store")


class AutoSigner:
    def __init__(self, store: LogStore, delay: float = 1.0) -> None:
        if delay <= 0:
            raise ValueError("the signing delay must be positive")
        self.store = store
        self.delay = delay
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="autosign", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """A commit left a tenant behind its latest checkpoint."""
        self._wake.set()

    def sign_behind(self) -> None:
        for tenant in self.store.behind():
            try:
                self.store.checkpoint(tenant)
            except SentrailError as exc:
                log.error("checkpoint of a tenant log failed: %s", exc.message)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.wait(self.delay):
                return
            self._wake.clear()
            self.sign_behind()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self.sign_behind()
