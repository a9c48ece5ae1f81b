"""HTTP delivery with retries: exponential backoff with full jitter, ``Retry-After`` honoured.

Retried: connection errors, timeouts, 408, 425, 429, 500, 502, 503, 504. On 429 and 503 a
``Retry-After`` header (seconds or an HTTP date) sets the wait; a wait longer than
``max_retry_after`` gives up instead of retrying early. Any other status is final. After
``attempts`` tries the delivery gives up with ``DeliveryError``.

Waiting goes through a ``Wait`` callable (``wait(seconds) -> cancelled``) so that a router can
cut a backoff short when it shuts down and tests can record the delays without sleeping.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import threading
import time
from collections.abc import Callable, Mapping

import httpx
import msgspec

from sentrail.errors import SentrailError
from sentrail.report.escape import safe_text

Wait = Callable[[float], bool]
"""``wait(seconds)`` waits and returns True when delivery should stop (shutting down)."""

RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({429, 503})


class DeliveryError(SentrailError):
    """A message that could not be delivered (``attempts`` says how many tries were made)."""

    def __init__(self, message: str, location: str = "", attempts: int = 0) -> None:
        super().__init__(message, location)
        self.attempts = attempts


class RetryPolicy(msgspec.Struct, frozen=True):
    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 300.0
    timeout: float = 10.0


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date), or None."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - now)


def backoff(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(max_delay, base * 2**attempt)] (attempt from 0)."""
    cap = min(policy.max_delay, policy.base_delay * (2 ** min(attempt, 30)))
    return rng.uniform(0.0, cap)


def sleeping_wait(cancel: threading.Event | None = None) -> Wait:
    """A ``Wait`` that sleeps, cut short when ``cancel`` is set."""
    if cancel is None:

        def _sleep(seconds: float) -> bool:
            time.sleep(seconds)
            return False

        return _sleep
    return cancel.wait


class Sender:
    """POSTs one body with retries. ``headers_for(attempt)`` builds the headers of each try
    (a signature with a fresh timestamp, say)."""

    def __init__(
        self,
        client: httpx.Client,
        where: str,
        policy: RetryPolicy | None = None,
        *,
        wait: Wait | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.where = where
        self.policy = policy or RetryPolicy()
        self.wait = wait or sleeping_wait()
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.clock = clock

    def post(
        self,
        url: str,
        body: bytes,
        headers_for: Callable[[int], Mapping[str, str]],
        wait: Wait | None = None,
    ) -> httpx.Response:
        wait = wait or self.wait
        policy = self.policy
        last = "no attempt made"
        for attempt in range(policy.attempts):
            delay: float | None = None
            try:
                response = self.client.post(
                    url, content=body, headers=dict(headers_for(attempt)), timeout=policy.timeout
                )
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {safe_text(exc, limit=200)}"
            else:
                status = response.status_code
                if status < 300:
                    return response
                last = f"HTTP {status}: {safe_text(response.text, limit=200)}"
                if status not in RETRYABLE:
                    raise DeliveryError(last, self.where, attempt + 1)
                if status in RETRY_AFTER_STATUSES:
                    after = parse_retry_after(response.headers.get("retry-after"), self.clock())
                    if after is not None:
                        if after > policy.max_retry_after:
                            raise DeliveryError(
                                f"{last}; Retry-After {after:.0f}s exceeds the "
                                f"{policy.max_retry_after:.0f}s limit",
                                self.where,
                                attempt + 1,
                            )
                        delay = after + self.rng.uniform(0.0, policy.base_delay)
            if attempt + 1 >= policy.attempts:
                break
            if delay is None:
                delay = backoff(attempt, policy, self.rng)
            if wait(delay):
                raise DeliveryError(f"{last}; cancelled", self.where, attempt + 1)
        raise DeliveryError(
            f"gave up after {policy.attempts} attempts: {last}", self.where, policy.attempts
        )
