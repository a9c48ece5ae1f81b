"""The authorization matrix: every endpoint x scope x tenant x app binding.

Tenant A and tenant B each hold one run in their app ``app1``. Every endpoint is called
with every kind of key; the expected status is computed from the rules (401 without a
valid key, 403 without the scope or for another app, otherwise success), and a key of
tenant B must never see or change anything of tenant A: A's ids are 404 for B, B's
listings hold only B's runs and findings, and A's log does not move when B writes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from sentrail.service.auth import create_key
from sentrail.store.records import records
from tests.service.conftest import ALL_SCOPES, CHEAP, Api, example, make_api
from tests.store.conftest import Backend

TRACE_A = example("prod-delete.json")
TRACE_B = example("exfil-base64.json")


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    scope: str | None
    app_bound: bool  # under /v1/apps/{app_id}
    call: Callable[[Api, dict[str, str], dict[str, str]], tuple[int, object]]


@dataclass
class World:
    api: Api
    a: dict[str, str]  # ids of tenant A's objects
    b: dict[str, str]


def _req(
    api: Api, method: str, url: str, headers: dict[str, str], **kw: object
) -> tuple[int, object]:
    r = api.client.request(method, url, headers=headers, **kw)  # type: ignore[arg-type]
    ctype = r.headers.get("content-type", "")
    body: object = r.json() if "json" in ctype else r.text
    if r.status_code >= 400:
        assert ctype == "application/problem+json", (url, r.status_code, ctype)
    return r.status_code, body


ENDPOINTS = [
    Endpoint(
        "post trace",
        "POST",
        "ingest",
        True,
        lambda api, h, ids: _req(
            api, "POST", "/v1/apps/app1/traces", h, content=example("triage-restart.json")
        ),
    ),
    Endpoint(
        "post events",
        "POST",
        "ingest",
        True,
        lambda api, h, ids: _req(
            api,
            "POST",
            "/v1/apps/app1/events",
            h,
            content=b'{"type":"run_started","run_id":"authz-run","agent_id":"x"}\n',
        ),
    ),
    Endpoint(
        "list traces",
        "GET",
        "read",
        True,
        lambda api, h, ids: _req(api, "GET", "/v1/apps/app1/traces", h),
    ),
    Endpoint(
        "get trace",
        "GET",
        "read",
        True,
        lambda api, h, ids: _req(api, "GET", f"/v1/apps/app1/traces/{ids['hash']}", h),
    ),
    Endpoint(
        "list findings",
        "GET",
        "read",
        True,
        lambda api, h, ids: _req(api, "GET", "/v1/apps/app1/findings", h),
    ),
    Endpoint(
        "patch finding",
        "PATCH",
        "triage",
        False,
        lambda api, h, ids: _req(
            api,
            "PATCH",
            f"/v1/findings/{ids['finding']}",
            h,
            json={"resolved": True, "comment": "authz matrix"},
        ),
    ),
    Endpoint(
        "checkpoint",
        "GET",
        "read",
        False,
        lambda api, h, ids: _req(api, "GET", "/v1/log/checkpoint", h),
    ),
    Endpoint(
        "inclusion",
        "GET",
        "read",
        False,
        lambda api, h, ids: _req(api, "GET", "/v1/log/proof/inclusion?leaf_index=0&tree_size=1", h),
    ),
    Endpoint(
        "consistency",
        "GET",
        "read",
        False,
        lambda api, h, ids: _req(api, "GET", "/v1/log/proof/consistency?first=0&second=1", h),
    ),
    Endpoint(
        "metrics", "GET", "metrics", False, lambda api, h, ids: _req(api, "GET", "/metrics", h)
    ),
    Endpoint("healthz", "GET", None, False, lambda api, h, ids: _req(api, "GET", "/healthz", h)),
]


ENDPOINTS += [
    Endpoint(
        "decide",
        "POST",
        "decide",
        False,
        lambda api, h, ids: _req(
            api, "POST", "/v1/decide", h, json={"tool": "db.query", "agent_id": "x", "run_id": "r"}
        ),
    ),
    Endpoint(
        "observe",
        "POST",
        "decide",
        False,
        lambda api, h, ids: _req(
            api, "POST", "/v1/observe", h, json={"run_id": "r", "result": {"status": "ok"}}
        ),
    ),
    Endpoint(
        "list approvals",
        "GET",
        "approve",
        False,
        lambda api, h, ids: _req(api, "GET", "/v1/approvals", h),
    ),
    Endpoint(
        "approve",
        "POST",
        "approve",
        False,
        lambda api, h, ids: _req(
            api, "POST", f"/v1/approvals/{ids['approval']}/deny", h, json={"reason": "matrix"}
        ),
    ),
    Endpoint(
        "contain",
        "POST",
        "contain",
        False,
        lambda api, h, ids: _req(
            api,
            "POST",
            "/v1/containment",
            h,
            json={"action": "freeze_run", "run_id": "matrix-run", "reason": "matrix"},
        ),
    ),
    Endpoint(
        "containment log",
        "GET",
        "read",
        False,
        lambda api, h, ids: _req(api, "GET", "/v1/containment", h),
    ),
]

ENDPOINTS += [
    Endpoint(
        "run graph",
        "GET",
        "read",
        True,
        lambda api, h, ids: _req(api, "GET", f"/v1/apps/app1/runs/{ids['run']}/graph", h),
    ),
    Endpoint(
        "value graph",
        "GET",
        "read",
        True,
        lambda api, h, ids: _req(
            api, "GET", "/v1/apps/app1/graph?value=orders-prod-primary.corp.example.com", h
        ),
    ),
    Endpoint(
        "run replay",
        "GET",
        "read",
        True,
        lambda api, h, ids: _req(api, "GET", f"/v1/apps/app1/runs/{ids['run']}/replay", h),
    ),
    Endpoint(
        "policies",
        "GET",
        "read",
        True,
        lambda api, h, ids: _req(api, "GET", "/v1/apps/app1/policies", h),
    ),
]


def _seed(api: Api, key: str, trace: bytes) -> dict[str, str]:
    r = api.client.post("/v1/apps/app1/traces", content=trace, headers=api.auth(key))
    assert r.status_code == 201, r.text
    body = r.json()
    api.store.checkpoint("tenant-a" if key == "a" else "tenant-b")
    tenant = "tenant-a" if key == "a" else "tenant-b"
    held = api.client.app.state.services.approvals.request(  # type: ignore[attr-defined]
        tenant, body["run_id"], "agent", "db.delete_table", "0" * 64, "matrix", app="app1"
    )
    return {
        "hash": body["trace_hash"],
        "finding": body["findings"][0]["id"],
        "run": body["run_id"],
        "approval": held.approval_id,
    }


@pytest.fixture
def world(backend: Backend) -> Iterator[World]:
    for api in make_api(backend):
        revoked, row = create_key(api.store, "tenant-a", "app1", ALL_SCOPES, hasher=CHEAP)
        with records(api.store, write=True) as rtx:
            rtx.revoke_key(row.key_id, time.time())
        api.keys["revoked"] = revoked
        api.keys["garbage"] = "sk_0123456789abcdef_" + "A" * 43
        yield World(api, _seed(api, "a", TRACE_A), _seed(api, "b", TRACE_B))


# Each caller: (key name or None, tenant it belongs to, its scopes, the app it may use).
CALLERS: list[tuple[str | None, str | None, set[str], str | None]] = [
    (None, None, set(), None),
    ("garbage", None, set(), None),
    ("revoked", None, set(), None),
    ("a", "tenant-a", set(ALL_SCOPES.split(",")), "app1"),
    ("a_all", "tenant-a", set(ALL_SCOPES.split(",")), "*"),
    ("a_app2", "tenant-a", set(ALL_SCOPES.split(",")), "app2"),
    ("a_ingest", "tenant-a", {"ingest"}, "app1"),
    ("a_read", "tenant-a", {"read"}, "app1"),
    ("a_triage", "tenant-a", {"triage"}, "app1"),
    ("a_metrics", "tenant-a", {"metrics"}, "app1"),
    ("b", "tenant-b", set(ALL_SCOPES.split(",")), "app1"),
]


def _expected(ep: Endpoint, tenant: str | None, scopes: set[str], app: str | None) -> set[int]:
    if ep.scope is None:
        return {200}
    if tenant is None:
        return {401}
    if ep.scope not in scopes:
        return {403}
    if ep.app_bound and app not in ("app1", "*"):
        return {403}
    if ep.name in ("get trace", "patch finding", "run graph", "run replay") and (
        tenant != "tenant-a" or app == "app2"
    ):
        return {404}  # tenant A's ids, asked for by another tenant or app: not found
    if ep.name == "approve":
        # Tenant A's approval of app1: the first of A's app1 callers denies it, later ones
        # conflict; another tenant or another app does not find it.
        return {404} if tenant != "tenant-a" or app == "app2" else {200, 409}
    if ep.name == "post trace":
        return {200, 201}
    return {200}


@pytest.mark.parametrize("ep", ENDPOINTS, ids=lambda e: e.name)
def test_every_endpoint_for_every_caller(world: World, ep: Endpoint) -> None:
    api = world.api
    size_a = len(api.store.leaf_hashes("tenant-a"))
    for key, tenant, scopes, app in CALLERS:
        headers = api.auth(key) if key else {}
        status, body = ep.call(api, headers, world.a)
        want = _expected(ep, tenant, scopes, app)
        assert status in want, (ep.name, key, status, body)
        if status == 401:
            r = api.client.get("/v1/log/checkpoint", headers=headers)
            assert r.headers.get("www-authenticate", "").startswith("Bearer")
        if tenant == "tenant-b":
            if status < 300:  # a problem only echoes the path B asked for
                _b_sees_only_b(world, ep, body)
            assert len(api.store.leaf_hashes("tenant-a")) == size_a  # B never writes into A
        elif ep.method in ("POST", "PATCH") and status < 300:  # a triage is a log event
            size_a = len(api.store.leaf_hashes("tenant-a"))


def _b_sees_only_b(world: World, ep: Endpoint, body: object) -> None:
    text = json.dumps(body)
    for secret in world.a.values():
        assert secret not in text, (ep.name, "tenant B saw tenant A's", secret)
    if ep.name == "list traces":
        assert body["items"] and {i["run_id"] for i in body["items"]} <= {  # type: ignore[index]
            world.b["run"],
            "run-a4f8c312-9e7b",
            "authz-run",
        }
    if ep.name == "value graph":  # A's value, asked for by B: none of A's runs
        assert not [n for n in body["nodes"] if n["kind"] == "run"]  # type: ignore[index]
    if ep.name == "checkpoint":
        assert body["tree_size"] == len(world.api.store.leaf_hashes("tenant-b"))  # type: ignore[index]


def test_tenant_b_cannot_reach_tenant_a_by_any_id(world: World) -> None:
    api, a, b = world.api, world.a, world.b
    hb = api.auth("b")
    assert _req(api, "GET", f"/v1/apps/app1/traces/{a['hash']}", hb)[0] == 404
    assert _req(api, "GET", f"/v1/apps/app1/traces/{b['hash']}", hb)[0] == 200
    assert (
        _req(
            api,
            "PATCH",
            f"/v1/findings/{a['finding']}",
            hb,
            json={"resolved": True, "comment": "x"},
        )[0]
        == 404
    )
    with records(api.store) as rtx:
        row = rtx.get_finding("tenant-a", "app1", a["finding"])
    assert row is not None and not row.resolved and rtx is not None
    findings = _req(api, "GET", "/v1/apps/app1/findings?limit=500", hb)[1]
    assert {f["run_id"] for f in findings["items"]} == {b["run"]}  # type: ignore[index]
    # Tenant B's log has one leaf: a proof into A's larger tree is out of range.
    size_a = len(api.store.leaf_hashes("tenant-a"))
    status, _ = _req(api, "GET", f"/v1/log/proof/inclusion?leaf_index=0&tree_size={size_a + 1}", hb)
    assert status == 400


# -- one tenant, two apps: app1 ("pay") is attacked by app2 ("web") -------------------------
# Both keys are tenant A's, each bound to its own app, with every scope. Every attack of
# issue 10 item 1 and 3 must fail to read, hide or alter app1's data.
PAY, WEB = "a", "a_app2"


def _pay_run(world: World) -> tuple[str, str, dict[str, object]]:
    """app1's run id, trace hash, and its detail as app1 sees it."""
    r = world.api.client.get(f"/v1/apps/app1/traces/{world.a['hash']}", headers=world.api.auth(PAY))
    assert r.status_code == 200, r.text
    return world.a["run"], world.a["hash"], r.json()


def _pay_sees_its_run_unchanged(world: World, before: dict[str, object]) -> None:
    api, a = world.api, world.a
    after = api.client.get(f"/v1/apps/app1/traces/{a['hash']}", headers=api.auth(PAY)).json()
    for field in ("run_id", "verdict", "risk_score", "status", "events", "findings", "trace"):
        assert after[field] == before[field], field
    listed = api.client.get("/v1/apps/app1/traces?limit=500", headers=api.auth(PAY)).json()
    assert a["run"] in {i["run_id"] for i in listed["items"]}


def test_web_cannot_complete_or_read_pays_run_with_a_run_completed(world: World) -> None:
    api = world.api
    run_id, trace_hash, before = _pay_run(world)
    line = json.dumps({"type": "run_completed", "run_id": run_id, "status": "completed"})
    r = api.client.post("/v1/apps/app2/events", content=line + "\n", headers=api.auth(WEB))
    assert r.status_code == 200, r.text
    assert _req(api, "GET", f"/v1/apps/app2/traces/{trace_hash}", api.auth(WEB))[0] == 404
    web_runs = api.client.get("/v1/apps/app2/traces?limit=500", headers=api.auth(WEB)).json()
    assert all(i["trace_hash"] != trace_hash for i in web_runs["items"])
    assert trace_hash not in json.dumps(web_runs)
    _pay_sees_its_run_unchanged(world, before)
    # The event went to web's own (run id, app) chain, not into pay's.
    pay_events = api.store.run_events("tenant-a", "app1", run_id)
    assert [e.kind for e in pay_events] == ["trace"]
    assert [e.kind for e in api.store.run_events("tenant-a", "app2", run_id)] == ["run_completed"]


def test_a_whole_trace_with_pays_run_id_does_not_hide_pays_run(world: World) -> None:
    api = world.api
    run_id, _, before = _pay_run(world)
    assert before["verdict"] == "unauthorized"
    benign = json.loads(TRACE_A)
    benign["steps"] = benign["steps"][:1]  # same run id, another (harmless) run
    for body in (TRACE_A, json.dumps(benign).encode()):
        r = api.client.post("/v1/apps/app2/traces", content=body, headers=api.auth(WEB))
        assert r.status_code == 201, r.text  # web's own run, not a duplicate of pay's
        assert r.json()["run_id"] == run_id
    _pay_sees_its_run_unchanged(world, before)
    findings = api.client.get("/v1/apps/app1/findings?limit=500", headers=api.auth(PAY)).json()
    assert world.a["finding"] in {f["id"] for f in findings["items"]}


def test_web_cannot_pre_claim_an_event_id_of_pay(world: World) -> None:
    api = world.api
    claimed = {"type": "run_started", "run_id": "web-run", "agent_id": "w", "event_id": "evt-1"}
    r = api.client.post(
        "/v1/apps/app2/events", content=json.dumps(claimed) + "\n", headers=api.auth(WEB)
    )
    assert r.json()["acknowledged"][0]["duplicate"] is False
    real = {"type": "run_started", "run_id": "pay-run", "agent_id": "p", "event_id": "evt-1"}
    r = api.client.post(
        "/v1/apps/app1/events", content=json.dumps(real) + "\n", headers=api.auth(PAY)
    )
    assert r.status_code == 200, r.text
    assert r.json()["acknowledged"][0]["duplicate"] is False  # stored, not swallowed
    (stored,) = api.store.run_events("tenant-a", "app1", "pay-run")
    assert stored.event_id == "evt-1" and json.loads(stored.payload or b"")["agent_id"] == "p"
    listed = api.client.get("/v1/apps/app1/traces?status=running", headers=api.auth(PAY)).json()
    assert "pay-run" in {i["run_id"] for i in listed["items"]}
    # The same bytes again are a duplicate; other bytes under the id are a conflict (409).
    again = api.client.post(
        "/v1/apps/app1/events", content=json.dumps(real) + "\n", headers=api.auth(PAY)
    )
    assert again.json()["acknowledged"][0]["duplicate"] is True
    other = {**real, "agent_id": "someone-else"}
    size = len(api.store.leaf_hashes("tenant-a"))
    r = api.client.post(
        "/v1/apps/app1/events", content=json.dumps(other) + "\n", headers=api.auth(PAY)
    )
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    assert "evt-1" in r.json()["detail"] and "different content" in r.json()["detail"]
    assert len(api.store.leaf_hashes("tenant-a")) == size  # nothing stored


def test_web_cannot_read_or_resolve_pays_finding(world: World) -> None:
    api, fid = world.api, world.a["finding"]
    patch = {"resolved": True, "comment": "web says fine"}
    size = len(api.store.leaf_hashes("tenant-a"))
    assert _req(api, "PATCH", f"/v1/findings/{fid}", api.auth(WEB), json=patch)[0] == 404
    assert _req(api, "PATCH", f"/v1/apps/app1/findings/{fid}", api.auth(WEB), json=patch)[0] == 403
    assert _req(api, "GET", "/v1/apps/app1/findings", api.auth(WEB))[0] == 403
    web = _req(api, "GET", "/v1/apps/app2/findings?limit=500", api.auth(WEB))[1]
    assert fid not in json.dumps(web)
    with records(api.store) as rtx:
        row = rtx.get_finding("tenant-a", "app1", fid)
    assert row is not None and not row.resolved
    assert len(api.store.leaf_hashes("tenant-a")) == size  # no triage event either
    # A key for every app names the app when two apps hold the same finding id.
    api.client.post("/v1/apps/app2/traces", content=TRACE_A, headers=api.auth(WEB))
    status, body = _req(api, "PATCH", f"/v1/findings/{fid}", api.auth("a_all"), json=patch)
    assert status == 409 and "?app=" in body["detail"]  # type: ignore[index]
    status, _ = _req(api, "PATCH", f"/v1/findings/{fid}?app=app2", api.auth("a_all"), json=patch)
    assert status == 200
    with records(api.store) as rtx:
        pay_row = rtx.get_finding("tenant-a", "app1", fid)
        web_row = rtx.get_finding("tenant-a", "app2", fid)
    assert pay_row is not None and not pay_row.resolved
    assert web_row is not None and web_row.resolved


def test_containment_and_approvals_are_scoped_by_app(world: World) -> None:
    api = world.api
    freeze = {"action": "freeze_run", "run_id": world.a["run"], "reason": "pay incident"}
    assert _req(api, "POST", "/v1/containment", api.auth(PAY), json=freeze)[0] == 200
    quarantine = {"action": "quarantine", "agent": "shared-agent", "reason": "fleet-wide"}
    # A tenant-wide action binds every app: a key bound to one app may not take it.
    for action in (
        quarantine,
        {"action": "disable_tool", "tool": "*", "agent": "*", "reason": "stop them all"},
        {"action": "revoke_grant", "agent": "*", "permission": "db:*", "reason": "x"},
        {"action": "enable_tool", "tool": "*", "reason": "x"},
    ):
        status, body = _req(api, "POST", "/v1/containment", api.auth(WEB), json=action)
        assert status == 403 and "every app" in body["detail"], body  # type: ignore[index]
    assert _req(api, "POST", "/v1/containment", api.auth("a_all"), json=quarantine)[0] == 200
    pay_view = _req(api, "GET", "/v1/containment", api.auth(PAY))[1]
    web_view = _req(api, "GET", "/v1/containment", api.auth(WEB))[1]
    assert {i["kind"] for i in pay_view["items"]} >= {"freeze_run", "quarantine"}  # type: ignore[index]
    assert {i["kind"] for i in web_view["items"]} == {"quarantine"}  # type: ignore[index]
    assert "pay incident" not in json.dumps(web_view)
    key_ids = {k.split("_")[1] for k in api.keys.values() if k.startswith("sk_")}
    for view in (pay_view, web_view):
        assert not any(kid in json.dumps(view) for kid in key_ids)  # pseudonyms only
    # app1's pending approval: listed for app1, not for app2, not decidable by app2.
    approvals = _req(api, "GET", "/v1/approvals", api.auth(PAY))[1]
    assert world.a["approval"] in json.dumps(approvals)
    assert world.a["approval"] not in json.dumps(
        _req(api, "GET", "/v1/approvals", api.auth(WEB))[1]
    )
    deny = f"/v1/approvals/{world.a['approval']}/deny"
    assert _req(api, "POST", deny, api.auth(WEB), json={"reason": "web"})[0] == 404
    assert _req(api, "POST", deny, api.auth(PAY), json={"reason": "pay"})[0] == 200


VALUE = "orders-prod-primary.corp.example.com"  # a host pay's run (TRACE_A) connects to


def _value_runs(world: World, app: str, key: str) -> list[dict[str, object]]:
    status, body = _req(
        world.api, "GET", f"/v1/apps/{app}/graph?value={VALUE}", world.api.auth(key)
    )
    assert status == 200, body
    return [n["attrs"] for n in body["nodes"] if n["kind"] == "run"]  # type: ignore[index]


def test_a_value_query_bound_to_one_app_never_shows_another_apps_runs(world: World) -> None:
    api = world.api
    assert {r["app_id"] for r in _value_runs(world, "app1", PAY)} == {"app1"}
    assert _value_runs(world, "app2", WEB) == []  # pay's run used it; web sees nothing
    assert world.a["run"] not in json.dumps(_value_runs(world, "app2", "a_all"))
    assert _req(api, "GET", f"/v1/apps/app1/graph?value={VALUE}", api.auth(WEB))[0] == 403
    # web's own run under pay's run id uses the value too: two runs, each in its own app.
    r = api.client.post("/v1/apps/app2/traces", content=TRACE_A, headers=api.auth(WEB))
    assert r.status_code == 201, r.text
    for app, key in (("app1", PAY), ("app2", WEB), ("app2", "a_all")):
        runs = _value_runs(world, app, key)
        assert [(x["app_id"], x["run_id"]) for x in runs] == [(app, world.a["run"])], (app, key)
    # Redacting web's run drops web's index rows only.
    api.store.redact("tenant-a", "app2", world.a["run"], by="dpo", reason="web's erasure")
    assert _value_runs(world, "app2", WEB) == []
    assert [x["app_id"] for x in _value_runs(world, "app1", PAY)] == ["app1"]
