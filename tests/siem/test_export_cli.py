from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from sentrail.cli.export import export, parse_since
from tests.alerts.stub_server import StubServer
from tests.conftest import EXAMPLES

TRACES = EXAMPLES / "traces"
POLICY = str(EXAMPLES / "policy.yaml")
INJECTED = str(TRACES / "injected-transfer.json")

_app = typer.Typer()
_app.command("export")(export)


@_app.callback()
def _root() -> None:
    """The command mounted as app.py mounts it."""


runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(_app, ["export", *args], env=env)


def lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


@pytest.mark.parametrize("fmt", ["ocsf", "splunk-hec", "ecs"])
def test_json_formats_print_one_document_per_line(fmt: str) -> None:
    r = run(INJECTED, "--format", fmt, "--policy", POLICY)
    assert r.exit_code == 0, r.output
    docs = [json.loads(line) for line in lines(r.stdout)]
    assert len(docs) > 3


def test_cef_format() -> None:
    r = run(INJECTED, "-f", "cef", "-p", POLICY)
    assert r.exit_code == 0, r.output
    assert all(line.startswith("CEF:0|Sentrail|sentrail|") for line in lines(r.stdout))


def test_what_selects_findings_or_tool_calls() -> None:
    findings = lines(run(INJECTED, "-f", "ocsf", "-p", POLICY, "--what", "findings").stdout)
    calls = lines(run(INJECTED, "-f", "ocsf", "-p", POLICY, "--what", "tool-calls").stdout)
    both = lines(run(INJECTED, "-f", "ocsf", "-p", POLICY).stdout)
    assert {json.loads(x)["class_uid"] for x in findings} == {2004}
    assert {json.loads(x)["class_uid"] for x in calls} == {6003}
    assert len(findings) + len(calls) == len(both)


def test_since_filters_by_event_time() -> None:
    every = [json.loads(x) for x in lines(run(INJECTED, "-f", "ocsf", "-p", POLICY).stdout)]
    times = sorted({e["time"] for e in every})
    cut = times[len(times) // 2]
    iso = dt.datetime.fromtimestamp(cut / 1000, dt.UTC)
    r = run(INJECTED, "-f", "ocsf", "-p", POLICY, "--since", iso.isoformat())
    kept = [json.loads(x) for x in lines(r.stdout)]
    assert kept and all(e["time"] >= cut for e in kept)
    assert len(kept) == sum(e["time"] >= cut for e in every)
    assert lines(run(INJECTED, "-f", "ocsf", "--since", "1h").stdout) == []  # traces are old


def test_parse_since() -> None:
    assert parse_since("30m", 10_000.0) == (10_000 - 1800) * 1000
    assert parse_since("2d", 200_000.0) == (200_000 - 172_800) * 1000
    assert parse_since("1970-01-01T00:00:05Z", 0) == 5000
    with pytest.raises(ValueError, match="not an ISO 8601 time or a duration"):
        parse_since("last tuesday", 0)


def test_bad_since_is_a_usage_error() -> None:
    r = run(INJECTED, "-f", "ocsf", "--since", "soon")
    assert r.exit_code == 2 and "--since" in r.stderr


def test_directory_with_a_bad_file_exports_the_rest_and_exits_2() -> None:
    r = run(str(TRACES), "-f", "cef", "-p", POLICY)
    assert r.exit_code == 2
    assert "invalid: " in r.stderr and "truncated.json" in r.stderr
    assert len(lines(r.stdout)) > 50


def test_ndjson_event_stream(tmp_path: Path) -> None:
    streams = sorted((EXAMPLES / "events").glob("*.ndjson"))
    assert streams
    r = run(str(streams[0]), "-f", "ocsf", "-p", POLICY)
    assert r.exit_code == 0, r.output
    assert lines(r.stdout)


def test_report_input_and_its_since_refusal(tmp_path: Path) -> None:
    from sentrail.cli.app import app

    report = tmp_path / "report.json"
    made = runner.invoke(app, ["trace", "analyze", str(TRACES), "-p", POLICY, "-o", str(report)])
    assert report.exists(), made.output
    r = run(str(report), "-f", "ecs")
    assert r.exit_code == 0, r.output
    docs = [json.loads(x) for x in lines(r.stdout)]
    assert docs and all(d["event"]["kind"] == "alert" for d in docs)
    refused = run(str(report), "-f", "ecs", "--since", "1d")
    assert refused.exit_code == 2 and "keeps no event times" in refused.stderr


def test_output_file(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    r = run(INJECTED, "-f", "ocsf", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert "Exported" in r.stderr
    assert len(out.read_text().splitlines()) > 3


def test_forward_to_splunk_hec(stub: StubServer) -> None:
    url = stub.url("/services/collector/event")
    r = run(INJECTED, "-f", "splunk-hec", "--hec-url", url, env={"SENTRAIL_HEC_TOKEN": "t0k"})
    assert r.exit_code == 0, r.output
    assert stub.requests and stub.requests[0].headers["authorization"] == "Splunk t0k"
    assert r.stdout == ""


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["-f", "ocsf", "--hec-url", "http://127.0.0.1:9/"], "needs --format splunk-hec"),
        (["-f", "splunk-hec", "--hec-url", "http://127.0.0.1:9/"], "SENTRAIL_HEC_TOKEN is not set"),
        (["-f", "splunk-hec", "--hec-url", "file:///etc/passwd"], "must start with http"),
        (["-f", "ocsf", "-p", "/nonexistent/policy.yaml"], "cannot read policy"),
        (["-f", "xml"], "Invalid value"),
    ],
)
def test_usage_errors(args: list[str], says: str) -> None:
    r = run(INJECTED, *args, env={"SENTRAIL_HEC_TOKEN": ""})
    assert r.exit_code == 2
    assert says in r.output, r.output


def test_missing_path_is_a_usage_error() -> None:
    r = run("/nonexistent/trace.json", "-f", "ocsf")
    assert r.exit_code == 2 and "no such file" in r.stderr
