"""A large ingest runs off the event loop and ingest is bounded: health checks and small
requests are answered while one is in progress, and the excess is told to retry.

The engine here waits on a gate inside ``analyze``, so "in progress" is a state the test
holds open, not a duration: no assertion depends on how long anything takes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from sentrail.engine.engine import Engine
from sentrail.engine.fold import RunFolder
from sentrail.model.trace import RunHeader
from tests.service.conftest import Api, example, make_api
from tests.service.test_api import PROBLEM, log_size
from tests.store.conftest import Backend

BOUND = 60.0  # a failure bound (the old code hangs here forever), not a timing assertion


class GatedEngine(Engine):
    """Opening a run's fold tells that the analysis started, then waits until the test
    lets it go on (every producer folds through ``start``)."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.go_on = threading.Event()

    def start(self, header: RunHeader) -> RunFolder:
        self.started.set()
        assert self.go_on.wait(BOUND), "the test never let the analysis go on"
        return super().start(header)


@pytest.fixture
def gated(backend: Backend) -> Iterator[tuple[Api, GatedEngine]]:
    engine = GatedEngine()
    for api in make_api(backend, engine=engine, ingest_workers=1, ingest_queue=0):
        try:
            yield api, engine
        finally:
            engine.go_on.set()


def in_thread(call: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(call()), daemon=True)
    thread.start()
    return thread, out


def start_ingest(api: Api, engine: GatedEngine) -> tuple[threading.Thread, list[Any]]:
    """POST a trace in a thread; return once its analysis has started (and is held)."""
    started = in_thread(
        lambda: api.client.post(
            "/v1/apps/app1/traces", content=example("prod-delete.json"), headers=api.auth("a")
        )
    )
    assert engine.started.wait(BOUND), "the ingest never reached the analysis"
    return started


def test_health_and_reads_are_answered_while_a_large_ingest_is_in_progress(
    gated: tuple[Api, GatedEngine],
) -> None:
    api, engine = gated
    ingest, posted = start_ingest(api, engine)
    health, answered = in_thread(lambda: api.client.get("/healthz"))
    health.join(BOUND)
    assert answered and answered[0].status_code == 200, "/healthz waited for the ingest"
    listing, listed = in_thread(
        lambda: api.client.get("/v1/apps/app1/traces", headers=api.auth("a"))
    )
    listing.join(BOUND)
    assert listed and listed[0].status_code == 200, "a read waited for the ingest"
    assert ingest.is_alive() and not posted  # all of that happened during the ingest
    engine.go_on.set()
    ingest.join(BOUND)
    assert posted and posted[0].status_code == 201, posted[0].text
    assert log_size(api) == 1


def test_ingest_past_its_bound_is_a_503_with_retry_after_and_stores_nothing(
    gated: tuple[Api, GatedEngine],
) -> None:
    api, engine = gated
    ingest, posted = start_ingest(api, engine)
    events = b'{"type":"run_started","run_id":"r2","agent_id":"a"}\n'
    for path, body in (("traces", example("triage-restart.json")), ("events", events)):
        r = api.client.post(f"/v1/apps/app1/{path}", content=body, headers=api.auth("a"))
        assert r.status_code == 503 and r.headers["content-type"] == PROBLEM, r.text
        assert r.headers["retry-after"] == "1"
        assert r.json()["type"].endswith("/ingest-busy")
    engine.go_on.set()
    ingest.join(BOUND)
    assert posted and posted[0].status_code == 201
    assert log_size(api) == 1  # only the admitted one
    r = api.client.post(
        "/v1/apps/app1/traces", content=example("triage-restart.json"), headers=api.auth("a")
    )
    assert r.status_code == 201, r.text  # the place is free again


def test_a_large_legal_body_is_stored_whole(backend: Backend) -> None:
    n = 20_000  # the shape of the 700,000-step body, smaller: the code path is the same
    steps = b",".join(b'{"step_index":%d}' % i for i in range(n))
    body = b'{"run_id":"big","agent_id":"a","steps":[' + steps + b"]}"
    for api in make_api(backend, max_body_bytes=16 << 20):
        r = api.client.post("/v1/apps/app1/traces", content=body, headers=api.auth("a"))
        assert r.status_code == 201, r.text
        listed = api.client.get("/v1/apps/app1/traces", headers=api.auth("a")).json()
        assert listed["items"][0]["steps"] == n
