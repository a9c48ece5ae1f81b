from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentrail.alerts.policy import (
    AlertConfigError,
    AlertPolicy,
    QuietHours,
    Tier,
    load_alert_policy,
    parse_alert_policy,
)
from sentrail.model.finding import Category, Severity
from tests.alerts.helpers import finding, local_epoch

FULL = b"""
base_url: https://sentrail.example.com
app: payments
rules:
  - name: exfil pages
    match: {category: [data_exfiltration, tainted_action], min_severity: warning, agent: "prod-*"}
    tier: page
  - match: {rule: "policy.rule.*", min_severity: critical}
    tier: page
  - match: {category: missing_telemetry}
    tier: none
  - match: {min_severity: warning}
    tier: ticket
  - match: {}
    tier: digest
dedup: {window_seconds: 600}
rate_limit: {per_minute: 60, burst: 5}
quiet_hours:
  {timezone: Australia/Sydney, start: "22:00", end: "07:00", days: [mon, tue, wed, thu, fri]}
digest: {interval_seconds: 1800, max_alerts: 50}
sinks:
  - {name: pd, type: pagerduty, routing_key_env: PD_KEY, tiers: [page],
     severity_map: {warning: error}}
  - {name: slack, type: slack, url_env: SLACK_URL, tiers: [page, ticket, digest],
     rate_limit: {per_minute: 10, burst: 2}}
  - {name: hook, type: webhook, url: "http://127.0.0.1:9/hook", secret_env: HOOK_SECRET}
"""


def test_full_example_loads_and_routes_by_first_matching_rule() -> None:
    p = parse_alert_policy(FULL, "alerts.yaml")
    assert p.base_url == "https://sentrail.example.com"
    assert [s.name for s in p.sinks] == ["pd", "slack", "hook"]
    exfil = finding(severity=Severity.WARNING)
    assert p.tier_for(exfil, "prod-payments") is Tier.PAGE
    assert p.tier_for(exfil, "staging-payments") is Tier.TICKET  # agent glob does not match
    rule = finding(
        "policy.rule.no-prod-destructive", Severity.CRITICAL, 1, Category.POLICY_VIOLATION
    )
    assert p.tier_for(rule, "anyone") is Tier.PAGE
    gap = finding("missing_telemetry.no_result", Severity.WARNING, 1, Category.MISSING_TELEMETRY)
    assert p.tier_for(gap, "prod-x") is Tier.NONE
    info = finding("unusual_sequence.rare", Severity.INFO, 1, Category.UNUSUAL_SEQUENCE)
    assert p.tier_for(info, "prod-x") is Tier.DIGEST
    assert p.rate_limit_for(p.sinks[1]) == p.sinks[1].rate_limit
    assert p.rate_limit_for(p.sinks[0]) == p.rate_limit


def test_defaults_page_critical_ticket_warning_ignore_info() -> None:
    p = parse_alert_policy(b"")
    assert p.tier_for(finding(severity=Severity.CRITICAL), "a") is Tier.PAGE
    assert p.tier_for(finding(severity=Severity.WARNING), "a") is Tier.TICKET
    assert p.tier_for(finding(severity=Severity.INFO), "a") is Tier.NONE


def test_a_single_glob_may_be_a_string() -> None:
    p = parse_alert_policy(
        b"rules: [{match: {category: data_exfiltration, agent: prod-*}, tier: page}]"
    )
    assert p.rules[0].match.category == ["data_exfiltration"]
    assert p.rules[0].match.agent == ["prod-*"]


@pytest.mark.parametrize(
    ("doc", "where", "says"),
    [
        (b"rules:\n  - tier: pager\n", "alerts.yaml:line 2: rules[0].tier", "invalid enum value"),
        (
            b"rules:\n  - tier: page\n    match: {category: data_exfil}\n",
            "line 3: rules[0].match.category[0]",
            "unknown category 'data_exfil'",
        ),
        (
            b"rules:\n  - tier: page\n    match: {min_severity: severe}\n",
            "rules[0].match.min_severity",
            "invalid enum value",
        ),
        (
            b"quiet_hours: {timezone: Mars/Olympus, start: '22:00', end: '07:00'}\n",
            "line 1: quiet_hours.timezone",
            "unknown IANA time zone",
        ),
        (
            b"quiet_hours: {timezone: UTC, start: '25:00', end: '07:00'}\n",
            "quiet_hours.start",
            "not a time of day",
        ),
        (
            b"quiet_hours: {timezone: UTC, start: '22:00', end: '07:00', days: [funday]}\n",
            "quiet_hours.days[0]",
            "unknown day",
        ),
        (b"dedup: {window_seconds: -1}\n", "dedup.window_seconds", "must not be negative"),
        (b"rate_limit: {per_minute: 0}\n", "rate_limit.per_minute", "must be positive"),
        (
            b"sinks:\n  - {name: a, type: slack}\n",
            "line 2: sinks[0]",
            "exactly one of url and url_env",
        ),
        (
            b"sinks:\n  - {name: a, type: webhook, url: 'http://x'}\n",
            "sinks[0]",
            "needs secret_env",
        ),
        (
            b"sinks:\n  - {name: a, type: pagerduty, routing_key_env: K, tiers: [digest]}\n",
            "sinks[0].tiers",
            "does not take the digest",
        ),
        (
            b"sinks:\n  - {name: a, type: slack, url: 'ftp://x'}\n",
            "sinks[0].url",
            "http:// or https://",
        ),
        (
            b"sinks:\n  - {name: a, type: slack, url: 'http://x'}\n  - {name: a, type: slack, url: 'http://y'}\n",
            "line 3: sinks[1].name",
            "duplicate sink name",
        ),
        (
            b"sinks:\n  - {name: a, type: teams, url: 'http://x'}\n",
            "sinks[0].type",
            "invalid enum value",
        ),
        (b"bogus: 1\n", "alerts.yaml:line 1: bogus", "unknown key 'bogus'"),
        (b"rate_limit:\n  per_minute: 5\n  brust: 3\n", "line 3: rate_limit.brust", "'burst'?"),
        (b"app: a\napp: b\n", "alerts.yaml:line 2", "duplicate key 'app'"),
        (b"rules: [\n", "alerts.yaml:line", "not valid YAML"),
    ],
)
def test_bad_config_gets_a_located_error(doc: bytes, where: str, says: str) -> None:
    with pytest.raises(AlertConfigError) as info:
        parse_alert_policy(doc, "alerts.yaml")
    text = str(info.value)
    assert where in text, text
    assert says.lower() in text.lower(), text


def test_load_from_file_and_missing_file(tmp_path: Path) -> None:
    f = tmp_path / "alerts.yaml"
    f.write_bytes(FULL)
    assert isinstance(load_alert_policy(f), AlertPolicy)
    with pytest.raises(AlertConfigError, match="cannot read alert policy"):
        load_alert_policy(tmp_path / "missing.yaml")


def test_quiet_hours_across_midnight_in_the_zone() -> None:
    q = QuietHours(timezone="Australia/Sydney", start="22:00", end="07:00", days=["thu"])
    tz = "Australia/Sydney"
    assert q.active(local_epoch(tz, 2026, 3, 5, 23, 30))  # Thursday evening
    assert q.active(local_epoch(tz, 2026, 3, 6, 6, 59))  # Friday morning: started Thursday
    assert not q.active(local_epoch(tz, 2026, 3, 6, 7, 0))
    assert not q.active(local_epoch(tz, 2026, 3, 6, 23, 0))  # Friday: no period starts
    assert not q.active(local_epoch(tz, 2026, 3, 5, 21, 59))
    # the same instant is daytime in UTC: the zone matters
    assert not QuietHours(timezone="UTC", start="22:00", end="07:00").active(
        local_epoch(tz, 2026, 3, 5, 23, 30)
    )


_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@given(
    start=st.integers(0, 24 * 60 - 1),
    end=st.integers(0, 24 * 60 - 1),
    instant=st.integers(1_700_000_000, 1_900_000_000),
    days=st.sets(st.sampled_from(_DAYS)),
    tz=st.sampled_from(["UTC", "Australia/Sydney", "America/New_York", "Asia/Kolkata"]),
)
def test_quiet_hours_match_a_reference(
    start: int, end: int, instant: int, days: set[str], tz: str
) -> None:
    if start == end:
        return
    q = QuietHours(
        timezone=tz,
        start=f"{start // 60:02d}:{start % 60:02d}",
        end=f"{end // 60:02d}:{end % 60:02d}",
        days=sorted(days),
    )
    local = dt.datetime.fromtimestamp(instant, zoneinfo.ZoneInfo(tz))
    minute = local.hour * 60 + local.minute
    today, yesterday = _DAYS[local.weekday()], _DAYS[(local.weekday() - 1) % 7]
    if start < end:
        expected = start <= minute < end and today in days
    else:
        expected = (minute >= start and today in days) or (minute < end and yesterday in days)
    assert q.active(instant) is expected


def test_every_category_is_known_to_the_checker() -> None:
    for c in Category:
        parse_alert_policy(f"rules: [{{match: {{category: {c.value}}}, tier: page}}]".encode())


def test_the_documented_example_is_valid() -> None:
    from tests.conftest import ROOT

    doc = (ROOT / "docs" / "alerts.md").read_text()
    (block,) = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    p = parse_alert_policy(block.encode(), "docs/alerts.md")
    assert [s.type for s in p.sinks] == ["pagerduty", "slack", "webhook"]
    assert p.quiet_hours is not None and p.quiet_hours.timezone == "Australia/Sydney"
