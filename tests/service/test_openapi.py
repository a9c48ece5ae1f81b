"""The OpenAPI document is true, and schemathesis finds the live service keeps to it.

The live test starts a real ``sentrail serve`` on 127.0.0.1 with a temporary SQLite
store and a real API key (every scope, every app of its tenant), and runs schemathesis
against it with a bounded number of examples per operation: coverage (boundary and
negative cases) and fuzzing (bodies included). It asserts no server error (5xx) and no
response that breaks the document (status code, content type, headers, schema)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.conftest import ALL_SCOPES, Api
from tests.service.test_serve_cli import _free_port

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance"
)
MAX_EXAMPLES = 25  # per operation and phase: about a minute on a shared 2-core machine


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield path, method, op


def test_the_document_says_what_the_service_does(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    text = api.client.get("/openapi.json").text
    assert '"422"' not in text and "HTTPValidationError" not in text
    assert doc["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    for path, method, op in operations(doc):
        if path.startswith("/v1/"):
            assert op["security"] == [{"ApiKey": []}], (method, path)
            assert {"401", "403", "429", "503"} <= set(op["responses"]), (method, path)
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")):
                assert list(response["content"]) == ["application/problem+json"]
            if status in ("429", "503") and path != "/healthz":
                assert "Retry-After" in response["headers"]
        if "parameters" in op or "requestBody" in op:
            assert "400" in op["responses"], (method, path)
        if method in ("post", "patch"):
            assert op["requestBody"]["content"], (method, path)
    bodies = {(p, m): op.get("requestBody", {}) for p, m, op in operations(doc)}
    trace = bodies[("/v1/apps/{app_id}/traces", "post")]["content"]
    assert set(trace) == {"application/json", "application/gzip"}
    assert trace["application/json"]["schema"] == {"$ref": "#/components/schemas/Run"}
    events = bodies[("/v1/apps/{app_id}/events", "post")]["content"]
    assert {"application/x-ndjson", "application/gzip"} <= set(events)
    step = doc["components"]["schemas"]["Step"]["properties"]["step_index"]
    assert step["minimum"] == -(2**63) and step["maximum"] == 2**63 - 1
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
    assert doc["paths"]["/healthz"]["get"].get("security") is None


def test_validation_errors_are_400_problems_as_documented(api: Api) -> None:
    r = api.client.get("/v1/apps/app1/traces?limit=0", headers=api.auth("a"))
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"


def test_a_gzip_content_type_is_a_gzip_body(api: Api) -> None:
    import gzip

    from tests.service.conftest import example

    body = gzip.compress(example("triage-restart.json"))
    headers = {**api.auth("a"), "Content-Type": "application/gzip"}
    r = api.client.post("/v1/apps/app1/traces", content=body, headers=headers)
    assert r.status_code == 201, r.text


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real ``sentrail serve`` on loopback and an API key for every app of its tenant."""
    env = {**os.environ, "SENTRAIL_HOME": str(tmp_path / "home")}
    database = f"sqlite:///{tmp_path / 'fuzz.db'}"
    cli = [sys.executable, "-m", "sentrail"]
    create = ["apikey", "create", "--tenant", "fuzz", "--app", "*", "--scopes", ALL_SCOPES]
    made = subprocess.run(
        [*cli, *create, "--database", database],
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    )
    key = made.stdout.decode().split()[0]
    port = _free_port()
    proc = subprocess.Popen(
        [*cli, "serve", "--port", str(port), "--database", database],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            assert proc.poll() is None, "the service exited"
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            subprocess.run(["sleep", "0.2"], check=True)
        else:
            pytest.fail("the service did not come up")
        yield base, key
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_schemathesis_finds_no_server_error_and_no_schema_violation_live(
    live: tuple[str, str], tmp_path: Path
) -> None:
    base, key = live
    report = tmp_path / "junit.xml"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{base}/openapi.json",
            "--header",
            f"Authorization: Bearer {key}",
            "--checks",
            CHECKS,
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "10",
            "--generation-database",
            "none",
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--no-color",
            "--report",
            "junit",
            "--report-junit-path",
            str(report),
        ],
        capture_output=True,
        timeout=600,
        cwd=tmp_path,
    )
    out = run.stdout.decode(errors="replace")
    suite = ET.parse(report).getroot()
    operations_tested = int(suite.get("tests", "0"))
    failures = int(suite.get("failures", "0")) + int(suite.get("errors", "0"))
    cases = re.search(r"(\d+) generated, (\d+) passed", out)
    print(f"schemathesis: {operations_tested} operations, {out.strip().splitlines()[-1]}")
    print(f"schemathesis: cases {cases.group(0) if cases else '?'}, failures {failures}")
    assert run.returncode == 0 and failures == 0, out[-6000:]
    document = httpx.get(f"{base}/openapi.json", timeout=10).json()
    operations = sum(len(item) for item in document["paths"].values())
    assert operations >= 17
    assert operations_tested == operations, out[-2000:]  # every operation was reached
    assert cases is not None and int(cases.group(1)) >= operations * 10, out[-2000:]
