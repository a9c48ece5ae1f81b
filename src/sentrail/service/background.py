"""The checkpoint timer: a tenant whose log grew is checkpointed within a second.

The store also signs a checkpoint inside the append transaction every 1,000 events, so a
checkpoint lags the log by at most 1,000 events or ``interval`` seconds, whichever comes
first. ``touch(tenant)`` marks a tenant whose log grew; every tenant the store saw grow in
this process (``store.behind()``: decisions, triage, redactions too) is marked as well,
and on start every tenant whose stored log is ahead of its latest checkpoint. The timer
thread signs a checkpoint for every marked tenant once per interval. A failure is logged
and the tenant stays marked, so the next tick retries.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sentrail.errors import SentrailError
from sentrail.store.core import LogStore

log = logging.getLogger("sentrail.service")


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
        with self._lock:
            self._dirty.add(tenant)

    def tick(self) -> int:
        """Checkpoint every marked tenant now; returns how many were signed."""
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

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def start(self) -> None:
        if self._thread is None:
            try:
                for tenant in self.store.tenants_behind():  # e.g. after a crash
                    self.touch(tenant)
            except SentrailError as exc:
                log.error("cannot list the tenants behind their checkpoint: %s", exc.message)
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="checkpoints", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.tick()  # what arrived since the last tick
