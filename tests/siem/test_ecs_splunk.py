from __future__ import annotations

import datetime as dt

from sentrail.model.finding import Severity
from sentrail.siem.ecs import ECS_VERSION, ecs_document
from sentrail.siem.records import FindingRecord, Record, ToolCallRecord
from sentrail.siem.splunk import hec_event
from tests.siem.conftest import as_json


def test_ecs_finding_document(example_records: list[Record]) -> None:
    for record in example_records:
        if not isinstance(record, FindingRecord):
            continue
        doc = as_json(ecs_document(record))
        assert doc["ecs"]["version"] == ECS_VERSION
        when = dt.datetime.fromisoformat(doc["@timestamp"])
        assert int(when.timestamp() * 1000) == record.time_ms
        ev = doc["event"]
        assert ev["kind"] == "alert" and ev["category"] == ["intrusion_detection"]
        assert ev["type"] == ["info"] and ev["outcome"] in {"success", "failure", "unknown"}
        assert (
            ev["severity"]
            == {Severity.INFO: 3, Severity.WARNING: 6, Severity.CRITICAL: 9}[
                record.finding.severity
            ]
        )
        assert doc["rule"]["id"] == record.finding.rule
        assert doc["rule"]["category"] == record.finding.category.value
        assert doc["labels"]["agent_id"] == record.run.agent_id
        assert all(isinstance(v, str) for v in doc["labels"].values())  # ECS labels: keywords
        assert doc["agent"]["name"] == "sentrail"
        assert doc["sentrail"]["finding_id"] == record.finding.id


def test_ecs_tool_call_document(example_records: list[Record]) -> None:
    for record in example_records:
        if not isinstance(record, ToolCallRecord):
            continue
        doc = as_json(ecs_document(record))
        ev = doc["event"]
        assert ev["kind"] == "event" and ev["category"] == ["api"]
        assert ev["type"][0] in {"creation", "access", "change", "deletion", "info"}
        assert ev["action"] == record.tool
        assert doc["labels"]["verdict"] == record.verdict.value
        assert doc["sentrail"]["verdict"] == record.verdict.value
        if record.duration_ms is not None:
            assert ev["duration"] == record.duration_ms * 1_000_000


def test_splunk_hec_event_shape(example_records: list[Record]) -> None:
    for record in example_records:
        ev = as_json(hec_event(record, host="sentrail-01", index="security"))
        assert set(ev) == {"time", "host", "source", "sourcetype", "event", "fields", "index"}
        assert ev["time"] == record.time_ms / 1000
        assert ev["host"] == "sentrail-01" and ev["source"] == "sentrail"
        assert all(isinstance(v, str) for v in ev["fields"].values())  # HEC indexed fields
        if isinstance(record, FindingRecord):
            assert ev["sourcetype"] == "sentrail:finding"
            assert ev["event"]["finding_id"] == record.finding.id
            assert ev["fields"]["severity"] == record.finding.severity.value
        else:
            assert ev["sourcetype"] == "sentrail:tool_call"
            assert ev["event"]["verdict"] == ev["fields"]["verdict"] == record.verdict.value
    assert "index" not in hec_event(example_records[0])
