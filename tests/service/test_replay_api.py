"""``GET /v1/apps/{app_id}/runs/{run_id}/replay`` and ``GET /v1/apps/{app_id}/policies``:
a stored run replayed under a stored bundle the app may use, scoped by tenant and app."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentrail.engine.engine import Engine
from sentrail.policy.compiled import Policy
from sentrail.policy.load import load_policy
from sentrail.runtime.ingest import Ingestor
from sentrail.runtime.store_writer import StoreWriter
from sentrail.store.records import records
from tests.service.conftest import EXAMPLES, Api, backend, example, make_api  # noqa: F401
from tests.store.conftest import Backend

POLICY = EXAMPLES / "policy.yaml"
CHANGED = Path(__file__).resolve().parents[1] / "forensics" / "replay-policy.yaml"


def _sha(path: Path) -> str:
    sha = Policy(load_policy(path)).sha256
    assert sha is not None
    return sha


@pytest.fixture
def world(backend: Backend) -> Iterator[tuple[Api, str, str]]:  # noqa: F811
    """Runs of tenant-a/app1 judged with the example bundle (kept by hash, cited by the
    runs); the service now judges with the changed bundle (its current one)."""
    current = Engine(Policy(load_policy(CHANGED)))
    for api in make_api(backend, engine=current):
        old = Policy(load_policy(POLICY))
        assert old.sha256 is not None
        with records(api.store, write=True) as rtx:
            rtx.put_policy(old.sha256, POLICY.read_bytes(), 1_700_000_000.0)
            stray = POLICY.read_bytes() + b"\n# never used by app1\n"
            rtx.put_policy(_sha_of(stray), stray, 1_700_000_000.0)
        ingestor = Ingestor(
            api.store, Engine(old), writer=StoreWriter(api.store, policy_sha256=old.sha256)
        )
        restart = ingestor.ingest_trace("tenant-a", "app1", example("triage-restart.json"))
        # tenant-b's copy of the run was judged with the built-in policy: it cites none
        Ingestor(api.store, Engine()).ingest_trace(
            "tenant-b", "app1", example("triage-restart.json")
        )
        yield api, restart.run_id, _sha_of(stray)


def _sha_of(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def test_a_run_replays_under_its_own_bundle_and_under_the_current_one(
    world: tuple[Api, str, str],
) -> None:
    api, run_id, _ = world
    url = f"/v1/apps/app1/runs/{run_id}/replay"
    own = api.client.get(url, headers=api.auth("a"))
    assert own.status_code == 200, own.text
    doc = own.json()
    assert doc["format"] == "sentrail.replay-diff/1"
    assert doc["changed"] is False and doc["steps"] == []
    assert doc["before"]["policy_sha256"] == doc["after"]["policy_sha256"] == _sha(POLICY)

    listed = api.client.get("/v1/apps/app1/policies", headers=api.auth("a")).json()["items"]
    assert [(b["sha256"], b["current"], b["runs"]) for b in listed] == [
        (_sha(CHANGED), True, 0),
        (_sha(POLICY), False, 1),
    ]
    assert listed[1]["stored_at"] == "2023-11-14T22:13:20Z"

    new = api.client.get(url, params={"policy": _sha(CHANGED)}, headers=api.auth("a_read"))
    assert new.status_code == 200, new.text
    diff = new.json()
    assert diff["changed"] is True and diff["after"]["policy_sha256"] == _sha(CHANGED)
    restarts = [s for s in diff["steps"] if s["tool"] == "service.restart"]
    assert restarts and restarts[0]["decision_after"] == "deny"
    assert restarts[0]["decision_before"] != "deny"
    assert "policy.rule.no-prod-restart" in {f["rule"] for f in restarts[0]["added"]}


def test_a_bundle_the_app_never_used_is_not_found_and_a_bad_hash_is_located(
    world: tuple[Api, str, str],
) -> None:
    api, run_id, stray = world
    url = f"/v1/apps/app1/runs/{run_id}/replay"
    r = api.client.get(url, params={"policy": stray}, headers=api.auth("a"))
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["location"] == "query.policy"
    bad = api.client.get(url, params={"policy": "ZZ" * 32}, headers=api.auth("a"))
    assert bad.status_code == 400
    assert "policy" in bad.json()["errors"][0]["location"]
    missing = api.client.get("/v1/apps/app1/runs/no-such-run/replay", headers=api.auth("a"))
    assert missing.status_code == 404


def test_another_app_or_tenant_cannot_replay_the_run(world: tuple[Api, str, str]) -> None:
    api, run_id, _ = world
    url = f"/v1/apps/app1/runs/{run_id}/replay"
    assert api.client.get(url, headers=api.auth("a_app2")).status_code == 403
    other_app = f"/v1/apps/app2/runs/{run_id}/replay"
    assert api.client.get(other_app, headers=api.auth("a_all")).status_code == 404
    # tenant-b holds a run with the same id: its own, judged with the built-in policy;
    # the bundle tenant-a's runs cite is not one tenant-b may name
    b = api.client.get(url, headers=api.auth("b"))
    assert b.status_code == 200 and b.json()["tenant_id"] == "tenant-b"
    assert b.json()["before"].get("policy_sha256") is None
    b_old = api.client.get(url, params={"policy": _sha(POLICY)}, headers=api.auth("b"))
    assert b_old.status_code == 404
    listed = api.client.get("/v1/apps/app1/policies", headers=api.auth("b")).json()["items"]
    assert [x["sha256"] for x in listed] == [_sha(CHANGED)]
    assert api.client.get("/v1/apps/app2/policies", headers=api.auth("a_all")).json()["items"] == [
        {
            "sha256": _sha(CHANGED),
            "current": True,
            "stored_at": None,
            "runs": 0,
            "first_run_at": None,
            "last_run_at": None,
        }
    ]
