"""The alert policy (YAML): which findings alert and how loudly, dedup, rate limits, quiet hours,
and the sinks. See docs/alerts.md.

Rules are tried in order and the first that matches a finding gives its tier: ``page``
(goes out now, even in quiet hours), ``ticket`` (goes out now, held in quiet hours),
``digest`` (collected and sent as one message every ``digest.interval_seconds``) or ``none``
(no alert). A finding no rule matches does not alert.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import zoneinfo
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

import msgspec

from sentrail.errors import SentrailError
from sentrail.model.finding import Category, Finding, Severity
from sentrail.yamldoc import read_yaml

MAX_CONFIG_BYTES = 1024 * 1024
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_GLOB = re.compile(r"[*?\[]")


class AlertConfigError(SentrailError):
    """An alert policy that does not validate (located: ``file:line N: rules[1].tier``)."""


class Tier(enum.StrEnum):
    PAGE = "page"
    TICKET = "ticket"
    DIGEST = "digest"
    NONE = "none"


class Match(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Globs over the finding's category and rule id and the run's agent id; a minimum
    severity. Every given condition must hold."""

    category: list[str] = msgspec.field(default_factory=lambda: ["*"])
    rule: list[str] = msgspec.field(default_factory=lambda: ["*"])
    agent: list[str] = msgspec.field(default_factory=lambda: ["*"])
    min_severity: Severity = Severity.INFO

    def matches(self, finding: Finding, agent_id: str) -> bool:
        return (
            finding.severity.rank >= self.min_severity.rank
            and any(fnmatchcase(finding.category.value, p) for p in self.category)
            and any(fnmatchcase(finding.rule, p) for p in self.rule)
            and any(fnmatchcase(agent_id, p) for p in self.agent)
        )


class AlertRule(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    tier: Tier
    match: Match = msgspec.field(default_factory=Match)
    name: str | None = None


class Dedup(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The same rule + run + resource alerts once per ``window_seconds``."""

    window_seconds: float = 3600.0
    max_keys: int = 100_000


class RateLimit(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A token bucket: ``burst`` alerts at once, refilled at ``per_minute``."""

    per_minute: float = 30.0
    burst: int = 10


class QuietHours(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """From ``start`` to ``end`` (local time in ``timezone``; may cross midnight) only
    ``page`` alerts go out; the rest are held for the digest. ``days`` are the days on which a
    quiet period starts."""

    timezone: str
    start: str
    end: str
    days: list[str] = msgspec.field(default_factory=lambda: list(_DAYS))

    def active(self, now: float) -> bool:
        local = dt.datetime.fromtimestamp(now, zoneinfo.ZoneInfo(self.timezone))  # cached
        minute = local.hour * 60 + local.minute
        start, end = _minutes(self.start), _minutes(self.end)
        day = local.weekday()
        if start < end:
            return start <= minute < end and _DAYS[day] in self.days
        if minute >= start:  # the evening part of a period that crosses midnight
            return _DAYS[day] in self.days
        if minute < end:  # the morning part: the period started yesterday
            return _DAYS[(day - 1) % 7] in self.days
        return False


class DigestConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    interval_seconds: float = 3600.0
    max_alerts: int = 1000


class SinkSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One destination. Secrets come from environment variables, never from the file."""

    name: str
    type: Literal["webhook", "slack", "pagerduty"]
    url: str | None = None
    url_env: str | None = None
    secret_env: str | None = None
    routing_key_env: str | None = None
    tiers: list[Tier] = msgspec.field(default_factory=lambda: [Tier.PAGE, Tier.TICKET])
    rate_limit: RateLimit | None = None
    queue_size: int = 1000
    timeout_seconds: float = 10.0
    max_attempts: int = 5
    severity_map: dict[str, Literal["critical", "error", "warning", "info"]] | None = None


def _default_rules() -> list[AlertRule]:
    return [
        AlertRule(Tier.PAGE, Match(min_severity=Severity.CRITICAL), "critical pages"),
        AlertRule(Tier.TICKET, Match(min_severity=Severity.WARNING), "warnings ticket"),
    ]


class AlertPolicy(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    version: int = 1
    base_url: str = "http://localhost:8080"
    app: str = "default"
    rules: list[AlertRule] = msgspec.field(default_factory=_default_rules)
    dedup: Dedup = msgspec.field(default_factory=Dedup)
    rate_limit: RateLimit | None = None
    quiet_hours: QuietHours | None = None
    digest: DigestConfig = msgspec.field(default_factory=DigestConfig)
    recent_steps: int = 5
    evidence_limit: int = 500
    sinks: list[SinkSpec] = msgspec.field(default_factory=list)

    def tier_for(self, finding: Finding, agent_id: str) -> Tier:
        """The tier of the first rule that matches (``none`` when no rule does)."""
        for rule in self.rules:
            if rule.match.matches(finding, agent_id):
                return rule.tier
        return Tier.NONE

    def rate_limit_for(self, sink: SinkSpec) -> RateLimit | None:
        return sink.rate_limit or self.rate_limit


def _minutes(hhmm: str) -> int:
    m = _HHMM.match(hhmm)
    if m is None:
        raise ValueError(f"not a time of day (HH:MM): {hhmm!r}")
    return int(m.group(1)) * 60 + int(m.group(2))


# ---- loading with located errors ----------------------------------------------------------


def parse_alert_policy(text: bytes, where: str = "<alerts>") -> AlertPolicy:
    """Validate an alert policy document; errors name the file, the line and the key path."""
    doc = read_yaml(text, where, AlertConfigError, MAX_CONFIG_BYTES, "alert policy")
    data = _listify(doc.data) if isinstance(doc.data, dict) else doc.data
    policy = doc.convert(AlertPolicy, data)
    _check(policy, doc.fail)
    return policy


def _listify(data: dict[str, Any]) -> dict[str, Any]:
    """Let a single glob be written as a string: ``category: data_exfiltration``."""
    rules = data.get("rules")
    if isinstance(rules, list):
        for rule in rules:
            match = rule.get("match") if isinstance(rule, dict) else None
            if isinstance(match, dict):
                for key in ("category", "rule", "agent"):
                    if isinstance(match.get(key), str):
                        match[key] = [match[key]]
    return data


def _check(policy: AlertPolicy, fail: Any) -> None:
    if policy.version != 1:
        raise fail(f"unsupported alert policy version {policy.version} (1)", "$.version")
    if not policy.base_url.startswith(("http://", "https://")):
        raise fail("base_url must start with http:// or https://", "$.base_url")
    categories = {c.value for c in Category}
    for i, rule in enumerate(policy.rules):
        for j, pattern in enumerate(rule.match.category):
            if not _GLOB.search(pattern) and pattern not in categories:
                known = ", ".join(sorted(categories))
                raise fail(
                    f"unknown category {pattern!r} (one of {known}, or a glob)",
                    f"$.rules[{i}].match.category[{j}]",
                )
    if policy.dedup.window_seconds < 0:
        raise fail("window_seconds must not be negative", "$.dedup.window_seconds")
    if policy.dedup.max_keys < 1:
        raise fail("max_keys must be at least 1", "$.dedup.max_keys")
    if policy.digest.interval_seconds <= 0:
        raise fail("interval_seconds must be positive", "$.digest.interval_seconds")
    if policy.digest.max_alerts < 1:
        raise fail("max_alerts must be at least 1", "$.digest.max_alerts")
    if not 0 <= policy.recent_steps <= 50:
        raise fail("recent_steps must be between 0 and 50", "$.recent_steps")
    if not 40 <= policy.evidence_limit <= 10_000:
        raise fail("evidence_limit must be between 40 and 10000", "$.evidence_limit")
    if policy.rate_limit is not None:
        _check_rate(policy.rate_limit, "$.rate_limit", fail)
    if policy.quiet_hours is not None:
        _check_quiet(policy.quiet_hours, fail)
    names: set[str] = set()
    for i, sink in enumerate(policy.sinks):
        _check_sink(sink, f"$.sinks[{i}]", names, fail)


def _check_rate(rate: RateLimit, base: str, fail: Any) -> None:
    if rate.per_minute <= 0:
        raise fail("per_minute must be positive", f"{base}.per_minute")
    if rate.burst < 1:
        raise fail("burst must be at least 1", f"{base}.burst")


def _check_quiet(quiet: QuietHours, fail: Any) -> None:
    try:
        zoneinfo.ZoneInfo(quiet.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise fail(f"unknown IANA time zone {quiet.timezone!r}", "$.quiet_hours.timezone") from None
    for key in ("start", "end"):
        value = getattr(quiet, key)
        if not _HHMM.match(value):
            raise fail(f"not a time of day (HH:MM): {value!r}", f"$.quiet_hours.{key}")
    if quiet.start == quiet.end:
        raise fail("start and end are the same time", "$.quiet_hours.end")
    for j, day in enumerate(quiet.days):
        if day not in _DAYS:
            raise fail(f"unknown day {day!r} ({', '.join(_DAYS)})", f"$.quiet_hours.days[{j}]")


def _check_sink(sink: SinkSpec, base: str, names: set[str], fail: Any) -> None:
    if sink.name in names:
        raise fail(f"duplicate sink name {sink.name!r}", f"{base}.name")
    names.add(sink.name)
    if sink.type != "pagerduty" and (sink.url is None) == (sink.url_env is None):
        raise fail("give exactly one of url and url_env", base)
    if sink.url is not None and not sink.url.startswith(("http://", "https://")):
        raise fail("url must start with http:// or https://", f"{base}.url")
    if sink.type == "webhook" and not sink.secret_env:
        raise fail("a webhook sink needs secret_env (the HMAC secret's variable)", base)
    if sink.type == "pagerduty":
        if not sink.routing_key_env:
            raise fail("a pagerduty sink needs routing_key_env", base)
        if Tier.DIGEST in sink.tiers:
            raise fail("pagerduty pages; it does not take the digest tier", f"{base}.tiers")
    if sink.severity_map is not None:
        if sink.type != "pagerduty":
            raise fail("severity_map is for pagerduty sinks", f"{base}.severity_map")
        for key in sink.severity_map:
            if key not in {s.value for s in Severity}:
                raise fail(f"unknown severity {key!r}", f"{base}.severity_map")
    if sink.queue_size < 1:
        raise fail("queue_size must be at least 1", f"{base}.queue_size")
    if sink.timeout_seconds <= 0:
        raise fail("timeout_seconds must be positive", f"{base}.timeout_seconds")
    if not 1 <= sink.max_attempts <= 20:
        raise fail("max_attempts must be between 1 and 20", f"{base}.max_attempts")
    if sink.rate_limit is not None:
        _check_rate(sink.rate_limit, f"{base}.rate_limit", fail)


def load_alert_policy(path: str | Path) -> AlertPolicy:
    p = Path(path)
    try:
        with p.open("rb") as fh:
            text = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise AlertConfigError(f"cannot read alert policy: {exc.strerror}", str(p)) from None
    return parse_alert_policy(text, str(p))
