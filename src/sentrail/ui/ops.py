"""State changes and the enforcement pages: triage of a finding, the approvals inbox and the
containment state.

Each change goes through the same record path as the API (:func:`triage_finding`: a
``triage`` event in the run's log chain and its audit row; ``StoreApprovals.decide``), and
records the key as :func:`actor_label` does, so the audit trail shows the same actor and
time whichever front end was used. Approvals and containment actions carry their app
(schema v5): a key bound to one app sees and decides its app's approvals, and sees its
app's actions and the tenant-wide controls (:func:`action_visible`, as the API does); a
key for every app (``*``) sees its whole tenant.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import msgspec
from fastapi import APIRouter, Request
from starlette.responses import Response

from sentrail.enforce.model import args_hash
from sentrail.enforce.state import EnforcementError
from sentrail.model.approval import Approval, shown_args
from sentrail.model.trace import Step
from sentrail.service.auth import ALL_APPS, Scope, actor_label
from sentrail.store.enforcement_records import ContainmentRow, action_visible
from sentrail.store.records import records
from sentrail.store.triage import triage_finding
from sentrail.ui import queries as q
from sentrail.ui.render import path_part
from sentrail.ui.runs import load_run
from sentrail.ui.sessions import Session
from sentrail.ui.web import PREFIX, Dashboard, UiError, redirect, safe_next

MAX_COMMENT = 4096


class Visible:
    """Which approvals and containment entries a session may see (tenant, then app)."""

    def __init__(self, dash: Dashboard, session: Session, app: str) -> None:
        self.dash, self.session, self.app = dash, session, app

    def approvals(self, rows: Sequence[Approval]) -> list[Approval]:
        """The tenant's approvals of this app (all of them for a key for every app)."""
        every = self.session.app_id == ALL_APPS
        return [
            a
            for a in rows
            if a.tenant_id == self.session.tenant_id and (every or a.app_id == self.app)
        ]

    def containment(self, log: list[ContainmentRow]) -> list[ContainmentRow]:
        """The tenant's actions that a key of this session sees (:func:`action_visible`)."""
        return [
            c
            for c in log
            if c.tenant_id == self.session.tenant_id and action_visible(c, self.session.app_id)
        ]


def current_state(log: list[ContainmentRow]) -> dict[str, list[ContainmentRow]]:
    """Replay the log: what is in force now (the last action on each target wins)."""
    quarantined: dict[str, ContainmentRow] = {}
    disabled: dict[str, ContainmentRow] = {}
    revoked: dict[str, ContainmentRow] = {}
    frozen: dict[str, ContainmentRow] = {}
    for c in log:
        if c.kind == "quarantine":
            quarantined[c.target] = c
        elif c.kind == "release":
            quarantined.pop(c.target, None)
        elif c.kind == "disable_tool":
            disabled[c.target] = c
        elif c.kind == "enable_tool":
            disabled.pop(c.target, None)
        elif c.kind == "revoke_grant":
            revoked[c.target] = c
        elif c.kind == "freeze_run":
            frozen[c.target] = c
    return {
        "quarantined": list(quarantined.values()),
        "disabled": list(disabled.values()),
        "revoked": list(revoked.values()),
        "frozen": list(frozen.values()),
    }


def _call_of(dash: Dashboard, session: Session, app: str, a: Approval) -> dict[str, Any] | None:
    """The exact call an approval binds: the arguments it recorded, or for an older
    approval that recorded only their hash, a stored step of the run whose tool and
    arguments hash to it. Shown only when the hash matches, so what is shown is what
    would be approved."""
    recorded = shown_args(a)
    if recorded is not None:
        return {"tool": a.tool, "parameters": msgspec.json.decode(recorded)}
    step = _stored_call(dash, session, app, a)
    if step is None or step.tool_call is None:
        return None
    return {"tool": step.tool_call.tool, "parameters": step.tool_call.parameters}


def _stored_call(dash: Dashboard, session: Session, app: str, a: Approval) -> Step | None:
    with records(dash.svc.store) as rtx:
        row = rtx.get_run(session.tenant_id, app, a.run_id)
    if row is None:
        return None
    loaded = load_run(dash.svc.store, session.tenant_id, app, row.trace_hash)
    if loaded is None or loaded.run is None:
        return None
    for step in reversed(loaded.run.steps):
        call = step.tool_call
        if call is not None and call.tool == a.tool and args_hash(call.parameters) == a.args_sha256:
            return step
    return None


def router(dash: Dashboard) -> APIRouter:
    r = APIRouter()
    svc = dash.svc

    @r.post("/apps/{app}/findings/{finding_id}/triage")
    async def triage(request: Request, app: str, finding_id: str) -> Response:
        session = dash.for_app(request, app, Scope.TRIAGE.value)
        fields = await dash.form(request, session)
        comment = fields.get("comment", "").strip()
        if not comment or len(comment) > MAX_COMMENT:
            raise UiError(400, f"a comment of 1-{MAX_COMMENT} characters is required")
        done = triage_finding(
            svc.store,
            session.tenant_id,
            app,
            finding_id,
            resolved=fields.get("resolved") == "true",
            by=actor_label(session.key_id),
            comment=comment,
            now=time.time(),
        )
        if done is None:
            raise UiError(404, "no such finding in this app")
        svc.timer.touch(session.tenant_id)  # the triage event is checkpointed within a second
        back = safe_next(fields.get("next"))
        if back == PREFIX + "/":
            back = f"{PREFIX}/apps/{path_part(app)}/anomalies"
        return redirect(back)

    @r.get("/apps/{app}/approvals")
    def approvals(request: Request, app: str) -> Response:
        session = dash.for_app(request, app)
        visible = Visible(dash, session, app)
        can_approve = session.has(Scope.APPROVE.value)
        pending = visible.approvals(svc.approvals.pending(session.tenant_id)) if can_approve else []
        with records(svc.store) as rtx:
            log = rtx.containment_log(session.tenant_id)
        log = visible.containment(log)
        calls = {a.approval_id: _call_of(dash, session, app, a) for a in pending}
        with records(svc.store) as rtx:
            hashes = {
                a.approval_id: q.run_by_id(rtx, session.tenant_id, app, a.run_id) for a in pending
            }
        return dash.render(
            request,
            "approvals.html",
            session,
            app=app,
            nav="approvals",
            pending=pending,
            calls=calls,
            hashes=hashes,
            can_approve=can_approve,
            state=current_state(log),
            log=list(reversed(log))[:100],
            now=time.time(),
        )

    @r.post("/apps/{app}/containment")
    async def contain(request: Request, app: str) -> Response:
        """Freeze a run of this app, or (with a key for every app) quarantine an agent with
        runs in it (as ``POST /v1/containment``, recorded with the key); release stays
        guarded (CLI)."""
        session = dash.for_app(request, app, Scope.CONTAIN.value)
        fields = await dash.form(request, session)
        action, reason = fields.get("action"), fields.get("reason", "").strip()
        if not reason or len(reason) > MAX_COMMENT:
            raise UiError(400, f"a reason of 1-{MAX_COMMENT} characters is required")
        by, tenant = actor_label(session.key_id), session.tenant_id
        with records(svc.store) as rtx:
            if action == "freeze_run":
                target = fields.get("run_id", "")
                known = bool(q.runs_in_app(rtx, tenant, app, [target]))
            elif action == "quarantine":
                if session.app_id != ALL_APPS:  # a quarantine binds the agent in every app
                    raise UiError(403, "quarantine needs a key for every app of the tenant")
                target = fields.get("agent", "")
                known = bool(q.agents_in_app(rtx, tenant, app, [target]))
            else:
                raise UiError(400, "action must be freeze_run or quarantine")
        if not target or not known:
            raise UiError(404, "no such run or agent in this app")
        try:
            if action == "freeze_run":
                svc.containment.freeze_run(tenant, target, by, reason, app=app)
            else:  # an agent's quarantine binds its calls in every app: tenant-wide
                svc.containment.quarantine(tenant, target, by, reason)
        except EnforcementError as exc:
            raise UiError(400, exc.message) from None
        back = safe_next(fields.get("next"))
        return redirect(
            back if back != PREFIX + "/" else f"{PREFIX}/apps/{path_part(app)}/approvals"
        )

    @r.post("/apps/{app}/approvals/{approval_id}/{verdict}")
    async def decide(request: Request, app: str, approval_id: str, verdict: str) -> Response:
        session = dash.for_app(request, app, Scope.APPROVE.value)
        fields = await dash.form(request, session)
        if verdict not in ("approve", "deny"):
            raise UiError(404, "no such action")
        reason = fields.get("reason", "").strip()
        if not reason or len(reason) > MAX_COMMENT:
            raise UiError(400, f"a reason of 1-{MAX_COMMENT} characters is required")
        with records(svc.store) as rtx:
            row = rtx.get_approval(approval_id)
        if row is None or not Visible(dash, session, app).approvals([row]):
            raise UiError(404, "no such approval for this app")
        try:
            a = svc.approvals.decide(
                approval_id,
                session.tenant_id,
                verdict == "approve",
                actor_label(session.key_id),
                reason,
            )
        except EnforcementError as exc:
            raise UiError(409, exc.message) from None
        if a.decided_at is not None:
            svc.approval_latency.labels(a.status).observe(a.decided_at - a.requested_at)
        return redirect(f"{PREFIX}/apps/{path_part(app)}/approvals")

    return r
