"""Dashboard sessions: an API key, checked once at sign-in, exchanged for a signed cookie.

Why stateless tokens with an in-process key: the dashboard is served by the one
``sentrail serve`` process, so no table (and no schema migration) is needed. A token is
``base64url(JSON claims) "." base64url(HMAC-SHA256)``, signed with a key drawn at start;
a restart therefore ends every session, which also means the revocation set (logged-out
session ids, kept until they would have expired anyway) can never be lost while a token
it names is still valid. Each request re-reads the API key's row, so revoking the key
(``sentrail apikey revoke``) ends its sessions at once, in every process.

CSRF: the synchronizer token of a session is ``HMAC(key, "csrf" || session id)``; it is
put in every form and checked on every state change, on top of ``SameSite=Strict``
cookies and a same-origin check of ``Origin``/``Referer`` (see :mod:`sentrail.ui.web`).
"""

from __future__ import annotations

import base64
import binascii
import hmac as std_hmac
import secrets
import threading
import time
from collections.abc import Callable

import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC

COOKIE = "sentrail_session"
DEFAULT_TTL_S = 8 * 3600.0
_MAX_TOKEN = 4096


class Session(msgspec.Struct, frozen=True):
    """Who signed in: the key's identity and scopes, and the session's lifetime."""

    sid: str
    key_id: str
    tenant_id: str
    app_id: str  # an app, or "*" for every app of the tenant
    scopes: tuple[str, ...]
    issued_at: float
    expires_at: float

    def may_use_app(self, app: str) -> bool:
        return self.app_id in ("*", app)

    def has(self, scope: str) -> bool:
        return scope in self.scopes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionBook:
    """Issues, checks and revokes session tokens (one per service process)."""

    def __init__(
        self, ttl_s: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.time
    ) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._key = secrets.token_bytes(32)
        self._revoked: dict[str, float] = {}  # sid -> its expiry (forgotten after)
        self._lock = threading.Lock()

    def _mac(self, label: bytes, data: bytes) -> bytes:
        h = HMAC(self._key, hashes.SHA256())
        h.update(label + b"\x00" + data)
        return h.finalize()

    def issue(self, key_id: str, tenant: str, app: str, scopes: tuple[str, ...]) -> str:
        now = self.clock()
        claims = Session(
            sid=secrets.token_urlsafe(16),
            key_id=key_id,
            tenant_id=tenant,
            app_id=app,
            scopes=scopes,
            issued_at=now,
            expires_at=now + self.ttl_s,
        )
        body = msgspec.json.encode(claims)
        return f"{_b64(body)}.{_b64(self._mac(b'session', body))}"

    def check(self, token: str | None) -> Session | None:
        """The session of a well-signed, unexpired, not logged-out token; else None."""
        if not token or len(token) > _MAX_TOKEN or token.count(".") != 1:
            return None
        body_text, mac_text = token.split(".")
        try:
            body, mac = _unb64(body_text), _unb64(mac_text)
        except (binascii.Error, ValueError):
            return None
        if not std_hmac.compare_digest(mac, self._mac(b"session", body)):
            return None
        try:
            session = msgspec.json.decode(body, type=Session)
        except msgspec.DecodeError:
            return None
        now = self.clock()
        if session.expires_at <= now:
            return None
        with self._lock:
            if session.sid in self._revoked:
                return None
        return session

    def revoke(self, session: Session) -> None:
        """Log out: the token is refused from now on (until the process ends)."""
        now = self.clock()
        with self._lock:
            for sid, until in list(self._revoked.items()):
                if until <= now:
                    del self._revoked[sid]
            self._revoked[session.sid] = session.expires_at

    def csrf_token(self, session: Session) -> str:
        return _b64(self._mac(b"csrf", session.sid.encode()))

    def csrf_ok(self, session: Session, presented: str | None) -> bool:
        if not presented or len(presented) > 256:
            return False
        return std_hmac.compare_digest(presented.encode(), self.csrf_token(session).encode())
