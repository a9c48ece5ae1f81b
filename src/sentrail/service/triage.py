"""The triage routes: resolve or reopen a finding of an app the key may use.

A change is a ``triage`` event in the run's log chain and an audit row, in one
transaction (:mod:`sentrail.store.triage`); the checkpoint timer covers it within a
second. ``PATCH /v1/findings/{id}`` looks the id up in the key's apps (two apps may hold
the same finding id: a key for every app names one with ``?app=``);
``PATCH /v1/apps/{app}/findings/{id}`` names the app in the path.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from fastapi import FastAPI, Path, Query, Request
from starlette.responses import Response

from sentrail.service.auth import Principal, shown_actor
from sentrail.service.deps import AppId, Triage
from sentrail.service.http import iso, json_response, read_body
from sentrail.service.openapi import json_body
from sentrail.service.problems import ErrorItem, ProblemError
from sentrail.store.records import AuditRow, FindingRow, records
from sentrail.store.triage import triage_finding

if TYPE_CHECKING:
    from sentrail.service.app import Services


class FindingPatch(msgspec.Struct, forbid_unknown_fields=True):
    resolved: bool
    comment: str


def finding_item(row: FindingRow) -> dict[str, Any]:
    return {
        "id": row.finding_id,
        "run_id": row.run_id,
        "category": row.category,
        "severity": row.severity,
        "rule": row.rule_id,
        "step": row.step,
        "resolved": row.resolved,
        "resolved_at": iso(row.resolved_at),
        "resolved_by": shown_actor(row.resolved_by),
        "created_at": iso(row.created_at),
        "finding": msgspec.Raw(row.body),
    }


def add_triage_routes(app: FastAPI, svc: Services) -> None:
    @app.patch("/v1/findings/{finding_id}", tags=["triage"], openapi_extra=json_body(FindingPatch))
    async def patch_finding(
        finding_id: Annotated[str, Path(max_length=1024)],
        request: Request,
        who: Triage,
        app: Annotated[str | None, Query(max_length=128)] = None,
    ) -> Response:
        """Resolve or reopen a finding with a comment; the change is a ``triage`` event in
        the run's log chain and an audit row. Only a finding of an app the key may use;
        a key for every app names the app with ``?app=`` when two apps hold the id."""
        patch = await _finding_patch(request)
        with records(svc.store) as rtx:
            apps = [a for a in rtx.finding_apps(who.tenant_id, finding_id) if who.may_use_app(a)]
        if app is not None:
            apps = [a for a in apps if a == app]
        if not apps:
            raise ProblemError(404, "not-found", "no such finding")
        if len(apps) > 1:
            raise ProblemError(
                409,
                "ambiguous-finding",
                f"apps {', '.join(apps)} each hold a finding {finding_id}: name one with ?app=",
            )
        return _triage(svc, who, apps[0], finding_id, patch)

    @app.patch(
        "/v1/apps/{app_id}/findings/{finding_id}",
        tags=["triage"],
        openapi_extra=json_body(FindingPatch),
    )
    async def patch_app_finding(
        app_id: AppId,
        finding_id: Annotated[str, Path(max_length=1024)],
        request: Request,
        who: Triage,
    ) -> Response:
        """:func:`patch_finding` for a finding of one app."""
        patch = await _finding_patch(request)
        if not who.may_use_app(app_id):
            raise ProblemError(403, "forbidden", f"this key is not for app {app_id!r}")
        return _triage(svc, who, app_id, finding_id, patch)


async def _finding_patch(request: Request) -> FindingPatch:
    data = await read_body(request, 64 * 1024)
    try:
        patch = msgspec.json.decode(data, type=FindingPatch)
    except msgspec.DecodeError as exc:
        raise ProblemError(400, "invalid-body", str(exc), [ErrorItem("body", str(exc))]) from None
    if not patch.comment.strip() or len(patch.comment) > 4096:
        raise ProblemError(
            400,
            "invalid-body",
            "a comment of 1-4096 characters is required",
            [ErrorItem("body.comment", "required, 1-4096 characters")],
        )
    return patch


def _triage(
    svc: Services, who: Principal, app: str, finding_id: str, patch: FindingPatch
) -> Response:
    done = triage_finding(
        svc.store,
        who.tenant_id,
        app,
        finding_id,
        resolved=patch.resolved,
        by=who.actor,
        comment=patch.comment,
        now=time.time(),
    )
    if done is None:
        raise ProblemError(404, "not-found", "no such finding")
    svc.timer.touch(who.tenant_id)  # the triage event is checkpointed within a second
    row, audit = done
    item = finding_item(row)
    item["audit"] = [_audit_item(a) for a in audit]
    return json_response(item)


def _audit_item(a: AuditRow) -> dict[str, Any]:
    return {
        "at": iso(a.at),
        "actor": shown_actor(a.actor),
        "action": a.action,
        "comment": a.comment,
    }
