"""Replay over HTTP (docs/service.md, docs/forensics.md): a stored run judged again under a
policy bundle the store keeps, and the bundles an app may replay under.

Policy bundles are kept once, by SHA-256, for every tenant (``sentrail serve --policy``,
``worker --policy``, ``ingest --policy``). An app may replay under the bundles its own runs
cite (they were judged with them) and under the service's current one (every new run of
every tenant is judged with it); any other hash is "not found", whether the store holds it
for someone else or not at all, so a hash says nothing about other tenants. Without a
bundle a run is replayed under its own (what the sentrail version changes), as
``sentrail replay`` does without ``--policy``.

A bundle is compiled once per hash and kept (a few: :data:`CACHED_BUNDLES`); its body
cannot change under its hash.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Annotated

import msgspec
from fastapi import FastAPI, Path, Query
from starlette.responses import Response

from sentrail.engine.engine import Engine
from sentrail.errors import SentrailError
from sentrail.forensics.replay import ReplayDiff
from sentrail.policy.compiled import Policy
from sentrail.policy.load import parse_policy
from sentrail.runtime.replay import Replay, Replayer
from sentrail.service.deps import AppId, Read
from sentrail.service.forensics import RUN_ID
from sentrail.service.http import iso, json_response
from sentrail.service.openapi import json_reply
from sentrail.service.problems import ErrorItem, ProblemError
from sentrail.store.core import LogStore
from sentrail.store.records import records

if TYPE_CHECKING:
    from sentrail.service.app import Services

SHA256 = r"^[0-9a-f]{64}$"
CACHED_BUNDLES = 16


class Bundle(msgspec.Struct, frozen=True):
    """A bundle an app may replay under (``GET /v1/apps/{app_id}/policies``)."""

    sha256: str
    current: bool  # the service judges new runs with it
    stored_at: str | None  # when the store first kept it (RFC 3339; None: not kept)
    runs: int  # runs of the app judged with it
    first_run_at: str | None
    last_run_at: str | None


class BundleList(msgspec.Struct, frozen=True):
    items: list[Bundle]


class StoredBundles:
    """The bundles one app may replay under, and their engines (see the module docstring).
    ``current`` is the service's engine: its policy and baselines."""

    def __init__(self, store: LogStore, current: Engine) -> None:
        self.store = store
        self.current = current
        self._compiled: OrderedDict[str, Policy] = OrderedDict()
        self._lock = threading.Lock()

    def listing(self, tenant: str, app: str) -> list[Bundle]:
        """The current bundle first, then those the app's runs cite, latest used first."""
        cur = self.current.policy.sha256
        with records(self.store) as rtx:
            used = rtx.policies_used(tenant, app)
            cur_at = rtx.policy_stored_at(cur) if cur is not None else None
        items = [
            Bundle(
                u.sha256,
                u.sha256 == cur,
                iso(u.stored_at),
                u.runs,
                iso(u.first_run_at),
                iso(u.last_run_at),
            )
            for u in used
        ]
        if cur is not None and not any(b.current for b in items):
            items.insert(0, Bundle(cur, True, iso(cur_at), 0, None, None))
        items.sort(key=lambda b: not b.current)
        return items

    def engine(self, tenant: str, app: str, sha256: str) -> Engine:
        """The engine of a bundle this app may use, or a 404 naming ``query.policy``."""
        if sha256 == self.current.policy.sha256:
            return self.current
        with self._lock:
            policy = self._compiled.get(sha256)
            if policy is not None:
                self._compiled.move_to_end(sha256)
        if policy is None:
            with records(self.store) as rtx:
                cited = rtx.app_cites_policy(tenant, app, sha256)
                body = rtx.get_policy(sha256) if cited else None
            if body is None or hashlib.sha256(body).hexdigest() != sha256:
                raise ProblemError(
                    404,
                    "not-found",
                    "no stored policy bundle with this hash for this app",
                    [ErrorItem("query.policy", "not a bundle this app's runs cite or the current")],
                )
            try:
                policy = Policy(parse_policy(body, f"stored policy {sha256[:12]}"))
            except SentrailError as exc:
                raise ProblemError(
                    400,
                    "invalid-policy",
                    f"the stored bundle no longer loads: {exc}",
                    [ErrorItem("query.policy", str(exc))],
                ) from None
        with self._lock:
            self._compiled[sha256] = policy
            while len(self._compiled) > CACHED_BUNDLES:
                self._compiled.popitem(last=False)
        return Engine(policy, self.current.baselines, today=self.current.today)


def replay_run(svc: Services, tenant: str, app: str, run_id: str, policy: str | None) -> Replay:
    """Replay ``tenant``'s run of ``app`` under the stored bundle ``policy`` (None: the
    run's own): 404 for no such run (or bundle), 410 when its payloads were erased."""
    bundles = svc.bundles
    after = bundles.engine(tenant, app, policy) if policy is not None else None
    with records(svc.store) as rtx:
        row = rtx.get_run(tenant, app, run_id)
    events = svc.store.run_events(tenant, app, run_id)
    if row is None and not events:
        raise ProblemError(404, "not-found", "no run with this id in this app")
    if svc.store.is_erased(tenant, app, run_id):
        raise ProblemError(410, "erased", "this run's payloads were erased (redacted)")
    replayer = Replayer.under(svc.store, bundles.current, after)
    stored = svc.store.get_result(tenant, app, run_id)
    try:
        return replayer.replay_events(tenant, app, run_id, events, row, stored)
    except SentrailError as exc:  # no readable start: nothing to replay
        raise ProblemError(409, "not-replayable", str(exc)) from None


def add_replay_routes(app: FastAPI, svc: Services) -> None:
    @app.get(
        "/v1/apps/{app_id}/runs/{run_id}/replay",
        tags=["forensics"],
        responses=json_reply(ReplayDiff, "The replay diff (sentrail.replay-diff/1)"),
    )
    def get_replay(
        app_id: AppId,
        run_id: Annotated[str, Path(pattern=RUN_ID)],
        who: Read,
        policy: Annotated[
            str | None,
            Query(
                pattern=SHA256,
                description="SHA-256 of a stored bundle (GET /v1/apps/{app_id}/policies); "
                "absent: the bundle the run was judged with",
            ),
        ] = None,
    ) -> Response:
        """The run replayed under a stored policy bundle: ``replay-diff.json``."""
        done = replay_run(svc, who.tenant_id, app_id, run_id, policy)
        return json_response(done.diff)

    @app.get(
        "/v1/apps/{app_id}/policies",
        tags=["forensics"],
        responses=json_reply(BundleList, "The bundles this app may replay under"),
    )
    def get_policies(app_id: AppId, who: Read) -> Response:
        """The stored policy bundles this app may replay under: the service's current
        bundle and those its runs were judged with."""
        return json_response(BundleList(svc.bundles.listing(who.tenant_id, app_id)))
