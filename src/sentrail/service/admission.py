"""Ingest off the event loop, and a bound on how much of it is admitted at once.

Parsing, analysing and storing a large body is seconds of CPU (a legal 15 MB trace of
700,000 steps: about 2 s to parse, 3 s to analyse, 6 s to store on this machine). Done on
the event loop it stalls every other request, ``/healthz`` included. So:

1. a request is *admitted* before its body is read: at most ``workers + queue`` ingest
   requests hold a body in memory at once; the next is answered 503 with
   ``Retry-After`` (a transient condition: retrying later is right);
2. an admitted request's work runs in one of ``workers`` threads of the gate's own pool
   (never the shared pool that sync routes use), the others wait their turn on the loop,
   which stays free for small requests and health checks.

The store is shared safely across threads: SQLite through its one connection and lock
(so a request that needs the store waits while a large write holds it), PostgreSQL
through its connection pool.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TypeVar

from sentrail.service.problems import ProblemError

T = TypeVar("T")


class IngestGate:
    def __init__(self, workers: int = 0, queue: int = 8, retry_after_s: int = 1) -> None:
        self.workers = workers or max(1, os.cpu_count() or 1)
        if self.workers < 1 or queue < 0:
            raise ValueError("ingest needs at least one worker and a queue of 0 or more")
        self.limit = self.workers + queue
        self.retry_after_s = retry_after_s
        self.admitted = 0
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ingest")
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold one of the ``workers + queue`` places, or refuse with 503 now."""
        if self.admitted >= self.limit:
            raise ProblemError(
                503,
                "ingest-busy",
                f"{self.admitted} ingest requests are in progress; retry shortly",
                headers={"Retry-After": str(self.retry_after_s)},
            )
        self.admitted += 1  # only the event loop's thread changes it: no lock needed
        try:
            yield
        finally:
            self.admitted -= 1

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """``work(*args)`` in one of the gate's threads, once one is free."""
        slots = self._semaphore()
        async with slots:
            return await asyncio.get_running_loop().run_in_executor(self._pool, work, *args)

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.workers))
        return self._slots[1]

    def close(self) -> None:
        self._pool.shutdown(wait=True)
