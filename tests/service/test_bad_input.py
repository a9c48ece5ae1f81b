"""Hostile input to the service: integers that do not fit, ids the store refuses, events
for redacted runs, times that are not times. Each is a 4xx that names the problem; only
a failure of the store itself is 503 ("retry")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sentrail.cli.app import app as cli
from sentrail.store.base import EventConflict, StoreError
from tests.service.conftest import EXAMPLES, Api, example
from tests.service.test_api import PROBLEM, log_size

TOO_BIG = [2**63, 2**64, 10**30, -(2**63) - 1]


def trace_with(**fields: object) -> bytes:
    doc = json.loads(example("triage-restart.json"))
    doc.update(fields)
    return json.dumps(doc).encode()


def step_line(run_id: str, step_index: int, event_id: str = "") -> bytes:
    event: dict[str, object] = {
        "type": "step",
        "run_id": run_id,
        "step": {"step_index": step_index},
    }
    if event_id:
        event["event_id"] = event_id
    return json.dumps(event).encode()


def assert_problem(r: object, status: int, location: str = "") -> dict[str, object]:
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    assert r.headers["content-type"] == PROBLEM  # type: ignore[attr-defined]
    problem: dict[str, object] = r.json()  # type: ignore[attr-defined]
    assert "retry" not in str(problem["detail"]).lower()
    if location:
        assert any(location in e["location"] for e in problem["errors"]), problem  # type: ignore[attr-defined]
    return problem


@pytest.mark.parametrize("big", TOO_BIG)
def test_a_step_index_that_does_not_fit_64_bits_is_a_located_400(api: Api, big: int) -> None:
    doc = json.loads(example("triage-restart.json"))
    doc["steps"][1]["step_index"] = big
    r = api.client.post(
        "/v1/apps/app1/traces", content=json.dumps(doc).encode(), headers=api.auth("a")
    )
    assert_problem(r, 400, "body: steps[1].step_index")
    started = (EXAMPLES / "events" / "triage-restart.ndjson").read_bytes().split(b"\n")[0]
    body = started + b"\n" + step_line("run-a4f8c312-9e7b", big)
    r = api.client.post("/v1/apps/app1/events", content=body, headers=api.auth("a"))
    assert_problem(r, 400, "line 2: step.step_index")
    assert log_size(api) == 0


def test_a_negative_step_index_fits_and_is_reported_as_telemetry_not_refused(api: Api) -> None:
    doc = json.loads(example("triage-restart.json"))
    doc["steps"][0]["step_index"] = -1
    r = api.client.post(
        "/v1/apps/app1/traces", content=json.dumps(doc).encode(), headers=api.auth("a")
    )
    assert r.status_code == 201, r.text
    doc["run_id"], doc["steps"][0]["step_index"] = "run-2", -(2**63) - 1
    r = api.client.post(
        "/v1/apps/app1/traces", content=json.dumps(doc).encode(), headers=api.auth("a")
    )
    assert_problem(r, 400, "steps[0].step_index")


def test_integer_query_and_body_fields_past_64_bits_are_400s(api: Api) -> None:
    for query in (
        f"leaf_index={2**63}&tree_size={2**64}",
        f"leaf_index=0&tree_size={10**30}",
    ):
        r = api.client.get(f"/v1/log/proof/inclusion?{query}", headers=api.auth("a"))
        assert_problem(r, 400, "query.")
    r = api.client.get(f"/v1/log/proof/consistency?first=0&second={2**63}", headers=api.auth("a"))
    assert_problem(r, 400, "query.second")
    body = {"run_id": "r1", "result": {"status": "ok"}, "step_index": 2**63}
    r = api.client.post("/v1/observe", json=body, headers=api.auth("a"))
    assert_problem(r, 400)


def test_ids_longer_than_the_store_keeps_are_a_400_that_names_the_id(api: Api) -> None:
    long_id = "r" * 1025
    r = api.client.post(
        "/v1/apps/app1/traces", content=trace_with(run_id=long_id), headers=api.auth("a")
    )
    problem = assert_problem(r, 400)
    assert problem["type"] == "https://sentrail.dev/problems/invalid-id"
    assert "run_id" in str(problem["detail"]) and "1024" in str(problem["detail"])
    body = (
        b'{"type":"run_started","run_id":"r1","agent_id":"a","event_id":"' + b"e" * 1025 + b'"}\n'
    )
    r = api.client.post("/v1/apps/app1/events", content=body, headers=api.auth("a"))
    problem = assert_problem(r, 400)
    assert "event_id" in str(problem["detail"])
    assert log_size(api) == 0


def test_an_event_for_a_redacted_run_is_a_409_that_says_so(api: Api) -> None:
    data = (EXAMPLES / "events" / "triage-restart.ndjson").read_bytes()
    r = api.client.post("/v1/apps/app1/events", content=data, headers=api.auth("a"))
    assert r.status_code == 200, r.text
    api.store.redact("tenant-a", "app1", "run-a4f8c312-9e7b", by="dpo", reason="erasure request")
    before = log_size(api)
    late = step_line("run-a4f8c312-9e7b", 99, event_id="late-step")
    r = api.client.post("/v1/apps/app1/events", content=late, headers=api.auth("a"))
    problem = assert_problem(r, 409)
    assert problem["type"] == "https://sentrail.dev/problems/run-redacted"
    assert "redacted" in str(problem["detail"])
    assert log_size(api) == before


def test_an_event_id_conflict_from_the_store_is_a_409(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def conflict(*_: object) -> None:
        raise EventConflict("event id 'e1' was stored with other bytes", "event e1")

    monkeypatch.setattr(api.client.app.state.services.ingestor, "ingest_events", conflict)  # type: ignore[attr-defined]
    r = api.client.post("/v1/apps/app1/events", content=b"{}", headers=api.auth("a"))
    problem = assert_problem(r, 409, "event e1")
    assert problem["type"] == "https://sentrail.dev/problems/event-conflict"


def test_a_real_store_failure_is_still_a_503_with_retry_after(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise StoreError("SQLite: disk I/O error", "/var/lib/sentrail/sentrail.db")

    monkeypatch.setattr(api.client.app.state.services.ingestor, "ingest_trace", broken)  # type: ignore[attr-defined]
    r = api.client.post(
        "/v1/apps/app1/traces", content=example("triage-restart.json"), headers=api.auth("a")
    )
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == PROBLEM and r.headers["retry-after"] == "1"
    assert r.json()["type"] == "https://sentrail.dev/problems/store-unavailable"


@pytest.mark.parametrize(
    "query",
    [
        "since=nan",
        "until=inf",
        "since=-inf",
        "until=NaN",
        "since=1e300",
        "until=-1e300",
        "since=9999999999999",
        "until=0001-01-01T00:00:00+23:59",
        "since=9999-12-31T23:59:59-23:59",
    ],
)
def test_times_that_are_not_finite_or_in_range_are_a_located_400(api: Api, query: str) -> None:
    r = api.client.get(f"/v1/apps/app1/traces?{query}", headers=api.auth("a"))
    name = query.split("=")[0]
    assert_problem(r, 400, f"query.{name}")


def test_ordinary_times_are_still_accepted(api: Api) -> None:
    for query in ("since=0", "until=1764000000.5", "since=2026-11-25T10:00:00Z"):
        r = api.client.get(f"/v1/apps/app1/traces?{query}", headers=api.auth("a"))
        assert r.status_code == 200, (query, r.text)


def test_ingest_of_a_step_index_past_64_bits_exits_2_naming_the_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTRAIL_HOME", str(tmp_path / "home"))
    doc = json.loads(example("triage-restart.json"))
    doc["steps"][3]["step_index"] = 2**63
    traces = tmp_path / "traces"
    traces.mkdir()
    (traces / "big-index.json").write_text(json.dumps(doc))
    (traces / "good.json").write_bytes(example("prod-delete.json"))
    r = CliRunner().invoke(cli, ["ingest", str(traces), "--tenant", "t"])
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert "big-index.json" in r.output and "steps[3].step_index" in r.output
    assert "Traceback" not in r.output
    assert "1 invalid" in r.output  # the good file was still stored


def test_a_repeated_step_index_is_stored_and_reported_not_a_503(api: Api) -> None:
    doc = json.loads(example("triage-restart.json"))
    doc["steps"][1]["step_index"] = doc["steps"][0]["step_index"]
    r = api.client.post(
        "/v1/apps/app1/traces", content=json.dumps(doc).encode(), headers=api.auth("a")
    )
    assert r.status_code == 201, r.text
    assert any(f["category"] == "missing_telemetry" for f in r.json()["findings"])
    body = b"\n".join(
        [
            b'{"type":"run_started","run_id":"rep","agent_id":"a"}',
            step_line("rep", 0, "s1"),
            step_line("rep", 0, "s2"),
            b'{"type":"run_completed","run_id":"rep"}',
        ]
    )
    r = api.client.post("/v1/apps/app1/events", content=body, headers=api.auth("a"))
    assert r.status_code == 200, r.text
    assert r.json()["completed_runs"] == ["rep"]


def test_a_value_the_backend_cannot_hold_is_a_400_never_a_503(api: Api) -> None:
    r = api.client.post(
        "/v1/apps/app1/traces", content=trace_with(agent_id="a\u0000b"), headers=api.auth("a")
    )
    # SQLite holds a NUL in text; PostgreSQL cannot (a data exception): a 400 naming it.
    assert r.status_code in (201, 400), r.text
    if r.status_code == 400:
        problem = assert_problem(r, 400)
        assert problem["type"] == "https://sentrail.dev/problems/unstorable-value"
        assert "NUL" in str(problem["detail"])
