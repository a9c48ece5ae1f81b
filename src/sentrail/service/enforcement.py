"""The enforcement routes: decide, observe, approvals, containment (docs/enforcement.md).

App scoping (docs/service.md): a key bound to an app decides for its app's runs only (its
decisions go to that app's run chains; a key for every app may name the app); approvals
belong to the app of the run that asked and are listed and decided only by keys of that
app (or of every app); the containment log shows a key the actions of its app (freezing
one of its runs, deciding one of its approvals) and the tenant-wide ones (quarantine,
revoked grants, disabled tools: they apply to every app's calls). Actors are recorded as
labels (:func:`sentrail.service.auth.actor_label`), never as another key's id.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec
from fastapi import FastAPI, Path, Request
from starlette.responses import Response

from sentrail.enforce.model import DecisionRequest
from sentrail.enforce.state import EnforcementError
from sentrail.model.approval import shown_args
from sentrail.model.trace import StepIndex, ToolResult
from sentrail.service.auth import ALL_APPS, Principal, shown_actor
from sentrail.service.deps import Approve, Contain, Decide, LogRead
from sentrail.service.http import decode_body, json_response, read_body
from sentrail.service.openapi import json_body
from sentrail.service.problems import ProblemError
from sentrail.store.enforcement_records import TENANT_WIDE_KINDS, ContainmentRow, action_visible
from sentrail.store.records import records

if TYPE_CHECKING:
    from sentrail.service.app import ServiceConfig, Services


class ObserveBody(msgspec.Struct, forbid_unknown_fields=True):
    run_id: str
    result: ToolResult
    agent_id: str | None = None
    step_index: StepIndex | None = None
    app_id: str = "default"  # whose run: a key bound to an app observes its own app's


class ApprovalBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: str = ""


class ContainBody(msgspec.Struct, forbid_unknown_fields=True):
    action: Literal[
        "quarantine", "release", "freeze_run", "revoke_grant", "disable_tool", "enable_tool"
    ]
    reason: str
    agent: str = "*"
    run_id: str = ""
    permission: str = ""
    tool: str = ""


def add_enforcement_routes(app: FastAPI, svc: Services, cfg: ServiceConfig) -> None:
    @app.post("/v1/decide", tags=["enforcement"], openapi_extra=json_body(DecisionRequest))
    async def post_decide(request: Request, who: Decide) -> Response:
        """Ask the decision point about one tool call; the signed decision is recorded
        (in the run's chain) before it is returned. Fail closed: any error is a deny."""
        data = await read_body(request, 1024 * 1024)
        req = decode_body(data, DecisionRequest)
        req.tenant_id = who.tenant_id  # a key decides for its own tenant only
        if who.app_id != ALL_APPS:
            req.app_id = who.app_id  # ... and an app-bound key for its own app
        decision = await svc.pdp.adecide(req, timeout=cfg.decide_timeout_s)
        svc.decisions.labels(decision.outcome.value).inc()
        return json_response(decision)

    @app.post("/v1/observe", tags=["enforcement"], openapi_extra=json_body(ObserveBody))
    async def post_observe(request: Request, who: Decide) -> Response:
        """Feed a tool's result back to its run (injected instructions taint later calls)."""
        data = await read_body(request, cfg.max_body_bytes)
        body = await asyncio.to_thread(decode_body, data, ObserveBody)  # up to the body limit:
        app_id = body.app_id if who.app_id == ALL_APPS else who.app_id
        found = await asyncio.to_thread(  # decoding and scanning stay off the event loop
            svc.pdp.observe,
            who.tenant_id,
            body.run_id,
            body.result,
            body.agent_id,
            body.step_index,
            app_id,
        )
        return json_response({"findings": found})

    @app.get("/v1/approvals", tags=["enforcement"])
    def get_approvals(who: Approve) -> Response:
        """Pending approvals of the key's tenant and app. ``args_json`` is given only when it
        hashes to the ``args_sha256`` the approval binds (else ""), as the dashboard shows it:
        what an approver reads is what would be approved."""
        app_id = None if who.app_id == ALL_APPS else who.app_id
        items = svc.approvals.pending(who.tenant_id, app_id)
        return json_response(
            {
                "items": [
                    msgspec.structs.replace(
                        a, decided_by=shown_actor(a.decided_by), args_json=shown_args(a) or ""
                    )
                    for a in items
                ]
            }
        )

    @app.post(
        "/v1/approvals/{approval_id}/{verdict}",
        tags=["enforcement"],
        openapi_extra=json_body(ApprovalBody, required=False),
    )
    async def post_approval(
        approval_id: Annotated[str, Path(max_length=64)],
        verdict: Annotated[str, Path(pattern="^(approve|deny)$")],
        request: Request,
        who: Approve,
    ) -> Response:
        """Approve or deny one held call (the approver is the key, recorded)."""
        data = await read_body(request, 64 * 1024)
        body = decode_body(data or b"{}", ApprovalBody)
        with records(svc.store) as rtx:
            held = rtx.get_approval(approval_id)
        if held is None or held.tenant_id != who.tenant_id or not who.may_use_app(held.app_id):
            raise ProblemError(404, "not-found", f"no approval {approval_id!r}")
        try:
            a = svc.approvals.decide(
                approval_id, who.tenant_id, verdict == "approve", who.actor, body.reason
            )
        except EnforcementError as exc:
            if exc.message.startswith("no approval"):
                raise ProblemError(404, "not-found", exc.message) from None
            raise ProblemError(409, "approval-conflict", exc.message) from None
        if a.decided_at is not None:
            svc.approval_latency.labels(a.status).observe(a.decided_at - a.requested_at)
        return json_response(msgspec.structs.replace(a, decided_by=shown_actor(a.decided_by)))

    @app.post("/v1/containment", tags=["enforcement"], openapi_extra=json_body(ContainBody))
    async def post_containment(request: Request, who: Contain) -> Response:
        """Quarantine, revoke a grant, disable a tool, freeze a run (idempotent, recorded).
        ``release`` is refused here: it needs the guarded re-enable (CLI)."""
        data = await read_body(request, 64 * 1024)
        body = decode_body(data, ContainBody)
        c, t, by = svc.containment, who.tenant_id, who.actor
        if body.action in TENANT_WIDE_KINDS and who.app_id != ALL_APPS:
            raise ProblemError(
                403,
                "forbidden",
                f"{body.action} binds every app of the tenant: it needs a key for every app "
                "(`sentrail apikey create --app '*'`); a key bound to one app may freeze its runs",
            )
        try:
            if body.action == "quarantine":
                changed = c.quarantine(t, body.agent, by, body.reason)
            elif body.action == "freeze_run":
                changed = c.freeze_run(t, body.run_id, by, body.reason, app=who.app_id)
            elif body.action == "revoke_grant":
                changed = c.revoke_grant(t, body.agent, body.permission, by, body.reason)
            elif body.action == "disable_tool":
                changed = c.disable_tool(t, body.tool, by, body.reason, agent=body.agent)
            elif body.action == "enable_tool":
                changed = c.enable_tool(t, body.tool, by, body.reason, agent=body.agent)
            else:
                raise ProblemError(
                    400,
                    "guarded",
                    "release needs attestation, policy and a canary: "
                    "use `sentrail contain release`",
                )
        except EnforcementError as exc:
            raise ProblemError(400, "invalid-action", exc.message) from None
        return json_response({"action": body.action, "changed": changed})

    @app.get("/v1/containment", tags=["enforcement"])
    def get_containment(who: LogRead) -> Response:
        """The containment log (chain of custody) of the key's app, and the tenant-wide
        actions, which apply to every app."""
        with records(svc.store) as rtx:
            rows = rtx.containment_log(who.tenant_id)
        return json_response({"items": [_action(r) for r in rows if _visible(who, r)]})


def _visible(who: Principal, row: ContainmentRow) -> bool:
    """An action is the app's (its run, its approval) or tenant-wide (:func:`action_visible`)."""
    return action_visible(row, who.app_id)


def _action(row: ContainmentRow) -> dict[str, object]:
    return {
        "kind": row.kind,
        "tenant_id": row.tenant_id,
        "app_id": row.app_id,
        "target": row.target,
        "by": shown_actor(row.actor),
        "reason": row.reason,
        "at": row.at,
    }
