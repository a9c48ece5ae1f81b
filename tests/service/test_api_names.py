"""One naming convention for the whole API (snake_case, like the trace format), and
``?agent=`` as the glob ``trace watch --agent`` takes."""

from __future__ import annotations

import json
import re
from typing import Any

from sentrail.service import run_pages
from tests.service.conftest import EXAMPLES, Api, example

CAMEL = re.compile(r"[a-z0-9][A-Z]")
# Values that are documents of their own (a stored trace, a finding's body) keep the
# trace format's names, which are snake_case too; they are checked like the rest.


def keys_of(value: Any) -> set[str]:
    if isinstance(value, dict):
        out = set(value)
        for v in value.values():
            out |= keys_of(v)
        return out
    if isinstance(value, list):
        out = set()
        for v in value:
            out |= keys_of(v)
        return out
    return set()


def post_as(api: Api, agent: str, run_id: str) -> dict[str, Any]:
    doc = json.loads(example("triage-restart.json"))
    doc["agent_id"], doc["run_id"] = agent, run_id
    r = api.client.post(
        "/v1/apps/app1/traces", content=json.dumps(doc).encode(), headers=api.auth("a")
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_every_response_field_and_query_parameter_is_snake_case(api: Api) -> None:
    posted = post_as(api, "prod-triage-au-east", "run-1")
    events = (EXAMPLES / "events" / "triage-restart.ndjson").read_bytes()
    bodies = [posted]
    r = api.client.post("/v1/apps/app1/events", content=events, headers=api.auth("a"))
    bodies.append(r.json())
    fid = posted["findings"][0]["id"]
    for path in (
        "/v1/apps/app1/traces",
        f"/v1/apps/app1/traces/{posted['trace_hash']}",
        "/v1/apps/app1/findings",
        "/v1/log/checkpoint",
        "/v1/log/proof/inclusion?leaf_index=0&tree_size=1",
        "/v1/log/proof/consistency?first=1&second=2",
        "/v1/approvals",
        "/v1/containment",
        "/healthz",
    ):
        r = api.client.get(path, headers=api.auth("a"))
        assert r.status_code == 200, (path, r.text)
        bodies.append(r.json())
    r = api.client.patch(
        f"/v1/findings/{fid}", json={"resolved": True, "comment": "ok"}, headers=api.auth("a")
    )
    bodies.append(r.json())
    camel = {k for body in bodies for k in keys_of(body) if CAMEL.search(k)}
    assert camel == set()
    doc = api.client.get("/openapi.json").json()
    params = {
        p["name"]
        for item in doc["paths"].values()
        for op in item.values()
        for p in op.get("parameters", [])
    }
    assert not {p for p in params if CAMEL.search(p)}


def test_agent_takes_a_glob_and_a_plain_value_matches_as_a_prefix(api: Api) -> None:
    for agent, run in (
        ("prod-triage-au-east", "r1"),
        ("prod-triage-eu-west", "r2"),
        ("support-bot", "r3"),
        ("staging-prod-x", "r4"),
    ):
        post_as(api, agent, run)

    def agents(pattern: str) -> set[str]:
        r = api.client.get("/v1/apps/app1/traces", params={"agent": pattern}, headers=api.auth("a"))
        assert r.status_code == 200, r.text
        return {i["agent_id"] for i in r.json()["items"]}

    assert agents("prod-*") == {"prod-triage-au-east", "prod-triage-eu-west"}
    assert agents("prod") == {"prod-triage-au-east", "prod-triage-eu-west"}  # as a prefix
    assert agents("*-au-?ast") == {"prod-triage-au-east"}
    assert agents("*bot") == {"support-bot"}
    assert agents("*prod*") == {
        "prod-triage-au-east",
        "prod-triage-eu-west",
        "staging-prod-x",
    }
    assert agents("[st]*-[b]ot") == {"support-bot"}
    assert agents("PROD-*") == set()  # case-sensitive, as in trace watch
    assert agents("support-bot") == {"support-bot"}


def test_a_glob_pages_through_every_match_once(api: Api, monkeypatch: Any) -> None:
    monkeypatch.setattr(run_pages, "BATCH", 2)  # many store batches per page
    monkeypatch.setattr(run_pages, "SCAN_LIMIT", 4)  # and pages cut short by the bound
    for i in range(9):
        post_as(api, "prod-a" if i % 3 else "other", f"r{i}")
    seen: list[str] = []
    cursor = None
    for _ in range(50):
        params = {"agent": "prod-*", "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = api.client.get("/v1/apps/app1/traces", params=params, headers=api.auth("a"))
        body = page.json()
        assert len(body["items"]) <= 2
        seen += [i["run_id"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(f"r{i}" for i in range(9) if i % 3)
    assert len(seen) == len(set(seen))
