"""The investigator's web interface at ``/ui`` (docs/dashboard.md).

Server-rendered HTML (Jinja2, autoescape) with a little first-party JavaScript, served by
``sentrail serve`` on the same store, with the same tenant and app scoping as the API.
The entry point is :func:`add_dashboard`; everything it serves ships in this package.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from sentrail.ui import fleet, live, ops, replay_audit, run_page, signin
from sentrail.ui.sessions import COOKIE, DEFAULT_TTL_S
from sentrail.ui.web import PREFIX, Dashboard, SignInNeeded, UiError, login_redirect
from sentrail.ui.web import security_headers as _security_headers

if TYPE_CHECKING:
    from sentrail.service.app import Services

__all__ = ["DEFAULT_TTL_S", "add_dashboard"]
STATIC = Path(__file__).resolve().parent / "static"


def add_dashboard(app: FastAPI, svc: Services, session_ttl_s: float = DEFAULT_TTL_S) -> None:
    """Mount the dashboard's pages, live streams and static files on ``app``."""
    dash = Dashboard(svc, session_ttl_s)
    app.state.dashboard = dash
    app.middleware("http")(_security_headers)

    @app.exception_handler(UiError)
    async def _ui_error(request: Request, exc: UiError) -> Response:
        session = dash.sessions.check(request.cookies.get(COOKIE))
        return dash.render(
            request, "error.html", session, status=exc.status, message=exc.message, app=None
        )

    @app.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, exc: SignInNeeded) -> Response:
        if request.method != "GET" or request.headers.get("accept") == "text/event-stream":
            return HTMLResponse("sign in again", status_code=401)
        return login_redirect(request)

    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(STATIC)), name="ui-static")
    for module in (signin, fleet, run_page, replay_audit, ops, live):
        app.include_router(module.router(dash), prefix=PREFIX, include_in_schema=False)
