from __future__ import annotations

import json
import threading

from sentrail.alerts.alert import Alert, AlertAction, Digest
from sentrail.alerts.policy import AlertPolicy, Tier, parse_alert_policy
from sentrail.alerts.retry import RetryPolicy
from sentrail.alerts.router import AlertRouter, DedupCache, TokenBucket
from sentrail.alerts.sinks import MemorySink, SlackSink, WebhookSink, verify_webhook
from sentrail.model.finding import Category, Severity
from tests.alerts.helpers import FakeClock, Waits, finding, local_epoch, run
from tests.alerts.stub_server import StubServer, closed_port

ALL = frozenset({Tier.PAGE, Tier.TICKET, Tier.DIGEST})


def policy(extra: str = "") -> AlertPolicy:
    return parse_alert_policy(
        (
            "rules:\n"
            "  - {match: {min_severity: critical}, tier: page}\n"
            "  - {match: {min_severity: warning}, tier: ticket}\n"
            "  - {match: {}, tier: digest}\n" + extra
        ).encode()
    )


def distinct(i: int, severity: Severity = Severity.CRITICAL) -> object:
    return finding(
        rule=f"rule.{i}", severity=severity, evidence={"destination": f"https://d{i}.example"}
    )


def router(p: AlertPolicy, sinks: list[object], clock: FakeClock, **kw: object) -> AlertRouter:
    return AlertRouter(p, sinks, clock=clock, tick_seconds=None, **kw)  # type: ignore[arg-type]


def test_routes_by_tier_to_the_sinks_that_take_it(clock: FakeClock) -> None:
    pager = MemorySink("pager", frozenset({Tier.PAGE}))
    tickets = MemorySink("tickets", frozenset({Tier.TICKET}))
    with router(policy(), [pager, tickets], clock) as r:
        r1 = r.submit(finding(severity=Severity.CRITICAL), run())
        r2 = r.submit(finding(rule="x", severity=Severity.WARNING), run())
        assert r1.outcome == "routed" and r1.queued == ["pager"]
        assert r2.outcome == "routed" and r2.queued == ["tickets"]
        assert r.wait_idle()
    assert [m.tier for m in pager.messages if isinstance(m, Alert)] == [Tier.PAGE]
    assert [m.tier for m in tickets.messages if isinstance(m, Alert)] == [Tier.TICKET]
    assert r.counters()["sent"] == 2


def test_not_alerting_findings_are_counted(clock: FakeClock) -> None:
    p = parse_alert_policy(b"rules: [{match: {category: missing_telemetry}, tier: none}]")
    with router(p, [MemorySink()], clock) as r:
        f = finding(category=Category.MISSING_TELEMETRY)
        assert r.submit(f, run()).outcome == "not_alerting"
        assert r.submit(finding(), run()).outcome == "not_alerting"  # no rule matches
    assert r.counters()["not_alerting"] == 2


def test_same_rule_run_resource_alerts_once_per_window(clock: FakeClock) -> None:
    sink = MemorySink()
    with router(policy("dedup: {window_seconds: 600}\n"), [sink], clock) as r:
        assert r.submit(finding(step=1), run()).outcome == "routed"
        clock.advance(10)
        assert r.submit(finding(step=3), run()).outcome == "deduplicated"  # same destination
        assert r.submit(finding(step=3), run(run_id="run-2")).outcome == "routed"  # other run
        other = finding(step=3, evidence={"destination": "https://elsewhere"})
        assert r.submit(other, run()).outcome == "routed"  # other resource
        clock.advance(600)
        assert r.submit(finding(step=1), run()).outcome == "routed"  # window over
        assert r.wait_idle()
    c = r.counters()
    assert c["deduplicated"] == 1 and c["sent"] == 4


def test_dedup_cache_is_bounded() -> None:
    cache = DedupCache(window=100, max_keys=3)
    for k in "abcd":
        assert not cache.seen(k, 0)
    assert not cache.seen("a", 1)  # forgotten: only the 3 newest keys are kept
    assert cache.seen("d", 2)
    assert not DedupCache(window=0, max_keys=3).seen("a", 0)


def test_per_sink_token_bucket(clock: FakeClock) -> None:
    limited = MemorySink("limited", ALL)
    free = MemorySink("free", ALL)
    p = parse_alert_policy(
        b"sinks:\n"
        b"  - {name: limited, type: slack, url: 'http://127.0.0.1:9/',\n"
        b"     rate_limit: {per_minute: 6, burst: 2}}\n"
    )
    with router(p, [limited, free], clock) as r:
        outs = [r.submit(distinct(i), run()) for i in range(5)]
        assert [o.rate_limited for o in outs] == [[], [], ["limited"], ["limited"], ["limited"]]
        assert all("free" in o.queued for o in outs)
        clock.advance(10)  # 6 per minute: one token back
        assert r.submit(distinct(9), run()).queued == ["limited", "free"]
        assert r.wait_idle()
    assert r.sink_counters()["limited"]["rate_limited"] == 3
    assert r.counters()["rate_limited"] == 3
    assert len(limited.messages) == 3 and len(free.messages) == 6


def test_token_bucket_refills_to_burst_only() -> None:
    from sentrail.alerts.policy import RateLimit

    b = TokenBucket(RateLimit(per_minute=60, burst=2), now=0)
    assert b.take(0) and b.take(0) and not b.take(0)
    assert b.take(1) and not b.take(1)
    assert b.take(1000) and b.take(1000) and not b.take(1000)


QUIET = "quiet_hours: {timezone: Australia/Sydney, start: '22:00', end: '07:00'}\n"
TZ = "Australia/Sydney"


def test_quiet_hours_hold_all_but_pages_for_the_digest() -> None:
    clock = FakeClock(local_epoch(TZ, 2026, 3, 5, 23, 30))
    sink = MemorySink("all", ALL)
    with router(policy(QUIET), [sink], clock) as r:
        assert r.submit(distinct(1, Severity.CRITICAL), run()).outcome == "routed"
        assert r.submit(distinct(2, Severity.WARNING), run()).outcome == "held"
        assert r.submit(distinct(3, Severity.INFO), run()).outcome == "held"
        assert r.flush_digest() is None  # not during quiet hours
        assert r.tick() is None
        clock.now = local_epoch(TZ, 2026, 3, 6, 7, 1)
        digest = r.tick()  # quiet hours just ended: the digest goes out
        assert digest is not None and digest.total == 2
        assert r.wait_idle()
    assert [type(m).__name__ for m in sink.messages] == ["Alert", "Digest"]
    sent_digest = sink.messages[1]
    assert isinstance(sent_digest, Digest)
    assert sorted(a.rule for a in sent_digest.alerts) == ["rule.2", "rule.3"]
    assert r.counters()["held"] == 2


def test_digest_tier_is_sent_on_the_interval_to_digest_sinks(clock: FakeClock) -> None:
    digest_sink = MemorySink("digest", frozenset({Tier.DIGEST}))
    pager = MemorySink("pager", frozenset({Tier.PAGE}))
    p = policy("digest: {interval_seconds: 600, max_alerts: 2}\n")
    with router(p, [digest_sink, pager], clock) as r:
        for i in range(3):
            assert r.submit(distinct(i, Severity.INFO), run()).outcome == "digested"
        assert r.tick() is None  # interval not over
        clock.advance(600)
        d = r.tick()
        assert d is not None and d.total == 3 and len(d.alerts) == 2  # bounded
        assert r.tick() is None  # nothing new
        assert r.wait_idle()
    assert len(digest_sink.messages) == 1 and pager.messages == []
    c = r.counters()
    assert c["digested"] == 3 and c["dropped"] == 1  # the one past max_alerts


def test_full_queue_drops_and_counts(clock: FakeClock) -> None:
    sink = MemorySink()
    r = router(policy(), [sink], clock, queue_size=3, start=False)
    outs = [r.submit(distinct(i), run()) for i in range(10)]
    assert sum(o.queued == ["memory"] for o in outs) == 3
    assert sum(o.dropped == ["memory"] for o in outs) == 7
    assert r.counters()["dropped"] == 7
    assert r.sink_counters()["memory"]["dropped"] == 7
    r.start()
    assert r.wait_idle()
    r.close()
    assert len(sink.messages) == 3
    assert r.counters()["sent"] == 3


def test_a_hanging_sink_never_blocks_submit(stub: StubServer, clock: FakeClock) -> None:
    stub.default = stub.default._replace(hang=True)
    sink = WebhookSink("hook", stub.url(), "k", retry=RetryPolicy(attempts=1, timeout=30))
    r = router(policy(), [sink], clock, queue_size=2)
    done = threading.Event()

    def submit_all() -> None:
        for i in range(10):
            r.submit(distinct(i), run())
        done.set()

    t = threading.Thread(target=submit_all, daemon=True)
    t.start()
    assert done.wait(20), "submit() blocked on a hanging sink"
    assert stub.wait_for(1)  # the worker is stuck inside the first delivery
    c = r.counters()
    assert c["submitted"] == 10
    assert c["dropped"] >= 7  # 1 in flight, 2 queued at most
    r.close(timeout=0.5)  # the queued ones are counted as dropped; one is still in flight
    stub.released.set()  # the hanging request ends without an answer
    assert r.wait_idle(30)
    c = r.counters()
    assert c["sent"] == 0
    assert c["dropped"] + c["failed"] == 10  # every alert is accounted for


def test_a_dead_sink_counts_failures_and_others_still_deliver(clock: FakeClock) -> None:
    waits = Waits()
    dead = SlackSink(
        "dead",
        f"http://127.0.0.1:{closed_port()}/",
        tiers=ALL,
        retry=RetryPolicy(attempts=3, timeout=2),
        wait=waits,
    )
    alive = MemorySink("alive", ALL)
    with router(policy(), [dead, alive], clock) as r:
        for i in range(4):
            r.submit(distinct(i), run())
        assert r.wait_idle(30)
    assert r.sink_counters()["dead"]["failed"] == 4
    assert r.sink_counters()["alive"]["sent"] == 4
    assert len(waits.delays) == 4 * 2


def test_close_counts_what_was_never_delivered(clock: FakeClock) -> None:
    sink = MemorySink()
    sink.gate = threading.Event()  # the sink blocks until released
    r = router(policy(), [sink], clock, queue_size=5)
    for i in range(4):
        r.submit(distinct(i), run())
    r.close(timeout=0.2)
    sink.gate.set()
    c = r.counters()
    assert c["dropped"] >= 3  # at most one was being delivered
    assert r.submit(distinct(99), run()).outcome == "closed"


def test_failing_sink_is_counted(clock: FakeClock) -> None:
    sink = MemorySink()
    sink.fail = True
    with router(policy(), [sink], clock) as r:
        r.submit(distinct(1), run())
        assert r.wait_idle()
    assert r.counters()["failed"] == 1 and r.counters()["sent"] == 0


def test_resolve_goes_to_paging_sinks(clock: FakeClock) -> None:
    pager = MemorySink("pager", frozenset({Tier.PAGE}))
    tickets = MemorySink("tickets", frozenset({Tier.TICKET}))
    with router(policy(), [pager, tickets], clock) as r:
        routed = r.submit(finding(), run())
        assert routed.alert is not None
        assert r.resolve(routed.alert.dedup_key) == ["pager"]
        assert r.wait_idle()
    assert pager.messages[-1] == AlertAction(routed.alert.dedup_key, "resolve")
    assert tickets.messages == []


def test_end_to_end_signed_webhook_from_a_finding(stub: StubServer, clock: FakeClock) -> None:
    p = parse_alert_policy(b"base_url: https://sentrail.example.com\napp: prod\n")
    sink = WebhookSink("hook", stub.url(), "topsecret", clock=clock)
    with router(p, [sink], clock) as r:
        r.submit(finding(), run(), trace_hash="f" * 64)
        assert r.wait_idle()
    (req,) = stub.requests
    verify_webhook("topsecret", req.headers, req.body, clock.now)
    doc = json.loads(req.body)["alert"]
    assert doc["link"] == f"https://sentrail.example.com/v1/apps/prod/traces/{'f' * 64}"
    assert r.counters() == {
        "submitted": 1,
        "not_alerting": 0,
        "deduplicated": 0,
        "held": 0,
        "digested": 0,
        "rate_limited": 0,
        "dropped": 0,
        "sent": 1,
        "failed": 0,
    }
