"""Elastic Common Schema (8.x) documents.

Findings: ``event.kind: alert``, ``event.category: [intrusion_detection]``, ``rule.*``.
Tool calls: ``event.kind: event``, ``event.category: [api]``, ``event.action`` = the tool.
``event.severity`` is 3 / 6 / 9 (info / warning / critical; 1 for a tool call with no
finding), as in the CEF export. ``agent.*`` describes sentrail, the software that observed the
event (ECS's meaning); the AI agent and run are ``labels`` and the custom ``sentrail.*``
fields.
"""

from __future__ import annotations

from typing import Any

from sentrail import __version__
from sentrail.model.finding import Severity
from sentrail.siem.ocsf import activity_of
from sentrail.siem.records import (
    FindingRecord,
    Record,
    ToolCallRecord,
    iso_ms,
    run_details,
    status_kind,
)

ECS_VERSION = "8.11.0"
SEVERITY = {None: 1, Severity.INFO: 3, Severity.WARNING: 6, Severity.CRITICAL: 9}
_TYPE = {1: "creation", 2: "access", 3: "change", 4: "deletion", 99: "info"}
_AGENT = {"name": "sentrail", "type": "sentrail", "version": __version__}


def _labels(record: Record) -> dict[str, str]:
    labels = {"agent_id": record.run.agent_id, "run_id": record.run.run_id}
    if record.run.tenant_id:
        labels["tenant_id"] = record.run.tenant_id
    if record.run.verdict:
        labels["run_verdict"] = record.run.verdict
    return labels


def ecs_finding(record: FindingRecord) -> dict[str, Any]:
    f = record.finding
    sentrail = run_details(record)
    sentrail.update({"finding_id": f.id, "step_index": f.step_index, "evidence": f.evidence})
    if record.resource:
        sentrail["resource"] = record.resource
    doc: dict[str, Any] = {
        "@timestamp": iso_ms(record.time_ms),
        "ecs": {"version": ECS_VERSION},
        "message": f.message,
        "event": {
            "kind": "alert",
            "category": ["intrusion_detection"],
            "type": ["info"],
            "outcome": status_kind(record.step_status),
            "severity": SEVERITY[f.severity],
            "id": f.id,
            "code": f.rule,
            "reason": f.message,
            "module": "sentrail",
            "dataset": "sentrail.finding",
            "provider": "sentrail",
        },
        "rule": {
            "id": f.rule,
            "name": f.rule,
            "category": f.category.value,
            "ruleset": "sentrail",
            "description": f.message,
        },
        "agent": _AGENT,
        "labels": _labels(record),
        "tags": f.tags,
        "sentrail": sentrail,
    }
    if record.tool:
        doc["event"]["action"] = record.tool
    return doc


def ecs_tool_call(record: ToolCallRecord) -> dict[str, Any]:
    sentrail = run_details(record)
    sentrail.update(
        {
            "step_index": record.step_index,
            "verdict": record.verdict.value,
            "finding_ids": record.finding_ids,
            "rules": record.rules,
            "permissions_used": record.permissions_used,
            "parameters": record.parameters,
        }
    )
    for key in ("action", "status", "resource", "environment", "approval_id"):
        value = getattr(record, key)
        if value is not None:
            sentrail[key] = value
    event: dict[str, Any] = {
        "kind": "event",
        "category": ["api"],
        "type": [_TYPE[activity_of(record.tool)]],
        "action": record.tool,
        "outcome": status_kind(record.status),
        "severity": SEVERITY[record.worst],
        "id": f"{record.run.run_id}/step/{record.step_index}",
        "module": "sentrail",
        "dataset": "sentrail.tool_call",
        "provider": "sentrail",
    }
    if record.duration_ms is not None:
        event["duration"] = record.duration_ms * 1_000_000  # ECS durations are nanoseconds
    return {
        "@timestamp": iso_ms(record.time_ms),
        "ecs": {"version": ECS_VERSION},
        "message": f"{record.tool}: {record.verdict.value}",
        "event": event,
        "agent": _AGENT,
        "labels": {**_labels(record), "verdict": record.verdict.value},
        "sentrail": sentrail,
    }


def ecs_document(record: Record) -> dict[str, Any]:
    if isinstance(record, FindingRecord):
        return ecs_finding(record)
    return ecs_tool_call(record)
