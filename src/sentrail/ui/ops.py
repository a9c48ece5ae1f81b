"""State changes and the enforcement pages: triage of a finding, the approvals inbox and the
containment state.

Each change goes through the same record path as the API (``resolve_finding`` with its
audit row; ``StoreApprovals.decide``), so the audit trail shows the key that acted and
when, whichever front end it used. Approvals and containment rows carry a tenant but no
app (schema v3): a key bound to one app sees and decides only those whose run (or agent)
belongs to its app; a key for every app (``*``) sees its whole tenant.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TypeVar

from fastapi import APIRouter, Request
from starlette.responses import Response

from sentrail.enforce.model import Approval, args_hash
from sentrail.enforce.state import EnforcementError
from sentrail.model.trace import Step
from sentrail.service.auth import Scope
from sentrail.store.enforcement_records import ApprovalRow, ContainmentRow
from sentrail.store.records import records
from sentrail.ui import queries as q
from sentrail.ui.render import path_part
from sentrail.ui.runs import load_run
from sentrail.ui.sessions import Session
from sentrail.ui.web import PREFIX, Dashboard, UiError, redirect, safe_next

MAX_COMMENT = 4096
A = TypeVar("A", ApprovalRow, Approval)


class Visible:
    """Which approvals and containment entries a session may see (tenant, then app)."""

    def __init__(self, dash: Dashboard, session: Session, app: str) -> None:
        self.dash, self.session, self.app = dash, session, app

    def approvals(self, rows: Sequence[A]) -> list[A]:
        rows = [a for a in rows if a.tenant_id == self.session.tenant_id]
        if self.session.app_id == "*":
            return rows
        with records(self.dash.svc.store) as rtx:
            runs = q.runs_in_app(rtx, self.session.tenant_id, self.app, [a.run_id for a in rows])
        return [a for a in rows if a.run_id in runs]

    def containment(self, log: list[ContainmentRow]) -> list[ContainmentRow]:
        log = [c for c in log if c.tenant_id == self.session.tenant_id]
        if self.session.app_id == "*":
            return log
        agents = [c.target.partition(" ")[0] for c in log]
        runs = [c.target for c in log if c.kind == "freeze_run"]
        with records(self.dash.svc.store) as rtx:
            mine = q.agents_in_app(rtx, self.session.tenant_id, self.app, agents)
            mine_runs = q.runs_in_app(rtx, self.session.tenant_id, self.app, runs)
        out = []
        for c in log:
            agent = c.target.partition(" ")[0]
            if c.kind == "freeze_run":
                keep = c.target in mine_runs
            elif c.kind in ("quarantine", "release"):
                keep = c.target in mine
            elif c.kind in ("revoke_grant", "disable_tool", "enable_tool"):
                keep = agent == "*" or agent in mine
            else:  # approval records: their approval ids are listed in the inbox
                keep = False
            if keep:
                out.append(c)
        return out


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


def _call_of(dash: Dashboard, session: Session, app: str, a: Approval) -> Step | None:
    """The stored step whose tool and arguments hash to the approval's (the approval
    binds a SHA-256 of the arguments; the arguments are shown only when a stored step of
    the run matches it exactly, so what is shown is what would be approved)."""
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
        resolved = fields.get("resolved") == "true"
        with records(svc.store, write=True) as rtx:
            row = rtx.get_finding(session.tenant_id, finding_id)
            if row is None or row.app_id != app:
                raise UiError(404, "no such finding in this app")
            rtx.resolve_finding(
                session.tenant_id,
                finding_id,
                resolved,
                f"key:{session.key_id}",
                comment,
                time.time(),
            )
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
        """Freeze a run of this app or quarantine an agent with runs in it (as
        ``POST /v1/containment``, recorded with the key); release stays guarded (CLI)."""
        session = dash.for_app(request, app, Scope.CONTAIN.value)
        fields = await dash.form(request, session)
        action, reason = fields.get("action"), fields.get("reason", "").strip()
        if not reason or len(reason) > MAX_COMMENT:
            raise UiError(400, f"a reason of 1-{MAX_COMMENT} characters is required")
        by, tenant = f"key:{session.key_id}", session.tenant_id
        with records(svc.store) as rtx:
            if action == "freeze_run":
                target = fields.get("run_id", "")
                known = bool(q.runs_in_app(rtx, tenant, app, [target]))
            elif action == "quarantine":
                target = fields.get("agent", "")
                known = bool(q.agents_in_app(rtx, tenant, app, [target]))
            else:
                raise UiError(400, "action must be freeze_run or quarantine")
        if not target or not known:
            raise UiError(404, "no such run or agent in this app")
        try:
            if action == "freeze_run":
                svc.containment.freeze_run(tenant, target, by, reason)
            else:
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
                f"key:{session.key_id}",
                reason,
            )
        except EnforcementError as exc:
            raise UiError(409, exc.message) from None
        if a.decided_at is not None:
            svc.approval_latency.labels(a.status).observe(a.decided_at - a.requested_at)
        return redirect(f"{PREFIX}/apps/{path_part(app)}/approvals")

    return r
