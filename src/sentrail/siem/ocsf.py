"""OCSF 1.5.0: findings as Detection Finding (class 2004), tool calls as API Activity (6003).

``type_uid`` is ``class_uid * 100 + activity_id``. Severity: info → 1 Informational,
warning → 3 Medium, critical → 5 Critical. A tool call's severity is its step's worst finding
(1 when the step has none), and its policy verdict is in ``unmapped.sentrail.verdict`` and
``enrichments``. The output validates against the OCSF 1.5.0 JSON schema (tests).
"""

from __future__ import annotations

import re
from typing import Any

from sentrail import __version__
from sentrail.model.finding import Severity
from sentrail.siem.records import FindingRecord, Record, ToolCallRecord, run_details, status_kind

OCSF_VERSION = "1.5.0"
PRODUCT = {"name": "sentrail", "vendor_name": "Sentrail", "version": __version__}

FINDINGS_CATEGORY = (2, "Findings")
DETECTION_FINDING = (2004, "Detection Finding")
APPLICATION_CATEGORY = (6, "Application Activity")
API_ACTIVITY = (6003, "API Activity")

SEVERITY = {
    None: (1, "Informational"),
    Severity.INFO: (1, "Informational"),
    Severity.WARNING: (3, "Medium"),
    Severity.CRITICAL: (5, "Critical"),
}
_ACTIVITY = {0: "Unknown", 1: "Create", 2: "Read", 3: "Update", 4: "Delete", 99: "Other"}
_STATUS = {"success": (1, "Success"), "failure": (2, "Failure"), "unknown": (0, "Unknown")}
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
# Tried in order: a tool whose name holds a delete verb is a Delete even if it also lists.
_VERBS: tuple[tuple[int, frozenset[str]], ...] = (
    (4, frozenset({"delete", "drop", "remove", "rm", "destroy", "purge", "wipe", "truncate"})),
    (1, frozenset({"create", "add", "insert", "new", "post", "upload", "put", "write", "send"})),
    (3, frozenset({"update", "set", "modify", "patch", "edit", "change", "restart", "rename"})),
    (2, frozenset({"get", "list", "read", "query", "search", "fetch", "describe", "show", "find"})),
)


def activity_of(tool: str) -> int:
    """The API Activity ``activity_id`` from the tool's verb (99 Other when none is known)."""
    words = [w.lower() for w in _WORDS.findall(tool)]
    for activity, verbs in _VERBS:
        if any(w in verbs for w in words):
            return activity
    return 99


def _metadata(record: Record, uid: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "product": PRODUCT,
        "version": OCSF_VERSION,
        "uid": uid,
        "correlation_uid": record.run.run_id,
        "log_name": "findings" if isinstance(record, FindingRecord) else "tool_calls",
        "labels": [f"agent_id:{record.run.agent_id}"],
    }
    if record.run.tenant_id:
        meta["tenant_uid"] = record.run.tenant_id
    return meta


def detection_finding(record: FindingRecord) -> dict[str, Any]:
    f = record.finding
    class_uid, class_name = DETECTION_FINDING
    activity_id = 1  # Create
    severity_id, severity = SEVERITY[f.severity]
    analytic = {"uid": f.rule, "name": f.rule, "type_id": 1, "type": "Rule"}
    analytic["category"] = f.category.value
    finding_info: dict[str, Any] = {
        "uid": f.id,
        "title": f.message,
        "desc": f.message,
        "types": [f.category.value],
        "analytic": analytic,
        "created_time": record.time_ms,
    }
    evidence: dict[str, Any] = {"name": "sentrail.evidence", "data": f.evidence}
    if record.tool:
        evidence["api"] = {"operation": record.tool}
    sentrail = run_details(record)
    sentrail.update({"rule": f.rule, "step_index": f.step_index, "tags": f.tags})
    event: dict[str, Any] = {
        "activity_id": activity_id,
        "activity_name": _ACTIVITY[activity_id],
        "category_uid": FINDINGS_CATEGORY[0],
        "category_name": FINDINGS_CATEGORY[1],
        "class_uid": class_uid,
        "class_name": class_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_name}: {_ACTIVITY[activity_id]}",
        "severity_id": severity_id,
        "severity": severity,
        "status_id": 1,
        "status": "New",
        "is_alert": f.severity is not Severity.INFO,
        "time": record.time_ms,
        "message": f.message,
        "metadata": _metadata(record, f.id),
        "finding_info": finding_info,
        "evidences": [evidence],
        "unmapped": {"sentrail": sentrail},
    }
    if record.resource:
        event["resources"] = [{"uid": record.resource, "name": record.resource}]
    return event


def api_activity(record: ToolCallRecord) -> dict[str, Any]:
    class_uid, class_name = API_ACTIVITY
    activity_id = activity_of(record.tool)
    severity_id, severity = SEVERITY[record.worst]
    status_id, status = _STATUS[status_kind(record.status)]
    uid = f"{record.run.run_id}/step/{record.step_index}"
    api: dict[str, Any] = {
        "operation": record.tool,
        "service": {"name": record.tool.split(".", 1)[0] or record.tool},
        "request": {"uid": uid, "data": record.parameters},
    }
    sentrail = run_details(record)
    sentrail.update(
        {
            "step_index": record.step_index,
            "verdict": record.verdict.value,
            "finding_uids": record.finding_ids,
            "rules": record.rules,
            "permissions_used": record.permissions_used,
        }
    )
    for key in ("action", "environment", "approval_id"):
        value = getattr(record, key)
        if value is not None:
            sentrail[key] = value
    event: dict[str, Any] = {
        "activity_id": activity_id,
        "activity_name": _ACTIVITY[activity_id],
        "category_uid": APPLICATION_CATEGORY[0],
        "category_name": APPLICATION_CATEGORY[1],
        "class_uid": class_uid,
        "class_name": class_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_name}: {_ACTIVITY[activity_id]}",
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "time": record.time_ms,
        "message": f"{record.tool}: {record.verdict.value}",
        "metadata": _metadata(record, uid),
        "actor": {"app_name": record.run.agent_id, "app_uid": record.run.agent_id},
        "api": api,
        "src_endpoint": {"name": record.run.agent_id},
        "enrichments": [
            {
                "name": "policy_verdict",
                "value": record.verdict.value,
                "data": {"finding_uids": record.finding_ids, "rules": record.rules},
                "provider": "sentrail",
            }
        ],
        "unmapped": {"sentrail": sentrail},
    }
    if record.status is not None:
        event["status_detail"] = record.status
    if record.duration_ms is not None:
        event["duration"] = record.duration_ms
    if record.resource:
        event["resources"] = [{"uid": record.resource, "name": record.resource}]
    return event


def ocsf_event(record: Record) -> dict[str, Any]:
    if isinstance(record, FindingRecord):
        return detection_finding(record)
    return api_activity(record)
