"""Alert sinks: a generic HMAC-signed webhook, a Slack incoming webhook and PagerDuty Events
API v2, over httpx with retries (``sentrail.alerts.retry``); and an in-memory sink for tests.

Webhook signature: ``X-Sentrail-Timestamp: <unix seconds>`` and
``X-Sentrail-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>``. Each retry
is signed afresh with its own timestamp. Receivers check both with ``verify_webhook`` (and
a ``ReplayCache`` to refuse the same delivery twice inside the tolerance).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Protocol

import httpx
import msgspec

from sentrail import __version__
from sentrail.alerts.alert import Alert, AlertAction, Digest, Message
from sentrail.alerts.bodies import pagerduty_event, slack_body, webhook_body
from sentrail.alerts.policy import AlertConfigError, AlertPolicy, SinkSpec, Tier
from sentrail.alerts.retry import DeliveryError, RetryPolicy, Sender, Wait
from sentrail.errors import SentrailError

PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
TIMESTAMP_HEADER = "X-Sentrail-Timestamp"
SIGNATURE_HEADER = "X-Sentrail-Signature"
DELIVERY_HEADER = "X-Sentrail-Delivery"
_USER_AGENT = f"sentrail/{__version__}"


class Sink(Protocol):
    """Where alerts go. ``deliver`` may block (retries); the router calls it from the sink's
    own thread, never from ``submit``. It raises ``DeliveryError`` when it gives up."""

    name: str
    tiers: frozenset[Tier]

    def deliver(self, message: Message, wait: Wait | None = None) -> None: ...

    def close(self) -> None: ...


class MemorySink:
    """Keeps what it is given; ``fail`` makes it raise, ``gate`` makes it block until set."""

    def __init__(
        self,
        name: str = "memory",
        tiers: frozenset[Tier] = frozenset({Tier.PAGE, Tier.TICKET, Tier.DIGEST}),
    ) -> None:
        self.name = name
        self.tiers = tiers
        self.messages: list[Message] = []
        self.fail = False
        self.gate: threading.Event | None = None
        self._lock = threading.Lock()

    def deliver(self, message: Message, wait: Wait | None = None) -> None:
        if self.gate is not None:
            self.gate.wait()
        if self.fail:
            raise DeliveryError("memory sink set to fail", self.name, 1)
        with self._lock:
            self.messages.append(message)

    def close(self) -> None:
        pass


class HttpSink:
    """The common part of the HTTP sinks: one client, one retrying sender."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        tiers: frozenset[Tier] = frozenset({Tier.PAGE, Tier.TICKET}),
        retry: RetryPolicy | None = None,
        wait: Wait | None = None,
        clock: Callable[[], float] = time.time,
        client: httpx.Client | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self.tiers = tiers
        self.clock = clock
        self._wait = wait  # when given, it wins over the router's (tests record delays)
        self._client = client or httpx.Client(follow_redirects=False)
        self._sender = Sender(self._client, name, retry, clock=clock)

    def _post(
        self, body: bytes, headers_for: Callable[[int], Mapping[str, str]], wait: Wait | None
    ) -> httpx.Response:
        return self._sender.post(self.url, body, headers_for, self._wait or wait)

    def close(self) -> None:
        self._client.close()


class WebhookSink(HttpSink):
    """POSTs the alert as JSON (``sentrail.alert/1``), HMAC-SHA256 signed."""

    def __init__(
        self,
        name: str,
        url: str,
        secret: str | bytes,
        *,
        tiers: frozenset[Tier] = frozenset({Tier.PAGE, Tier.TICKET}),
        retry: RetryPolicy | None = None,
        wait: Wait | None = None,
        clock: Callable[[], float] = time.time,
        client: httpx.Client | None = None,
    ) -> None:
        if not secret:
            raise AlertConfigError("a webhook needs a non-empty secret", name)
        super().__init__(name, url, tiers=tiers, retry=retry, wait=wait, clock=clock, client=client)
        self._secret = secret.encode() if isinstance(secret, str) else secret

    def deliver(self, message: Message, wait: Wait | None = None) -> None:
        body = webhook_body(message)
        delivery = _delivery_id(message)

        def headers(attempt: int) -> dict[str, str]:
            ts = str(int(self.clock()))
            return {
                "Content-Type": "application/json",
                "User-Agent": _USER_AGENT,
                TIMESTAMP_HEADER: ts,
                SIGNATURE_HEADER: sign_webhook(self._secret, ts, body),
                DELIVERY_HEADER: delivery,
            }

        self._post(body, headers, wait)


class SlackSink(HttpSink):
    """A Slack incoming webhook: ``text`` (the notification fallback) and ``blocks``."""

    def deliver(self, message: Message, wait: Wait | None = None) -> None:
        body = slack_body(message)
        headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT}
        self._post(body, lambda _attempt: headers, wait)


class PagerDutySink(HttpSink):
    """PagerDuty Events API v2: alerts trigger, follow-ups acknowledge or resolve, by
    ``dedup_key``. Digests are not paged."""

    def __init__(
        self,
        name: str,
        routing_key: str,
        url: str = PAGERDUTY_URL,
        *,
        tiers: frozenset[Tier] = frozenset({Tier.PAGE}),
        retry: RetryPolicy | None = None,
        severity_map: dict[str, str] | None = None,
        client_url: str | None = None,
        wait: Wait | None = None,
        clock: Callable[[], float] = time.time,
        client: httpx.Client | None = None,
    ) -> None:
        if not routing_key:
            raise AlertConfigError("a PagerDuty sink needs a routing key", name)
        super().__init__(name, url, tiers=tiers, retry=retry, wait=wait, clock=clock, client=client)
        self._routing_key = routing_key
        self._severity_map = severity_map
        self._client_url = client_url

    def deliver(self, message: Message, wait: Wait | None = None) -> None:
        if isinstance(message, Digest):
            return
        body = msgspec.json.encode(
            pagerduty_event(
                self._routing_key,
                message,
                severity_map=self._severity_map,
                client_url=self._client_url,
            )
        )
        headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT}
        self._post(body, lambda _attempt: headers, wait)

    def acknowledge(self, dedup_key: str, wait: Wait | None = None) -> None:
        self.deliver(AlertAction(dedup_key, "acknowledge"), wait)

    def resolve(self, dedup_key: str, wait: Wait | None = None) -> None:
        self.deliver(AlertAction(dedup_key, "resolve"), wait)


def _delivery_id(message: Message) -> str:
    if isinstance(message, Alert | Digest):
        return message.id
    return f"{message.dedup_key}:{message.action}"


# ---- signatures ------------------------------------------------------------------------------


class WebhookVerificationError(SentrailError):
    """A webhook delivery whose signature or timestamp does not check out."""


def sign_webhook(secret: str | bytes, timestamp: str, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


class ReplayCache:
    """Signatures seen within the tolerance: the same delivery bytes are accepted once."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def first_time(self, signature: str, now: float, tolerance: float) -> bool:
        with self._lock:
            while self._seen and (
                next(iter(self._seen.values())) < now - 2 * tolerance
                or len(self._seen) >= self._max
            ):
                self._seen.popitem(last=False)
            if signature in self._seen:
                return False
            self._seen[signature] = now
            return True


def verify_webhook(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance: float = 300,
    replay: ReplayCache | None = None,
) -> None:
    """Check a delivery: the signature over ``f"{timestamp}.{body}"`` and a timestamp within
    ``tolerance`` seconds of ``now``. Raises ``WebhookVerificationError`` saying why not."""
    lower = {k.lower(): v for k, v in headers.items()}
    ts = lower.get(TIMESTAMP_HEADER.lower())
    sig = lower.get(SIGNATURE_HEADER.lower())
    if not ts or not sig:
        raise WebhookVerificationError("missing timestamp or signature header")
    if not ts.isdigit() or len(ts) > 12:
        raise WebhookVerificationError("timestamp is not unix seconds")
    if abs(now - int(ts)) > tolerance:
        raise WebhookVerificationError(
            f"timestamp outside the {tolerance:.0f}s tolerance (replayed or clock skew)"
        )
    if not hmac.compare_digest(sign_webhook(secret, ts, body), sig.strip()):
        raise WebhookVerificationError("signature does not match")
    if replay is not None and not replay.first_time(sig.strip(), now, tolerance):
        raise WebhookVerificationError("delivery already seen (replay)")


# ---- from the policy -------------------------------------------------------------------------


def build_sinks(
    policy: AlertPolicy,
    env: Mapping[str, str] | None = None,
    *,
    wait: Wait | None = None,
) -> list[Sink]:
    """The sinks the policy names; URLs and secrets from ``env`` (the process environment)."""
    env = os.environ if env is None else env
    sinks: list[Sink] = []
    for i, spec in enumerate(policy.sinks):
        where = f"sinks[{i}] ({spec.name})"
        retry = RetryPolicy(attempts=spec.max_attempts, timeout=spec.timeout_seconds)
        tiers = frozenset(spec.tiers)
        if spec.type == "pagerduty":
            url = _url(spec, env, where) if (spec.url or spec.url_env) else PAGERDUTY_URL
            sinks.append(
                PagerDutySink(
                    spec.name,
                    _env(env, spec.routing_key_env, where),
                    url,
                    tiers=tiers,
                    retry=retry,
                    severity_map=dict(spec.severity_map) if spec.severity_map else None,
                    client_url=policy.base_url,
                    wait=wait,
                )
            )
        elif spec.type == "slack":
            url = _url(spec, env, where)
            sinks.append(SlackSink(spec.name, url, tiers=tiers, retry=retry, wait=wait))
        else:
            secret = _env(env, spec.secret_env, where)
            url = _url(spec, env, where)
            sinks.append(WebhookSink(spec.name, url, secret, tiers=tiers, retry=retry, wait=wait))
    return sinks


def _env(env: Mapping[str, str], name: str | None, where: str) -> str:
    value = env.get(name or "", "")
    if not value:
        raise AlertConfigError(f"environment variable {name} is not set", where)
    return value


def _url(spec: SinkSpec, env: Mapping[str, str], where: str) -> str:
    url = spec.url if spec.url is not None else _env(env, spec.url_env, where)
    if not url.startswith(("http://", "https://")):
        raise AlertConfigError("the sink URL must start with http:// or https://", where)
    return url
