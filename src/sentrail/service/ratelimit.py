"""Token buckets of failed key checks, per client address and per key id.

Each check that needs hashing takes one token from the bucket of the client's address
and one from the bucket of the key id it named when it starts, so checks still in flight
count; a check that succeeds gives them back, so only failures (an unknown id, a wrong
secret, a revoked key) use the buckets up. Buckets refill at a steady rate. A check is
refused before any hashing when:

1. the client's bucket is empty (this address has failed too often), or
2. the key id's bucket is empty (this id is being guessed, perhaps from many addresses)
   *and* the client has itself failed recently (its bucket is not full).

Rule 2's second half keeps a distributed attack on one id from locking its owner out: a
client that has not failed is never refused for the failures of others. Each fresh
attacking address thus gets one check past an empty id bucket, and the hashing bound
(:class:`sentrail.service.auth.KeyVerifier`) caps what those cost.

State lives in memory, per process; a bucket that has refilled is the same as none, so
the tables are pruned of full buckets when they grow past ``max_entries``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import msgspec


class Rate(msgspec.Struct, frozen=True):
    """``burst`` failures at once, then one every ``1 / per_second`` seconds."""

    burst: float
    per_second: float


class _Buckets:
    def __init__(self, rate: Rate, max_entries: int) -> None:
        self.rate = rate
        self.max_entries = max_entries
        self._level: dict[str, tuple[float, float]] = {}  # name -> (tokens, at)

    def tokens(self, name: str, now: float) -> float:
        level = self._level.get(name)
        if level is None:
            return self.rate.burst
        tokens, at = level
        return min(self.rate.burst, tokens + (now - at) * self.rate.per_second)

    def take(self, name: str, now: float) -> None:
        self._level[name] = (max(0.0, self.tokens(name, now) - 1.0), now)
        if len(self._level) > self.max_entries:
            self._prune(now)

    def give(self, name: str, now: float) -> None:
        if name in self._level:
            self._level[name] = (min(self.rate.burst, self.tokens(name, now) + 1.0), now)

    def wait(self, name: str, now: float) -> float:
        """Seconds until ``name`` has a whole token again (0 if it has one)."""
        missing = 1.0 - self.tokens(name, now)
        return max(0.0, missing / self.rate.per_second)

    def _prune(self, now: float) -> None:
        full = [n for n in self._level if self.tokens(n, now) >= self.rate.burst]
        for n in full:
            del self._level[n]
        if len(self._level) > self.max_entries:  # a flood of live buckets: start over
            self._level.clear()


class FailureLimiter:
    """When may a client check a key, given the failures seen (see the module docstring)."""

    def __init__(
        self,
        per_client: Rate = Rate(burst=5, per_second=0.5),  # noqa: B008 - frozen struct
        per_key: Rate = Rate(burst=20, per_second=1.0),  # noqa: B008
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        self.clock = clock
        self._clients = _Buckets(per_client, max_entries)
        self._keys = _Buckets(per_key, max_entries)
        self._lock = threading.Lock()

    def admit(self, client: str, key_id: str) -> float | None:
        """Charge one check of ``key_id`` by ``client``: None when it may go ahead (a token
        is taken from both buckets now, so checks in flight count), else seconds to wait.
        A check that then succeeds gets its tokens back (:meth:`refund`)."""
        with self._lock:
            now = self.clock()
            client_wait = self._clients.wait(client, now)
            if client_wait > 0:
                return client_wait
            key_wait = self._keys.wait(key_id, now)
            recently_failed = self._clients.tokens(client, now) < self._clients.rate.burst
            if key_wait > 0 and recently_failed:
                return key_wait
            self._clients.take(client, now)
            self._keys.take(key_id, now)
            return None

    def refund(self, client: str, key_id: str) -> None:
        """Give back what :meth:`admit` took: the check succeeded."""
        with self._lock:
            now = self.clock()
            self._clients.give(client, now)
            self._keys.give(key_id, now)
