"""Sign in (an API key for a session cookie), sign out, the app picker, the key pin page,
and the CSP violation report sink."""

from __future__ import annotations

import math

from fastapi import APIRouter, Request
from starlette.responses import Response

from sentrail.service.auth import KeyCheckDeferred, Scope
from sentrail.service.http import read_body
from sentrail.store.records import records
from sentrail.ui.queries import tenant_apps
from sentrail.ui.render import path_part
from sentrail.ui.sessions import COOKIE, Session
from sentrail.ui.web import (
    PREFIX,
    Dashboard,
    SignInNeeded,
    log,
    redirect,
    safe_next,
    secure_cookie,
)


def home_of(session: Session) -> str:
    if session.app_id == "*":
        return f"{PREFIX}/apps"
    return f"{PREFIX}/apps/{path_part(session.app_id)}/runs"


def router(dash: Dashboard) -> APIRouter:
    r = APIRouter()

    @r.get("")
    @r.get("/")
    def home(request: Request) -> Response:
        return redirect(home_of(dash.session(request)))

    @r.get("/login")
    def login_page(request: Request, next: str | None = None) -> Response:
        return dash.render(request, "login.html", None, next=safe_next(next), error="", app=None)

    @r.post("/login")
    async def login(request: Request) -> Response:
        fields = await dash.form(request, None)
        target = safe_next(fields.get("next"))
        presented = fields.get("api_key", "").strip()
        client = request.client.host if request.client is not None else "unknown"
        error = ""
        try:  # the API's key check: off the event loop, bounded, failures rate-limited
            principal = await dash.svc.keys.averify(presented, client) if presented else None
        except KeyCheckDeferred as exc:
            wait = max(1, math.ceil(exc.retry_after))
            reason = "Too many failed sign-ins" if exc.limited else "The service is busy"
            refused = dash.render(
                request,
                "login.html",
                None,
                status=429 if exc.limited else 503,
                next=target,
                error=f"{reason}: try again in {wait} s.",
                app=None,
            )
            refused.headers["Retry-After"] = str(wait)
            return refused
        if principal is None:
            error = "That key is not valid (unknown, revoked or mistyped)."
        elif Scope.READ.value not in principal.scopes:
            error = "That key has no 'read' scope: the dashboard needs it."
        if principal is None or error:
            return dash.render(
                request, "login.html", None, status=401, next=target, error=error, app=None
            )
        token = dash.sessions.issue(
            principal.key_id,
            principal.tenant_id,
            principal.app_id,
            tuple(sorted(principal.scopes)),
        )
        session = dash.sessions.check(token)
        assert session is not None
        response = redirect(target if target != PREFIX + "/" else home_of(session))
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(dash.sessions.ttl_s),
            path=PREFIX,
            secure=secure_cookie(request),
            httponly=True,
            samesite="strict",
        )
        log.info("dashboard sign-in: key %s", principal.key_id)
        return response

    @r.post("/logout")
    async def logout(request: Request) -> Response:
        try:
            session = dash.session(request)
        except SignInNeeded:
            return redirect(f"{PREFIX}/login")
        await dash.form(request, session)
        dash.sessions.revoke(session)
        response = redirect(f"{PREFIX}/login")
        response.delete_cookie(
            COOKIE, path=PREFIX, secure=secure_cookie(request), httponly=True, samesite="strict"
        )
        return response

    @r.get("/apps")
    def apps(request: Request) -> Response:
        session = dash.session(request)
        if session.app_id != "*":
            return redirect(home_of(session))
        with records(dash.svc.store) as rtx:
            names = tenant_apps(rtx, session.tenant_id)
        return dash.render(request, "apps.html", session, apps=names, app=None)

    @r.get("/settings")
    def settings(request: Request) -> Response:
        session = dash.session(request)
        return dash.render(
            request,
            "settings.html",
            session,
            served_key=dash.svc.signer.verifier_key(),
            app=None if session.app_id == "*" else session.app_id,
            nav="settings",
        )

    @r.post("/csp-report")
    async def csp_report(request: Request) -> Response:
        """Browsers post CSP violations here; they are counted and logged (bounded)."""
        try:
            body = await read_body(request, 16 * 1024)
        except Exception:
            body = b""
        dash.csp_reports += 1
        log.warning("CSP violation reported (%d bytes)", len(body))
        return Response(status_code=204)

    return r
