"""HTTP ingest hands what it judged to the same pipeline as the worker: stored, then
alerted (issue 11: ``POST /v1/apps/{app}/events`` analysed completed runs but never
alerted)."""

from __future__ import annotations

import msgspec

from sentrail.alerts.policy import parse_alert_policy
from sentrail.alerts.router import AlertRouter
from sentrail.alerts.sinks import MemorySink
from sentrail.model.decode import decode_run
from sentrail.model.events import events_of
from tests.service.conftest import example, make_api
from tests.store.conftest import Backend


def prod_delete_lines() -> list[bytes]:
    run = decode_run(example("prod-delete.json"))
    return [msgspec.json.encode(e) + b"\n" for e in events_of(run)]


def _router() -> tuple[AlertRouter, MemorySink]:
    sink = MemorySink()
    return AlertRouter(parse_alert_policy(b"version: 1\n"), [sink]), sink


def test_a_run_completed_over_the_events_endpoint_is_alerted_once(backend: Backend) -> None:
    router, sink = _router()
    events = b"".join(prod_delete_lines())
    for api in make_api(backend, alerts=router):
        h = api.auth("a")
        r = api.client.post("/v1/apps/app1/events", content=events, headers=h)
        assert r.status_code == 200, r.text
        assert router.wait_idle(10)
        alerted = len(sink.messages)
        assert alerted, "a completed run's critical finding was not alerted"
        again = api.client.post("/v1/apps/app1/events", content=events, headers=h)
        assert again.status_code == 200
        assert router.wait_idle(10)
        assert len(sink.messages) == alerted  # the same events again: nothing new to say


def test_a_run_whose_events_arrive_over_several_requests_is_alerted_at_its_end(
    backend: Backend,
) -> None:
    router, sink = _router()
    lines = prod_delete_lines()
    for api in make_api(backend, alerts=router):
        h = api.auth("a")
        assert api.client.post("/v1/apps/app1/events", content=b"".join(lines[:-1]), headers=h)
        assert router.wait_idle(10)
        assert not sink.messages  # judged when the run completes
        assert api.client.post("/v1/apps/app1/events", content=lines[-1], headers=h)
        assert router.wait_idle(10)
        assert sink.messages
