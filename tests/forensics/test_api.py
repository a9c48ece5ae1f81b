"""The investigation routes: a run's graph and a value's runs, within the key's tenant and
app; the trace detail carries explanations."""

from __future__ import annotations

from tests.service.conftest import Api, api, backend, example  # noqa: F401 (fixtures)

IBAN = "DE44 5001 0517 5407 3249 31"


def test_the_api_graphs_a_run_and_finds_the_runs_that_paid_an_iban(api: Api) -> None:  # noqa: F811
    r = api.client.post(
        "/v1/apps/app1/traces", content=example("injected-transfer.json"), headers=api.auth("a")
    )
    assert r.status_code == 201, r.text
    run_id, trace_hash = r.json()["run_id"], r.json()["trace_hash"]
    api.store.checkpoint("tenant-a")
    g = api.client.get(f"/v1/apps/app1/runs/{run_id}/graph", headers=api.auth("a")).json()
    assert {
        "source": "result:0",
        "target": "step:2",
        "kind": "data_flow",
        "label": "params.to_account",
    } in g["edges"]
    v = api.client.get("/v1/apps/app1/graph", params={"value": IBAN}, headers=api.auth("a")).json()
    assert [n["attrs"]["run_id"] for n in v["nodes"] if n["kind"] == "run"] == [run_id]
    other = api.client.get("/v1/apps/app2/graph", params={"value": IBAN}, headers=api.auth("a_all"))
    assert other.status_code == 200 and not [n for n in other.json()["nodes"] if n["kind"] == "run"]
    assert (
        api.client.get(f"/v1/apps/app2/runs/{run_id}/graph", headers=api.auth("a_all")).status_code
        == 404
    )
    detail = api.client.get(f"/v1/apps/app1/traces/{trace_hash}", headers=api.auth("a")).json()
    assert any("to_account" in e["because"] for e in detail["explanations"])
