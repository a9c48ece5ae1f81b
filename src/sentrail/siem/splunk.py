"""Splunk HTTP Event Collector event JSON: ``{"time", "host", "source", "sourcetype",
"event", "fields"}`` (plus ``index`` when given).

``time`` is epoch seconds with milliseconds; ``sourcetype`` is ``sentrail:finding`` or
``sentrail:tool_call``; ``event`` is sentrail's own record (flat, snake_case); ``fields`` are
the indexed fields (strings only, as HEC requires).
"""

from __future__ import annotations

import socket
from typing import Any

from sentrail.siem.records import FindingRecord, Record, ToolCallRecord, run_details

SOURCE = "sentrail"


def native_event(record: Record) -> dict[str, Any]:
    """sentrail's own flat event for a record (the HEC ``event``)."""
    out = run_details(record)
    if isinstance(record, FindingRecord):
        f = record.finding
        out.update(
            {
                "type": "finding",
                "finding_id": f.id,
                "rule": f.rule,
                "category": f.category.value,
                "severity": f.severity.value,
                "message": f.message,
                "step_index": f.step_index,
                "evidence": f.evidence,
                "tags": f.tags,
            }
        )
        for key in ("tool", "resource", "environment", "step_status"):
            value = getattr(record, key)
            if value is not None:
                out[key] = value
        return out
    out.update(
        {
            "type": "tool_call",
            "step_index": record.step_index,
            "tool": record.tool,
            "verdict": record.verdict.value,
            "worst_severity": record.worst.value if record.worst else None,
            "finding_ids": record.finding_ids,
            "rules": record.rules,
            "permissions_used": record.permissions_used,
            "parameters": record.parameters,
        }
    )
    for key in ("action", "status", "duration_ms", "resource", "environment", "approval_id"):
        value = getattr(record, key)
        if value is not None:
            out[key] = value
    return out


def hec_event(
    record: Record, *, host: str | None = None, index: str | None = None
) -> dict[str, Any]:
    fields = {"agent_id": record.run.agent_id, "run_id": record.run.run_id}
    if record.run.tenant_id:
        fields["tenant_id"] = record.run.tenant_id
    if isinstance(record, ToolCallRecord):
        sourcetype = "sentrail:tool_call"
        fields["verdict"] = record.verdict.value
    else:
        sourcetype = "sentrail:finding"
        fields["severity"] = record.finding.severity.value
        fields["category"] = record.finding.category.value
    event: dict[str, Any] = {
        "time": round(record.time_ms / 1000, 3),
        "host": host or socket.gethostname(),
        "source": SOURCE,
        "sourcetype": sourcetype,
        "event": native_event(record),
        "fields": fields,
    }
    if index:
        event["index"] = index
    return event
