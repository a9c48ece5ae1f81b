from __future__ import annotations

import email.utils
import json
import re

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentrail.alerts.alert import Alert, AlertAction, Digest, build_alert
from sentrail.alerts.bodies import pagerduty_event, slack_alert, slack_digest, slack_escape
from sentrail.alerts.policy import AlertConfigError, Tier, parse_alert_policy
from sentrail.alerts.retry import DeliveryError, RetryPolicy, parse_retry_after
from sentrail.alerts.sinks import (
    PAGERDUTY_URL,
    PagerDutySink,
    ReplayCache,
    SlackSink,
    WebhookSink,
    WebhookVerificationError,
    build_sinks,
    sign_webhook,
    verify_webhook,
)
from sentrail.model.finding import Severity
from tests.alerts.helpers import FakeClock, Waits, finding, run
from tests.alerts.stub_server import StubServer, closed_port

NOW = 1_772_720_521.0
SECRET = "s3cret-for-tests"
FAST = RetryPolicy(attempts=4, base_delay=0.5, max_delay=8.0, timeout=5.0)


def alert(**kw: object) -> Alert:
    r = run()
    return build_alert(finding(**kw), r, r.steps, tier=Tier.PAGE, now=NOW)  # type: ignore[arg-type]


# ---- the generic webhook --------------------------------------------------------------------


def test_webhook_posts_signed_json_that_verifies(stub: StubServer, clock: FakeClock) -> None:
    sink = WebhookSink("hook", stub.url(), SECRET, clock=clock)
    a = alert()
    sink.deliver(a)
    sink.close()
    (req,) = stub.requests
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-sentrail-timestamp"] == str(int(clock.now))
    assert re.fullmatch(r"sha256=[0-9a-f]{64}", req.headers["x-sentrail-signature"])
    assert req.headers["x-sentrail-delivery"] == a.id
    verify_webhook(SECRET, req.headers, req.body, now=clock.now)
    doc = json.loads(req.body)
    assert doc["format"] == "sentrail.alert/1" and doc["type"] == "alert"
    assert doc["alert"]["dedup_key"] == a.dedup_key
    assert doc["alert"]["link"].startswith("http://localhost:8080/v1/apps/default/traces/")


def test_verification_rejects_tampering_wrong_secret_and_missing_headers() -> None:
    body = b'{"x":1}'
    ts = str(int(NOW))
    headers = {"X-Sentrail-Timestamp": ts, "X-Sentrail-Signature": sign_webhook(SECRET, ts, body)}
    verify_webhook(SECRET, headers, body, NOW)
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_webhook(SECRET, headers, b'{"x":2}', NOW)
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_webhook("other", headers, body, NOW)
    moved = {**headers, "X-Sentrail-Timestamp": str(int(NOW) + 1)}  # the signature covers it
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_webhook(SECRET, moved, body, NOW)
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify_webhook(SECRET, {}, body, NOW)
    with pytest.raises(WebhookVerificationError, match="unix seconds"):
        verify_webhook(SECRET, {**headers, "X-Sentrail-Timestamp": "yesterday"}, body, NOW)


def test_replay_outside_the_window_and_twice_inside_it_is_rejected() -> None:
    body = b"{}"
    ts = str(int(NOW))
    headers = {"x-sentrail-timestamp": ts, "x-sentrail-signature": sign_webhook(SECRET, ts, body)}
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify_webhook(SECRET, headers, body, NOW + 301, tolerance=300)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify_webhook(SECRET, headers, body, NOW - 301, tolerance=300)  # from the future
    cache = ReplayCache()
    verify_webhook(SECRET, headers, body, NOW + 10, replay=cache)
    with pytest.raises(WebhookVerificationError, match="replay"):
        verify_webhook(SECRET, headers, body, NOW + 20, replay=cache)


@given(
    secret=st.text(min_size=1, max_size=40),
    body=st.binary(max_size=200),
    skew=st.integers(-300, 300),
)
def test_any_signed_body_verifies_within_tolerance(secret: str, body: bytes, skew: int) -> None:
    ts = str(int(NOW))
    headers = {"X-Sentrail-Timestamp": ts, "X-Sentrail-Signature": sign_webhook(secret, ts, body)}
    verify_webhook(secret, headers, body, NOW + skew, tolerance=300)


def test_each_retry_is_signed_with_its_own_timestamp(
    stub: StubServer, clock: FakeClock, waits: Waits
) -> None:
    stub.reply(500)

    def tick(seconds: float) -> bool:
        clock.advance(seconds + 60)
        return waits(seconds)

    sink = WebhookSink("hook", stub.url(), SECRET, retry=FAST, clock=clock, wait=tick)
    sink.deliver(alert())
    first, second = stub.requests
    assert int(second.headers["x-sentrail-timestamp"]) > int(first.headers["x-sentrail-timestamp"])
    verify_webhook(SECRET, second.headers, second.body, clock.now)


# ---- retries --------------------------------------------------------------------------------


def test_retries_5xx_with_full_jitter_backoff_then_succeeds(stub: StubServer, waits: Waits) -> None:
    stub.reply(500)
    stub.reply(502)
    stub.reply(503)  # no Retry-After: plain backoff
    sink = SlackSink("slack", stub.url(), retry=FAST, wait=waits)
    sink.deliver(alert())
    assert len(stub.requests) == 4
    assert len(waits.delays) == 3
    for attempt, delay in enumerate(waits.delays):
        assert 0 <= delay <= min(FAST.max_delay, FAST.base_delay * 2**attempt)


def test_429_retry_after_seconds_is_honoured(stub: StubServer, waits: Waits) -> None:
    stub.reply(429, headers={"Retry-After": "7"})
    sink = SlackSink("slack", stub.url(), retry=FAST, wait=waits)
    sink.deliver(alert())
    assert len(stub.requests) == 2
    (delay,) = waits.delays
    assert 7 <= delay <= 7 + FAST.base_delay


def test_503_retry_after_http_date_is_honoured(
    stub: StubServer, waits: Waits, clock: FakeClock
) -> None:
    stub.reply(503, headers={"Retry-After": email.utils.formatdate(clock.now + 42, usegmt=True)})
    sink = WebhookSink("hook", stub.url(), SECRET, retry=FAST, wait=waits, clock=clock)
    sink.deliver(alert())
    (delay,) = waits.delays
    assert 41 <= delay <= 42 + FAST.base_delay


def test_retry_after_beyond_the_limit_gives_up_instead_of_retrying_early(
    stub: StubServer, waits: Waits
) -> None:
    stub.reply(429, headers={"Retry-After": "3600"})
    policy = RetryPolicy(attempts=5, max_retry_after=300)
    sink = SlackSink("slack", stub.url(), retry=policy, wait=waits)
    with pytest.raises(DeliveryError, match="exceeds") as info:
        sink.deliver(alert())
    assert info.value.attempts == 1
    assert waits.delays == [] and len(stub.requests) == 1


def test_gives_up_after_n_attempts(stub: StubServer, waits: Waits) -> None:
    stub.default = stub.default._replace(status=500)
    sink = WebhookSink("hook", stub.url(), SECRET, retry=FAST, wait=waits)
    with pytest.raises(DeliveryError, match="gave up after 4 attempts: HTTP 500") as info:
        sink.deliver(alert())
    assert info.value.attempts == 4
    assert len(stub.requests) == 4
    assert len(waits.delays) == 3


def test_a_client_error_is_final(stub: StubServer, waits: Waits) -> None:
    stub.reply(400, body=b"invalid_payload")
    sink = SlackSink("slack", stub.url(), retry=FAST, wait=waits)
    with pytest.raises(DeliveryError, match="HTTP 400: invalid_payload"):
        sink.deliver(alert())
    assert len(stub.requests) == 1


def test_refused_connection_is_retried_then_given_up(waits: Waits) -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook"
    sink = WebhookSink("hook", url, SECRET, retry=RetryPolicy(attempts=3, timeout=2.0), wait=waits)
    with pytest.raises(DeliveryError, match="ConnectError"):
        sink.deliver(alert())
    assert len(waits.delays) == 2


def test_a_hanging_server_times_out_and_is_counted_as_an_attempt(
    stub: StubServer, waits: Waits
) -> None:
    stub.reply(hang=True, times=2)
    sink = SlackSink("slack", stub.url(), retry=RetryPolicy(attempts=2, timeout=0.3), wait=waits)
    with pytest.raises(DeliveryError, match="Timeout"):
        sink.deliver(alert())
    assert len(stub.requests) == 2


def test_a_cancelled_wait_stops_retrying(stub: StubServer) -> None:
    stub.reply(500, times=5)
    sink = SlackSink("slack", stub.url(), retry=FAST, wait=lambda _s: True)
    with pytest.raises(DeliveryError, match="cancelled"):
        sink.deliver(alert())
    assert len(stub.requests) == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0.0), ("120", 120.0), (" 5 ", 5.0), ("soon", None), (None, None), ("-3", None)],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_date_in_the_past_is_zero() -> None:
    assert parse_retry_after(email.utils.formatdate(NOW - 100, usegmt=True), NOW) == 0.0


# ---- Slack ----------------------------------------------------------------------------------


def test_slack_body_has_text_and_blocks_in_slack_limits(stub: StubServer) -> None:
    sink = SlackSink("slack", stub.url())
    a = alert()
    sink.deliver(a)
    doc = json.loads(stub.requests[0].body)
    assert set(doc) == {"text", "blocks"}
    assert "data_exfiltration.untrusted_transfer" in doc["text"]
    types = [b["type"] for b in doc["blocks"]]
    assert types[0] == "header" and "actions" in types and types[-1] == "context"
    assert doc["blocks"][0]["text"]["type"] == "plain_text"
    assert len(doc["blocks"][0]["text"]["text"]) <= 150
    (button,) = next(b for b in doc["blocks"] if b["type"] == "actions")["elements"]
    assert button["url"] == a.link
    fields = next(b for b in doc["blocks"] if "fields" in b)["fields"]
    assert len(fields) <= 10
    labels = " ".join(f["text"] for f in fields)
    for label in ("*Agent*", "*Run*", "*Step*", "*Rule*"):
        assert label in labels
    text = json.dumps(doc)
    assert "Suggested containment" in text and "Recent steps" in text and "Evidence" in text
    for b in doc["blocks"]:
        if b["type"] == "section" and "text" in b:
            assert len(b["text"]["text"]) <= 3000


def test_slack_escapes_control_characters_from_the_trace() -> None:
    r = run()
    r.agent_id = "<!channel> & <https://evil.example|click>"
    f = finding(message="ping <!here> & <@U123>")
    a = build_alert(f, r, r.steps, tier=Tier.PAGE, now=NOW)
    doc = slack_alert(a)
    mrkdwn = [b["text"]["text"] for b in doc["blocks"] if b.get("text", {}).get("type") == "mrkdwn"]
    mrkdwn += [fld["text"] for b in doc["blocks"] for fld in b.get("fields", [])]
    for text in [doc["text"], *mrkdwn]:
        assert "<!" not in text and "<@" not in text and "<http" not in text
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in doc["text"]


@given(st.text(max_size=200))
def test_slack_escape_leaves_no_markup(text: str) -> None:
    out = slack_escape(text)
    assert "<" not in out and ">" not in out
    assert re.sub(r"&(amp|lt|gt);", "", out).count("&") == 0
    assert out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == text


def test_slack_digest_is_bounded() -> None:
    alerts = [alert(step=i) for i in range(40)]
    doc = slack_digest(Digest(id="D-1", created_at="t", alerts=alerts, total=55))
    assert doc["text"] == "Sentrail digest: 55 alerts"
    assert "… and 30 more" in json.dumps(doc, ensure_ascii=False)
    assert len(doc["blocks"]) <= 50
    assert all(len(b["text"]["text"]) <= 3000 for b in doc["blocks"][1:])


# ---- PagerDuty ------------------------------------------------------------------------------


def test_pagerduty_trigger_shape(stub: StubServer) -> None:
    sink = PagerDutySink("pd", "R" * 32, stub.url("/v2/enqueue"), client_url="https://s.example")
    a = alert()
    sink.deliver(a)
    ev = json.loads(stub.requests[0].body)
    assert stub.requests[0].path == "/v2/enqueue"
    assert ev["routing_key"] == "R" * 32
    assert ev["event_action"] == "trigger"
    assert ev["dedup_key"] == a.dedup_key
    p = ev["payload"]
    assert set(p) >= {"summary", "source", "severity", "component", "custom_details"}
    assert p["severity"] == "critical"
    assert p["source"] == "prod-triage-au-east"
    assert len(p["summary"]) <= 1024
    details = p["custom_details"]
    assert details["run_id"] == "run-1" and details["step_index"] == 2
    assert details["containment"] and details["evidence"] and details["recent_steps"]
    assert ev["links"] == [{"href": a.link, "text": "Run in Sentrail"}]
    assert ev["client"] == "sentrail" and ev["client_url"] == "https://s.example"


def test_pagerduty_acknowledge_and_resolve_by_dedup_key(stub: StubServer) -> None:
    sink = PagerDutySink("pd", "R" * 32, stub.url())
    sink.acknowledge("sentrail-abc")
    sink.resolve("sentrail-abc")
    sink.deliver(Digest(id="D", created_at="t", alerts=[], total=0))  # digests are not paged
    bodies = [json.loads(r.body) for r in stub.requests]
    assert bodies == [
        {"routing_key": "R" * 32, "event_action": "acknowledge", "dedup_key": "sentrail-abc"},
        {"routing_key": "R" * 32, "event_action": "resolve", "dedup_key": "sentrail-abc"},
    ]


def test_pagerduty_severity_mapping_and_override() -> None:
    for sev, expected in (
        (Severity.CRITICAL, "critical"),
        (Severity.WARNING, "warning"),
        (Severity.INFO, "info"),
    ):
        ev = pagerduty_event("k", alert(severity=sev))
        assert ev["payload"]["severity"] == expected
    ev = pagerduty_event("k", alert(severity=Severity.WARNING), severity_map={"warning": "error"})
    assert ev["payload"]["severity"] == "error"
    assert pagerduty_event("k", AlertAction("d", "resolve")) == {
        "routing_key": "k",
        "event_action": "resolve",
        "dedup_key": "d",
    }


# ---- from the policy ------------------------------------------------------------------------


def test_build_sinks_from_policy_and_environment() -> None:
    policy = parse_alert_policy(
        b"""
sinks:
  - {name: pd, type: pagerduty, routing_key_env: PD_KEY}
  - {name: slack, type: slack, url_env: SLACK_URL, tiers: [ticket, digest]}
  - {name: hook, type: webhook, url: "http://127.0.0.1:9/h", secret_env: HOOK_SECRET,
     max_attempts: 2}
"""
    )
    env = {"PD_KEY": "k" * 32, "SLACK_URL": "http://127.0.0.1:9/slack", "HOOK_SECRET": "x"}
    pd, slack, hook = build_sinks(policy, env)
    try:
        assert isinstance(pd, PagerDutySink) and pd.url == PAGERDUTY_URL
        assert pd.tiers == frozenset({Tier.PAGE, Tier.TICKET})
        assert isinstance(slack, SlackSink) and slack.tiers == frozenset({Tier.TICKET, Tier.DIGEST})
        assert isinstance(hook, WebhookSink)
    finally:
        for s in (pd, slack, hook):
            s.close()
    with pytest.raises(AlertConfigError, match="SLACK_URL is not set"):
        build_sinks(policy, {"PD_KEY": "k"})


def test_webhook_body_kinds() -> None:
    from sentrail.alerts.bodies import webhook_body

    assert json.loads(webhook_body(AlertAction("k", "resolve"))) == {
        "format": "sentrail.alert/1",
        "type": "resolve",
        "dedup_key": "k",
    }
    d = json.loads(webhook_body(Digest(id="D", created_at="t", alerts=[alert()], total=1)))
    assert d["type"] == "digest" and d["digest"]["total"] == 1
    assert msgspec.json.decode(json.dumps(d["digest"]["alerts"][0]).encode(), type=Alert)
