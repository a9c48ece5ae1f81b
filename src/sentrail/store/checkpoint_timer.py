"""The checkpoint timer: a tenant whose log grew is checkpointed within a second.

``log verify`` fails when events stay uncovered by a checkpoint for long (deleted
checkpoints look exactly like that), so every process that appends must sign soon after.
The store signs a checkpoint inside the append transaction every 1,000 events; this timer
covers the rest, so a checkpoint lags the log by at most 1,000 events or ``interval``
seconds, whichever comes first. It is the one timer of a store
(:meth:`~sentrail.store.core.LogStore.checkpoint_timer`), whoever appends: the HTTP
service, each stream worker, a gateway that records a decision and then idles, any
command that opens the store with its key
(:meth:`~sentrail.store.core.LogStore.sign_automatically`).

Each tick signs every tenant the store saw grow past its latest checkpoint in this
process (``store.behind()``: events, decisions, triage, redactions) and every tenant
marked with :meth:`CheckpointTimer.touch`. A failure is logged and the tenant stays
marked, so the next tick retries. :meth:`CheckpointTimer.stop` signs what arrived since
the last tick. :meth:`CheckpointTimer.start` first catches up (unless told not to): a
process that starts after another stopped without its last tick (a kill) checkpoints
every tenant whose stored log is ahead of its latest checkpoint, so a quiet tenant does
not stay uncovered until it next receives an event. Commands that only read or verify
never catch up: signing a tail they were asked to check would hide what they look for.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from sentrail.errors import SentrailError

if TYPE_CHECKING:
    from sentrail.store.core import LogStore

log = logging.getLogger("sentrail.checkpoints")


class CheckpointTimer:
    def __init__(self, store: LogStore, interval: float = 1.0) -> None:
        if interval <= 0:
            raise ValueError("the checkpoint interval must be positive")
        self.store = store
        self.interval = interval
        self.on_signed: Callable[[], None] = lambda: None
        self._dirty: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def touch(self, tenant: str) -> None:
        """Mark ``tenant`` to be checkpointed at the next tick."""
        with self._lock:
            self._dirty.add(tenant)

    def tick(self) -> int:
        """Checkpoint every marked tenant and every tenant behind now; returns how many
        checkpoints were signed."""
        with self._lock:
            tenants, self._dirty = self._dirty, set()
        tenants.update(self.store.behind())
        signed = 0
        for tenant in sorted(tenants):
            try:
                before = self.store.latest_checkpoint(tenant)
                after = self.store.checkpoint(tenant)
            except SentrailError as exc:
                log.error("checkpoint of a tenant log failed: %s", exc.message)
                self.touch(tenant)
                continue
            if after is not None and (before is None or after.size > before.size):
                signed += 1
                self.on_signed()
        return signed

    def catch_up(self) -> int:
        """Checkpoint now every tenant whose stored log is ahead of its latest checkpoint."""
        try:
            tenants = self.store.tenants_behind()
        except SentrailError as exc:
            log.error("cannot list the tenants behind their checkpoint: %s", exc.message)
            return 0
        for tenant in tenants:
            self.touch(tenant)
        return self.tick()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, *, catch_up: bool = True) -> None:
        """Tick every ``interval`` from now on (after catching up, by default)."""
        if catch_up:
            self.catch_up()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="checkpoints", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop ticking, and sign what arrived since the last tick."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.tick()
