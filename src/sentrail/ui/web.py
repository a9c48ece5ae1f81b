"""The dashboard's HTTP plumbing: security headers, who is signed in, CSRF and same-origin
checks on state changes, and rendering a page.

Every response under ``/ui`` carries a strict Content-Security-Policy: scripts, styles,
images and connections from this origin only, no inline script or style, no framing, no
``<base>``, forms post here only; a violation is reported to ``/ui/csp-report``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from fastapi import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from sentrail.errors import SentrailError
from sentrail.service.http import read_body
from sentrail.store.records import records
from sentrail.ui.render import make_env, query
from sentrail.ui.sessions import COOKIE, Session, SessionBook

if TYPE_CHECKING:
    from sentrail.service.app import Services

log = logging.getLogger("sentrail.ui")
PREFIX = "/ui"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; report-uri /ui/csp-report"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
MAX_FORM_BYTES = 64 * 1024
APP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # as the API's app ids


class UiError(SentrailError):
    """A request the dashboard refuses, shown as a page with its status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class SignInNeeded(Exception):
    """No valid session: the browser is sent to the sign-in page."""


class Dashboard:
    """What the dashboard's routes share (one per service app)."""

    def __init__(self, svc: Services, session_ttl_s: float) -> None:
        self.svc = svc
        self.sessions = SessionBook(session_ttl_s)
        self.env = make_env()
        self.csp_reports = 0

    # -- who is signed in ---------------------------------------------------------------
    def session(self, request: Request) -> Session:
        session = self.sessions.check(request.cookies.get(COOKIE))
        if session is None:
            raise SignInNeeded
        with records(self.svc.store) as rtx:
            key = rtx.get_key(session.key_id)
        if key is None or key.revoked_at is not None:  # a revoked key ends its sessions
            self.sessions.revoke(session)
            raise SignInNeeded
        return session

    def for_app(self, request: Request, app: str, scope: str = "read") -> Session:
        """The session, if it may use ``app`` with ``scope`` (404 hides other apps)."""
        session = self.session(request)
        if not APP_ID.fullmatch(app) or not session.may_use_app(app):
            raise UiError(404, "no such app for this key")
        if not session.has(scope):
            raise UiError(403, f"this key lacks the {scope!r} scope")
        return session

    # -- state changes --------------------------------------------------------------------
    async def form(self, request: Request, session: Session | None) -> dict[str, str]:
        """The posted form, after the same-origin check and (signed in) the CSRF token."""
        if not same_origin(request):
            raise UiError(403, "cross-origin request refused")
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise UiError(415, "expected a form (application/x-www-form-urlencoded)")
        body = await read_body(request, MAX_FORM_BYTES)
        try:
            parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=32)
        except (UnicodeDecodeError, ValueError):
            raise UiError(400, "the form is not valid UTF-8 form data") from None
        fields = {k: v[0] for k, v in parsed.items()}
        if session is not None and not self.sessions.csrf_ok(session, fields.get("csrf")):
            raise UiError(403, "the form's CSRF token is missing or wrong: reload the page")
        return fields

    # -- rendering ------------------------------------------------------------------------
    def render(
        self,
        request: Request,
        template: str,
        session: Session | None,
        status: int = 200,
        **ctx: Any,
    ) -> HTMLResponse:
        ctx.setdefault("nav", "")
        ctx.setdefault("app", None)
        html = self.env.get_template(template).render(
            session=session,
            csrf=self.sessions.csrf_token(session) if session is not None else "",
            path=request.url.path,
            **ctx,
        )
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def same_origin(request: Request) -> bool:
    """``Origin`` (or, without it, ``Referer``) names this host; a browser sends one of
    them on every form post, so a post with neither is refused too."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return False
    parts = urlsplit(source)
    host = request.headers.get("host", "")
    return parts.scheme in ("http", "https") and parts.netloc == host


def secure_cookie(request: Request) -> bool:
    return request.url.scheme == "https"


async def security_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Add the security headers to every response under ``/ui``."""
    response = await call_next(request)
    if request.url.path == PREFIX or request.url.path.startswith(PREFIX + "/"):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return redirect(f"{PREFIX}/login{query({'next': target})}")


def safe_next(value: str | None) -> str:
    """Only a path of this dashboard is followed after sign-in (no open redirect)."""
    if not value or not value.startswith(PREFIX + "/") or value.startswith("//"):
        return PREFIX + "/"
    if any(c in value for c in "\\\r\n\t") or "//" in value:
        return PREFIX + "/"
    return value


def now() -> float:
    return time.time()
