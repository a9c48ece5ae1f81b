from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings

from sentrail.engine.engine import Engine
from sentrail.model.decode import decode_run
from sentrail.model.finding import Severity
from sentrail.policy.compiled import Policy
from sentrail.siem.ocsf import (
    OCSF_VERSION,
    activity_of,
    api_activity,
    detection_finding,
    ocsf_event,
)
from sentrail.siem.records import FindingRecord, Record, ToolCallRecord, records_from_run
from tests.siem.conftest import as_json
from tests.strategies import traces


def errors(validators: dict[int, Any], event: dict[str, Any]) -> list[str]:
    doc = as_json(event)
    return [f"{e.json_path}: {e.message}" for e in validators[doc["class_uid"]].iter_errors(doc)]


def test_every_example_record_validates_against_ocsf_1_5(
    example_records: list[Record], ocsf_validators: dict[int, Any]
) -> None:
    kinds = {type(r).__name__ for r in example_records}
    assert kinds == {"FindingRecord", "ToolCallRecord"}
    for record in example_records:
        assert errors(ocsf_validators, ocsf_event(record)) == [], record


def test_the_validator_rejects_broken_events(
    example_records: list[Record], ocsf_validators: dict[int, Any]
) -> None:
    finding = next(r for r in example_records if isinstance(r, FindingRecord))
    good = detection_finding(finding)
    for broken in (
        {k: v for k, v in good.items() if k != "finding_info"},
        {**good, "type_uid": 200499 + 1},
        {**good, "severity_id": 7},
        {**good, "not_an_ocsf_attribute": 1},
        {**good, "metadata": {"product": {"name": "sentrail"}}},  # no metadata.version
    ):
        assert errors(ocsf_validators, broken), broken


def test_detection_finding_ids_and_severity(example_records: list[Record]) -> None:
    for record in example_records:
        if not isinstance(record, FindingRecord):
            continue
        ev = detection_finding(record)
        assert (ev["category_uid"], ev["class_uid"], ev["activity_id"]) == (2, 2004, 1)
        assert ev["type_uid"] == 200401
        assert (
            ev["severity_id"]
            == {Severity.INFO: 1, Severity.WARNING: 3, Severity.CRITICAL: 5}[
                record.finding.severity
            ]
        )
        assert ev["time"] == record.time_ms and isinstance(ev["time"], int)
        assert ev["metadata"]["version"] == OCSF_VERSION
        assert ev["metadata"]["product"]["name"] == "sentrail"
        assert ev["finding_info"]["uid"] == record.finding.id
        assert ev["finding_info"]["analytic"]["uid"] == record.finding.rule
        assert ev["unmapped"]["sentrail"]["run_id"] == record.run.run_id


def test_api_activity_carries_the_policy_verdict(example_records: list[Record]) -> None:
    calls = [r for r in example_records if isinstance(r, ToolCallRecord)]
    verdicts = {r.verdict.value for r in calls}
    assert verdicts == {"allowed", "suspicious", "unauthorized"}
    for record in calls:
        ev = api_activity(record)
        assert (ev["category_uid"], ev["class_uid"]) == (6, 6003)
        assert ev["type_uid"] == 600300 + ev["activity_id"]
        assert ev["api"]["operation"] == record.tool
        assert ev["actor"]["app_name"] == record.run.agent_id
        assert ev["unmapped"]["sentrail"]["verdict"] == record.verdict.value
        assert ev["enrichments"][0] == {
            "name": "policy_verdict",
            "value": record.verdict.value,
            "data": {"finding_uids": record.finding_ids, "rules": record.rules},
            "provider": "sentrail",
        }
        if record.verdict.value == "unauthorized":
            assert ev["severity_id"] == 5


@pytest.mark.parametrize(
    ("tool", "activity"),
    [
        ("db.delete_table", 4),
        ("s3.list_objects", 2),
        ("metrics.query", 2),
        ("GmailReadEmail", 2),
        ("ticket.create", 1),
        ("email.send", 1),
        ("service.restart", 3),
        ("bank.transfer", 99),
        ("db.drop_then_list", 4),
    ],
)
def test_activity_from_the_tool_verb(tool: str, activity: int) -> None:
    assert activity_of(tool) == activity


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=traces())
def test_any_analysed_trace_exports_valid_ocsf(
    doc: dict[str, Any], ocsf_validators: dict[int, Any]
) -> None:
    run = decode_run(msgspec.json.encode(doc))
    result = Engine(Policy()).analyze(run)
    for record in records_from_run(run, result, fallback_ms=1):
        assert errors(ocsf_validators, ocsf_event(record)) == []
