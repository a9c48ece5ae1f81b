"""ArcSight Common Event Format lines:
``CEF:0|Sentrail|sentrail|<version>|<signature id>|<name>|<severity 0-10>|<extension>``.

Escaping (CEF spec): in the header ``\\`` and ``|`` are escaped with a backslash and line breaks
become spaces; in extension values ``\\`` and ``=`` are escaped and line breaks are written
as ``\\n`` / ``\\r``. Other controls were already made visible (``safe_text``) in the records.
Severity: info 3, warning 6, critical 9; a tool call with no finding is 1.
"""

from __future__ import annotations

import re

from sentrail import __version__
from sentrail.alerts.redact import excerpt
from sentrail.model.finding import Severity
from sentrail.siem.records import FindingRecord, Record, ToolCallRecord

SEVERITY = {None: 1, Severity.INFO: 3, Severity.WARNING: 6, Severity.CRITICAL: 9}
_HEADER_LIMIT = 512
_VALUE_LIMIT = 1023  # ArcSight's string extension fields hold 1023 characters
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def escape_header(value: str) -> str:
    value = _LINE_BREAK.sub(" ", value[:_HEADER_LIMIT])
    return value.replace("\\", "\\\\").replace("|", "\\|")


def escape_value(value: str) -> str:
    value = value[:_VALUE_LIMIT].replace("\\", "\\\\").replace("=", "\\=")
    return value.replace("\r", "\\r").replace("\n", "\\n")


Pairs = list[tuple[str, str | int | None]]


def cef_line(signature: str, name: str, severity: int, extension: Pairs) -> str:
    """One CEF line; extension pairs whose value is None or empty are left out."""
    header = "|".join(
        [
            "CEF:0",
            "Sentrail",
            "sentrail",
            escape_header(__version__),
            escape_header(signature),
            escape_header(name),
            str(severity),
        ]
    )
    ext = " ".join(f"{k}={escape_value(str(v))}" for k, v in extension if v is not None and v != "")
    return f"{header}|{ext}"


def _custom(key: str, label: str, value: str | int | None) -> Pairs:
    """A custom field with its label (``cs1Label=runId cs1=...``), or nothing without a value."""
    if value is None or value == "":
        return []
    return [(f"{key}Label", label), (key, value)]


def cef_finding(record: FindingRecord) -> str:
    f = record.finding
    ext: Pairs = [
        ("rt", record.time_ms),
        ("externalId", f.id),
        ("cat", f.category.value),
        ("msg", f.message),
        ("suser", record.run.agent_id),
        ("act", record.tool),
        *_custom("cs1", "runId", record.run.run_id),
        *_custom("cs2", "rule", f.rule),
        *_custom("cs3", "tags", ",".join(f.tags)),
        *_custom("cs4", "evidence", excerpt(f.evidence, _VALUE_LIMIT - 24)),
        *_custom("cs5", "tenantId", record.run.tenant_id),
        *_custom("cs6", "resource", record.resource),
        *_custom("cn1", "stepIndex", f.step_index),
        *_custom("cn2", "runRiskScore", record.run.risk_score),
    ]
    return cef_line(f.rule, f.message, SEVERITY[f.severity], ext)


def cef_tool_call(record: ToolCallRecord) -> str:
    ext: Pairs = [
        ("rt", record.time_ms),
        ("externalId", f"{record.run.run_id}/step/{record.step_index}"),
        ("cat", "tool_call"),
        ("act", record.tool),
        ("outcome", record.verdict.value),
        ("reason", record.status),
        ("suser", record.run.agent_id),
        ("msg", record.action),
        *_custom("cs1", "runId", record.run.run_id),
        *_custom("cs2", "rules", ",".join(record.rules)),
        *_custom("cs3", "findingIds", ",".join(record.finding_ids)),
        *_custom("cs4", "permissionsUsed", ",".join(record.permissions_used)),
        *_custom("cs5", "tenantId", record.run.tenant_id),
        *_custom("cs6", "resource", record.resource),
        *_custom("cn1", "stepIndex", record.step_index),
        *_custom("cn2", "durationMs", record.duration_ms),
    ]
    return cef_line("tool_call", f"Tool call {record.tool}", SEVERITY[record.worst], ext)


def cef_record(record: Record) -> str:
    if isinstance(record, FindingRecord):
        return cef_finding(record)
    return cef_tool_call(record)
