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
]


def _seed(api: Api, key: str, trace: bytes) -> dict[str, str]:
    r = api.client.post("/v1/apps/app1/traces", content=trace, headers=api.auth(key))
    assert r.status_code == 201, r.text
    body = r.json()
    api.store.checkpoint("tenant-a" if key == "a" else "tenant-b")
    tenant = "tenant-a" if key == "a" else "tenant-b"
    held = api.client.app.state.services.approvals.request(  # type: ignore[attr-defined]
        tenant, body["run_id"], "agent", "db.delete_table", "0" * 64, "matrix"
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
    if ep.name in ("get trace", "patch finding", "run graph") and (
        tenant != "tenant-a" or app == "app2"
    ):
        return {404}  # tenant A's ids, asked for by another tenant or app: not found
    if ep.name == "approve":
        # Tenant A's approval: the first of A's callers denies it, later ones conflict.
        return {404} if tenant != "tenant-a" else {200, 409}
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
        elif ep.method == "POST" and status < 300:
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
        row = rtx.get_finding("tenant-a", a["finding"])
    assert row is not None and not row.resolved and rtx is not None
    findings = _req(api, "GET", "/v1/apps/app1/findings?limit=500", hb)[1]
    assert {f["run_id"] for f in findings["items"]} == {b["run"]}  # type: ignore[index]
    # Tenant B's log has one leaf: a proof into A's larger tree is out of range.
    size_a = len(api.store.leaf_hashes("tenant-a"))
    status, _ = _req(api, "GET", f"/v1/log/proof/inclusion?leaf_index=0&tree_size={size_a + 1}", hb)
    assert status == 400
