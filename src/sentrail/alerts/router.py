"""The alert router: findings in, alerts out, never in the caller's way.

``submit`` decides the tier (policy rules), drops repeats (dedup: rule + run + resource per
window), holds non-page alerts in quiet hours for the digest, takes a token from each sink's
bucket (rate limit) and puts the alert on each sink's bounded queue without waiting. One
thread per sink delivers (with retries); a full queue drops the alert and counts it. So a
sink that is down or hangs costs a counter, never a blocked ``submit``.

Counters (``counters()`` totals, ``sink_counters()`` per sink) for Prometheus: ``submitted``,
``not_alerting``, ``deduplicated``, ``held`` (quiet hours), ``digested`` (digest tier),
``rate_limited``, ``dropped`` (queue full, digest overflow, undelivered at close, submitted
after close), ``sent``, ``failed`` (gave up after retries or refused).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import msgspec

from sentrail.alerts.alert import Alert, AlertAction, Digest, Message, build_alert, iso
from sentrail.alerts.policy import AlertPolicy, RateLimit, Tier
from sentrail.alerts.sinks import Sink
from sentrail.model.finding import Finding
from sentrail.model.trace import RunHeader, Step

_TOTALS = (
    "submitted",
    "not_alerting",
    "deduplicated",
    "held",
    "digested",
    "rate_limited",
    "dropped",
    "sent",
    "failed",
)
_PER_SINK = ("queued", "rate_limited", "dropped", "sent", "failed")


class _Stop:
    pass


_STOP = _Stop()


class Routing(msgspec.Struct):
    """What ``submit`` did with one finding."""

    outcome: str  # not_alerting | deduplicated | held | digested | routed | closed
    tier: Tier
    alert: Alert | None = None
    queued: list[str] = msgspec.field(default_factory=list)
    dropped: list[str] = msgspec.field(default_factory=list)
    rate_limited: list[str] = msgspec.field(default_factory=list)


class TokenBucket:
    def __init__(self, rate: RateLimit, now: float) -> None:
        self.capacity = float(rate.burst)
        self.tokens = float(rate.burst)
        self.per_second = rate.per_minute / 60.0
        self.last = now

    def take(self, now: float) -> bool:
        if now > self.last:
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.per_second)
            self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class DedupCache:
    """Keys seen in the last ``window`` seconds (at most ``max_keys``, oldest forgotten)."""

    def __init__(self, window: float, max_keys: int) -> None:
        self.window = window
        self.max_keys = max_keys
        self._seen: OrderedDict[str, float] = OrderedDict()

    def seen(self, key: str, now: float) -> bool:
        if self.window <= 0:
            return False
        while self._seen:
            oldest_key, oldest = next(iter(self._seen.items()))
            if now - oldest < self.window:
                break
            del self._seen[oldest_key]
        first = self._seen.get(key)
        if first is not None and now - first < self.window:
            return True
        self._seen[key] = now
        self._seen.move_to_end(key)
        while len(self._seen) > self.max_keys:
            self._seen.popitem(last=False)
        return False


class _Worker:
    def __init__(self, sink: Sink, size: int) -> None:
        self.sink = sink
        self.queue: queue.Queue[Message | _Stop] = queue.Queue(maxsize=size)
        self.thread: threading.Thread | None = None
        self.counts = dict.fromkeys(_PER_SINK, 0)
        self.bucket: TokenBucket | None = None


class AlertRouter:
    def __init__(
        self,
        policy: AlertPolicy,
        sinks: Sequence[Sink],
        *,
        clock: Callable[[], float] = time.time,
        queue_size: int | None = None,
        start: bool = True,
        tick_seconds: float | None = 30.0,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._closed = False
        self._counts = dict.fromkeys(_TOTALS, 0)
        self._dedup = DedupCache(policy.dedup.window_seconds, policy.dedup.max_keys)
        self._digest: list[Alert] = []
        self._digest_total = 0
        self._last_digest = clock()
        self._was_quiet = False
        self._inflight = 0
        self._tick_seconds = tick_seconds
        self._ticker: threading.Thread | None = None
        specs = {s.name: s for s in policy.sinks}
        now = clock()
        self._workers: list[_Worker] = []
        for sink in sinks:
            spec = specs.get(sink.name)
            size = queue_size or (spec.queue_size if spec else 1000)
            w = _Worker(sink, size)
            rate = policy.rate_limit_for(spec) if spec else policy.rate_limit
            w.bucket = TokenBucket(rate, now) if rate else None
            self._workers.append(w)
        if start:
            self.start()

    # ---- intake (never blocks on a sink) ------------------------------------------------------

    def submit(
        self,
        finding: Finding,
        run: RunHeader,
        steps: Sequence[Step] = (),
        *,
        trace_hash: str | None = None,
    ) -> Routing:
        """Route one finding of ``run`` (``steps``: the run's steps so far, for context)."""
        policy = self.policy
        tier = policy.tier_for(finding, run.agent_id)
        now = self.clock()
        with self._lock:
            self._counts["submitted"] += 1
            if tier is Tier.NONE:
                self._counts["not_alerting"] += 1
                return Routing("not_alerting", tier)
        alert = build_alert(
            finding,
            run,
            steps,
            tier=tier,
            now=now,
            base_url=policy.base_url,
            app=policy.app,
            trace_hash=trace_hash,
            recent=policy.recent_steps,
            evidence_limit=policy.evidence_limit,
        )
        return self._route(alert, now)

    def submit_alert(self, alert: Alert) -> Routing:
        """Route an alert built elsewhere (its tier is taken as given)."""
        with self._lock:
            self._counts["submitted"] += 1
        return self._route(alert, self.clock())

    def _route(self, alert: Alert, now: float) -> Routing:
        with self._lock:
            if self._closed:
                self._counts["dropped"] += 1
                return Routing("closed", alert.tier, alert)
            if self._dedup.seen(alert.dedup_key, now):
                self._counts["deduplicated"] += 1
                return Routing("deduplicated", alert.tier, alert)
            quiet = self.policy.quiet_hours
            if alert.tier is not Tier.PAGE and quiet is not None and quiet.active(now):
                self._counts["held"] += 1
                self._collect(alert)
                return Routing("held", alert.tier, alert)
            if alert.tier is Tier.DIGEST:
                self._counts["digested"] += 1
                self._collect(alert)
                return Routing("digested", alert.tier, alert)
            routing = Routing("routed", alert.tier, alert)
            for w in self._workers:
                if alert.tier not in w.sink.tiers:
                    continue
                if w.bucket is not None and not w.bucket.take(now):
                    w.counts["rate_limited"] += 1
                    self._counts["rate_limited"] += 1
                    routing.rate_limited.append(w.sink.name)
                    continue
                if self._offer(w, alert):
                    routing.queued.append(w.sink.name)
                else:
                    routing.dropped.append(w.sink.name)
            return routing

    def acknowledge(self, dedup_key: str) -> list[str]:
        return self._follow_up(AlertAction(dedup_key, "acknowledge"))

    def resolve(self, dedup_key: str) -> list[str]:
        return self._follow_up(AlertAction(dedup_key, "resolve"))

    def _follow_up(self, action: AlertAction) -> list[str]:
        """Sent to the sinks that page; returns those it was queued for."""
        with self._lock:
            return [
                w.sink.name
                for w in self._workers
                if Tier.PAGE in w.sink.tiers and self._offer(w, action)
            ]

    def _offer(self, w: _Worker, message: Message) -> bool:
        """Called with the lock held."""
        if self._closed:
            return False
        try:
            w.queue.put_nowait(message)
        except queue.Full:
            w.counts["dropped"] += 1
            self._counts["dropped"] += 1
            return False
        w.counts["queued"] += 1
        return True

    # ---- the digest -------------------------------------------------------------------------

    def _collect(self, alert: Alert) -> None:
        self._digest_total += 1
        if len(self._digest) < self.policy.digest.max_alerts:
            self._digest.append(alert)
        else:
            self._counts["dropped"] += 1

    def flush_digest(self, *, force: bool = False) -> Digest | None:
        """Send what was collected as one digest to the sinks that take the ``digest`` tier
        (not during quiet hours unless ``force``)."""
        now = self.clock()
        with self._lock:
            quiet = self.policy.quiet_hours
            if not self._digest_total or (not force and quiet is not None and quiet.active(now)):
                return None
            digest = Digest(
                id=f"D-{int(now * 1000)}",
                created_at=iso(now),
                alerts=self._digest,
                total=self._digest_total,
            )
            self._digest, self._digest_total, self._last_digest = [], 0, now
            for w in self._workers:
                if Tier.DIGEST in w.sink.tiers:
                    self._offer(w, digest)
            return digest

    def tick(self) -> Digest | None:
        """Flush the digest when its interval has passed or quiet hours have just ended."""
        now = self.clock()
        quiet = self.policy.quiet_hours
        is_quiet = quiet is not None and quiet.active(now)
        with self._lock:
            ended = self._was_quiet and not is_quiet
            self._was_quiet = is_quiet
            interval = self.policy.digest.interval_seconds
            due = not is_quiet and (ended or now - self._last_digest >= interval)
        return self.flush_digest() if due else None

    # ---- delivery threads -------------------------------------------------------------------

    def start(self) -> None:
        for w in self._workers:
            if w.thread is None:
                w.thread = threading.Thread(
                    target=self._deliver_loop, args=(w,), name=f"alerts-{w.sink.name}", daemon=True
                )
                w.thread.start()
        if self._tick_seconds and self._ticker is None:
            self._ticker = threading.Thread(
                target=self._tick_loop, name="alerts-digest", daemon=True
            )
            self._ticker.start()

    def _tick_loop(self) -> None:
        assert self._tick_seconds is not None
        while not self._stop.wait(self._tick_seconds):
            self.tick()

    def _deliver_loop(self, w: _Worker) -> None:
        while True:
            item = w.queue.get()
            if isinstance(item, _Stop):
                return
            with self._lock:
                self._inflight += 1
            ok = False
            try:
                w.sink.deliver(item, self._stop.wait)
                ok = True
            except Exception:  # noqa: S110 - DeliveryError or a sink bug: counted, thread goes on
                pass
            finally:
                with self._lock:
                    self._inflight -= 1
                    key = "sent" if ok else "failed"
                    w.counts[key] += 1
                    self._counts[key] += 1
                    self._idle.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every queue is empty and nothing is being delivered."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._inflight or any(not w.queue.empty() for w in self._workers):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.05))
            return True

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued within ``timeout``; the rest is counted as dropped."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + timeout
        running = [w for w in self._workers if w.thread is not None]
        for w in running:
            with contextlib.suppress(queue.Full):
                w.queue.put(_STOP, timeout=max(0.0, deadline - time.monotonic()))
        for w in running:
            assert w.thread is not None
            w.thread.join(max(0.0, deadline - time.monotonic()))
        self._stop.set()  # cut any backoff short
        with self._lock:
            for w in self._workers:
                left = 0
                while True:
                    try:
                        item = w.queue.get_nowait()
                    except queue.Empty:
                        break
                    left += not isinstance(item, _Stop)
                w.counts["dropped"] += left
                self._counts["dropped"] += left
        for w in self._workers:
            w.sink.close()

    # ---- metrics ----------------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def sink_counters(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {w.sink.name: dict(w.counts) for w in self._workers}

    def __enter__(self) -> AlertRouter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
