"""One line per record in the chosen format: NDJSON for OCSF, Splunk HEC and ECS; a CEF line."""

from __future__ import annotations

import enum

import msgspec

from sentrail.siem.cef import cef_record
from sentrail.siem.ecs import ecs_document
from sentrail.siem.ocsf import ocsf_event
from sentrail.siem.records import Record
from sentrail.siem.splunk import hec_event

_encode = msgspec.json.Encoder().encode


class ExportFormat(enum.StrEnum):
    ocsf = "ocsf"
    splunk_hec = "splunk-hec"
    cef = "cef"
    ecs = "ecs"


def encode_record(
    fmt: ExportFormat, record: Record, *, host: str | None = None, index: str | None = None
) -> bytes:
    """The record as one line (no trailing newline)."""
    if fmt is ExportFormat.ocsf:
        return _encode(ocsf_event(record))
    if fmt is ExportFormat.splunk_hec:
        return _encode(hec_event(record, host=host, index=index))
    if fmt is ExportFormat.ecs:
        return _encode(ecs_document(record))
    return cef_record(record).encode()
