"""Request bodies for each sink, as pure functions (no I/O): the generic webhook's JSON, a
Slack incoming-webhook message (``text`` + Block Kit ``blocks``) and a PagerDuty Events API v2
event.

Slack treats ``&``, ``<`` and ``>`` as markup (``<!channel>`` pings a channel, ``<url|x>``
makes a link), so every trace-derived string in a ``mrkdwn`` text is escaped with
``slack_escape``; links go in button ``url`` fields, never in text. Slack's limits are kept:
header 150 characters, section text 3000, at most 10 fields of 2000, at most 50 blocks.
"""

from __future__ import annotations

from typing import Any

import msgspec

from sentrail import __version__
from sentrail.alerts.alert import Alert, AlertAction, Digest
from sentrail.model.finding import Severity

WEBHOOK_FORMAT = "sentrail.alert/1"
PD_SEVERITY: dict[str, str] = {
    Severity.CRITICAL.value: "critical",
    Severity.WARNING.value: "warning",
    Severity.INFO.value: "info",
}
_SLACK_HEADER = 150
_SLACK_SECTION = 3000
_SLACK_FIELD = 2000
_SLACK_TEXT = 3000
_DIGEST_LINES = 25
_PD_SUMMARY = 1024


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_escape(text: str) -> str:
    """Slack's three control characters as entities: ``&`` first, then ``<`` and ``>``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    """Inline code that the text cannot close early."""
    return "`" + slack_escape(text).replace("`", "ˋ") + "`"


# ---- generic webhook -------------------------------------------------------------------------


def webhook_body(message: Alert | Digest | AlertAction) -> bytes:
    if isinstance(message, Alert):
        doc: dict[str, Any] = {"format": WEBHOOK_FORMAT, "type": "alert", "alert": message}
    elif isinstance(message, Digest):
        doc = {"format": WEBHOOK_FORMAT, "type": "digest", "digest": message}
    else:
        doc = {
            "format": WEBHOOK_FORMAT,
            "type": message.action,
            "dedup_key": message.dedup_key,
        }
    return msgspec.json.encode(doc)


# ---- Slack -----------------------------------------------------------------------------------


def slack_alert(alert: Alert) -> dict[str, Any]:
    sev = alert.severity.value.upper()
    text = _cut(
        f"[{sev}] {slack_escape(alert.rule)}: {slack_escape(alert.message)} "
        f"(agent {slack_escape(alert.agent_id)}, run {slack_escape(alert.run_id)})",
        _SLACK_TEXT,
    )
    fields = [
        ("Agent", alert.agent_id),
        ("Run", alert.run_id),
        ("Step", "run" if alert.step_index is None else str(alert.step_index)),
        ("Rule", alert.rule),
        ("Severity", alert.severity.value),
        ("Tier", alert.tier.value),
    ]
    if alert.tool:
        fields.append(("Tool", alert.tool))
    if alert.resource:
        fields.append(("Resource", alert.resource))
    if alert.environment:
        fields.append(("Environment", alert.environment))
    if alert.tenant_id:
        fields.append(("Tenant", alert.tenant_id))
    recent = "\n".join(
        f"{_code(str(s.step_index))} {slack_escape(s.action or '—')} → "
        f"{slack_escape(s.tool or '—')} ({slack_escape(s.status or 'no result')})"
        for s in alert.recent_steps
    )
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _cut(f"{sev}: {alert.category.value} — {alert.agent_id}", _SLACK_HEADER),
            },
        },
        _section(f"*{slack_escape(alert.message)}*"),
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": _cut(f"*{k}*\n{_code(v)}", _SLACK_FIELD)}
                for k, v in fields[:10]
            ],
        },
        _section(
            "*Evidence*\n```" + slack_escape(alert.evidence_excerpt).replace("`", "ˋ") + "```"
        ),
    ]
    if recent:
        blocks.append(_section(f"*Recent steps*\n{recent}"))
    blocks.append(_section(f"*Suggested containment*\n{slack_escape(alert.containment)}"))
    blocks.append(_open_run(alert.link))
    blocks.append(_context(alert))
    return {"text": text, "blocks": blocks}


def slack_digest(digest: Digest) -> dict[str, Any]:
    lines = [
        f"{_code(a.severity.value.upper())} {slack_escape(a.rule)} — "
        f"{slack_escape(a.agent_id)} run {slack_escape(a.run_id)}: {slack_escape(a.message)}"
        for a in digest.alerts[:_DIGEST_LINES]
    ]
    more = digest.total - min(len(digest.alerts), _DIGEST_LINES)
    if more > 0:
        lines.append(f"… and {more} more")
    title = f"Sentrail digest: {digest.total} alert{'s' * (digest.total != 1)}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title}},
    ]
    chunk = ""
    for line in lines:
        line = _cut(line, 500)
        if len(chunk) + len(line) + 1 > _SLACK_SECTION:
            blocks.append(_section(chunk))
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line
    if chunk:
        blocks.append(_section(chunk))
    return {"text": _cut(title, _SLACK_TEXT), "blocks": blocks[:50]}


def slack_action(action: AlertAction) -> dict[str, Any]:
    text = f"Sentrail alert {slack_escape(action.dedup_key)}: {action.action}d"
    return {"text": text, "blocks": [_section(text)]}


def slack_body(message: Alert | Digest | AlertAction) -> bytes:
    if isinstance(message, Alert):
        doc = slack_alert(message)
    elif isinstance(message, Digest):
        doc = slack_digest(message)
    else:
        doc = slack_action(message)
    return msgspec.json.encode(doc)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, _SLACK_SECTION)}}


def _open_run(link: str) -> dict[str, Any]:
    return {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Open run in Sentrail"},
                "url": link[:3000],
            }
        ],
    }


def _context(alert: Alert) -> dict[str, Any]:
    tags = ", ".join(alert.tags) or "no tags"
    return {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": _cut(
                    f"sentrail {__version__} · {slack_escape(alert.id)} · "
                    f"{slack_escape(alert.dedup_key)} · {slack_escape(tags)}",
                    _SLACK_SECTION,
                ),
            }
        ],
    }


# ---- PagerDuty Events API v2 ------------------------------------------------------------------


def pagerduty_event(
    routing_key: str,
    message: Alert | AlertAction,
    *,
    severity_map: dict[str, str] | None = None,
    client_url: str | None = None,
) -> dict[str, Any]:
    """An Events API v2 event: ``trigger`` for an alert (``dedup_key`` = rule + run +
    resource), ``acknowledge`` / ``resolve`` for a follow-up."""
    if isinstance(message, AlertAction):
        return {
            "routing_key": routing_key,
            "event_action": message.action,
            "dedup_key": message.dedup_key,
        }
    alert = message
    mapping = {**PD_SEVERITY, **(severity_map or {})}
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": alert.dedup_key[:255],
        "payload": {
            "summary": _cut(f"{alert.rule}: {alert.message} ({alert.agent_id})", _PD_SUMMARY),
            "source": alert.agent_id,
            "severity": mapping[alert.severity.value],
            "timestamp": alert.created_at,
            "component": alert.tool or alert.resource or alert.category.value,
            "group": alert.tenant_id or "default",
            "class": alert.category.value,
            "custom_details": {
                "rule": alert.rule,
                "run_id": alert.run_id,
                "step_index": alert.step_index,
                "tier": alert.tier.value,
                "resource": alert.resource,
                "environment": alert.environment,
                "evidence": alert.evidence_excerpt,
                "recent_steps": [msgspec.to_builtins(s) for s in alert.recent_steps],
                "containment": alert.containment,
                "tags": alert.tags,
                "alert_id": alert.id,
            },
        },
        "links": [{"href": alert.link, "text": "Run in Sentrail"}],
        "client": "sentrail",
    }
    if client_url:
        event["client_url"] = client_url
    return event
