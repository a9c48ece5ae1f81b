"""API keys: ``sk_<key id>_<secret>``, shown once, stored as an argon2id hash.

A key belongs to one tenant and one app (or ``*``, every app of its tenant) and carries
scopes. Every query the service makes is bounded by the key's tenant, so a key cannot
even name another tenant's data.

Verifying argon2id is deliberately slow (tens of milliseconds), so a verified key is
cached in process for ``ttl`` seconds under the SHA-256 of the presented key (the key
itself is never kept). A revocation made by this process drops the cache entry at once;
one made elsewhere (the CLI) takes effect within ``ttl``.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from sentrail.errors import UsageError
from sentrail.store.admin_records import ApiKeyRow
from sentrail.store.core import LogStore
from sentrail.store.records import records

PREFIX = "sk"
_KEY = re.compile(r"sk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
ALL_APPS = "*"


class Scope(enum.StrEnum):
    INGEST = "ingest"  # POST traces and events
    READ = "read"  # GET traces, findings, log checkpoint and proofs
    TRIAGE = "triage"  # PATCH findings (resolve / reopen)
    METRICS = "metrics"  # GET /metrics
    DECIDE = "decide"  # POST /v1/decide, /v1/observe (a gateway or an agent runtime)
    APPROVE = "approve"  # approve or deny held calls
    CONTAIN = "contain"  # quarantine, revoke, disable, freeze


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: the key's id, tenant, app and scopes."""

    key_id: str
    tenant_id: str
    app_id: str
    scopes: frozenset[str]

    def may_use_app(self, app: str) -> bool:
        return self.app_id in (ALL_APPS, app)


def check_id(value: str, what: str) -> str:
    """Tenant and app ids: 1-128 of letters, digits, ``.``, ``_``, ``-``."""
    if not _ID.fullmatch(value):
        raise UsageError(f"invalid {what} {value!r}: use 1-128 letters, digits, '.', '_', '-'")
    return value


def parse_scopes(text: str | Iterable[str]) -> tuple[str, ...]:
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            out.append(Scope(item).value)
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise UsageError(f"unknown scope {item!r} (known: {known})") from None
    if not out:
        raise UsageError("at least one scope is needed")
    return tuple(dict.fromkeys(out))


_HASHER = PasswordHasher()


def create_key(
    store: LogStore,
    tenant: str,
    app: str,
    scopes: str | Iterable[str],
    now: float | None = None,
    *,
    hasher: PasswordHasher = _HASHER,
) -> tuple[str, ApiKeyRow]:
    """A new key (returned once, in clear) and its stored row.

    ``hasher`` sets the argon2id cost (the default is argon2-cffi's RFC 9106 profile);
    verification reads the cost from the stored hash.
    """
    check_id(tenant, "tenant")
    if app != ALL_APPS:
        check_id(app, "app")
    key_id = secrets.token_hex(8)
    key = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    when = time.time() if now is None else now
    row = ApiKeyRow(
        key_id=key_id,
        tenant_id=tenant,
        app_id=app,
        scopes=parse_scopes(scopes),
        secret_hash=hasher.hash(key),
        created_at=when,
    )
    with records(store, write=True) as rtx:
        if app != ALL_APPS:
            rtx.ensure_app(tenant, app, when)
        rtx.put_key(row)
    return key, row


class KeyVerifier:
    """Bearer key → Principal, with a short in-process cache of verified keys."""

    def __init__(
        self, store: LogStore, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[bytes, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def verify(self, presented: str) -> Principal | None:
        """The principal of a valid, unrevoked key; None otherwise (never says why)."""
        match = _KEY.fullmatch(presented)
        if match is None:
            return None
        digest = hashlib.sha256(presented.encode()).digest()
        now = self.clock()
        with self._lock:
            hit = self._cache.get(digest)
            if hit is not None and hit[1] > now:
                return hit[0]
        with records(self.store) as rtx:
            row = rtx.get_key(match.group(1))
        if row is None or row.revoked_at is not None:
            return None
        try:
            _HASHER.verify(row.secret_hash, presented)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        principal = Principal(row.key_id, row.tenant_id, row.app_id, frozenset(row.scopes))
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (principal, now + self.ttl)
        return principal

    def forget(self, key_id: str) -> None:
        with self._lock:
            for digest, (p, _) in list(self._cache.items()):
                if p.key_id == key_id:
                    del self._cache[digest]
