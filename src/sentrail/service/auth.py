"""API keys: ``sk_<key id>_<secret>``, shown once, stored as an argon2id hash.

A key belongs to one tenant and one app (or ``*``, every app of its tenant) and carries
scopes. Every query the service makes is bounded by the key's tenant, so a key cannot
even name another tenant's data.

Verifying argon2id is deliberately slow and memory-hard (tens of milliseconds, 64 MiB),
which makes unbounded wrong guesses a denial of service: :class:`KeyVerifier` bounds
concurrent checks, rate-limits failures, costs the same for unknown and known key ids,
and caches verified keys for a few seconds (its docstring says how revocation then
works). Records of who acted name a key by :func:`actor_label`, not by its id.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from sentrail.errors import SentrailError, UsageError
from sentrail.service.ratelimit import FailureLimiter
from sentrail.store.admin_records import ApiKeyRow
from sentrail.store.core import LogStore
from sentrail.store.records import records

PREFIX = "sk"
_KEY = re.compile(r"sk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
ALL_APPS = "*"
MAX_CACHED = 10_000


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

    @property
    def actor(self) -> str:
        """Who to record as having acted: :func:`actor_label`, never the key id."""
        return actor_label(self.key_id)


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


class KeyCheckDeferred(SentrailError):
    """A key was not checked now: too many failures (``limited``) or every hashing slot
    is taken. Transient either way: the caller answers 429 / 503 with ``retry_after``."""

    def __init__(self, message: str, retry_after: float, *, limited: bool) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.limited = limited


def actor_label(key_id: str) -> str:
    """What audit trails, approvals and containment record as the actor of a key.

    Not the key id: those records are read by keys of other apps of the tenant, and a key
    id is half of what an attacker needs. The label is a digest of the id, the same for
    every action of one key, and whoever holds the id (``apikey list``) can recompute it."""
    return "apikey:" + hashlib.sha256(b"sentrail actor label\0" + key_id.encode()).hexdigest()[:16]


LEGACY_KEY_ACTOR = "key:"  # how records named a key before labels: by its id


def shown_actor(actor: str | None) -> str | None:
    """An actor as a response shows it. Records written before actors were labels name a
    key by its id (``key:<id>``): those are shown as the key's :func:`actor_label`, so no
    response hands one app another key's id; anything else as recorded."""
    if actor is None or not actor.startswith(LEGACY_KEY_ACTOR):
        return actor
    return actor_label(actor.removeprefix(LEGACY_KEY_ACTOR))


class KeyVerifier:
    """Bearer key → Principal, with bounded, rate-limited, constant-cost checks.

    1. A token that is not ``sk_<16 hex>_<43 chars>`` is refused at once: its shape names
       no key, so refusing it says nothing about which ids exist.
    2. A verified token is cached for ``ttl`` seconds (a few), keyed by a BLAKE2b MAC of
       the whole token under a per-process random key (neither the token nor an unkeyed
       digest of it is kept). Legitimate traffic pays argon2id about once per ``ttl``.
    3. Failures are rate-limited per client address and per key id (:mod:`.ratelimit`);
       past the limit the check is refused before any hashing (429).
    4. At most ``slots`` argon2id checks run at once, in their own threads; a check that
       waits longer than ``wait_s`` for a slot is refused (503). A token that verified
       within ``renewal_s`` (its keyed digest is remembered, not the token) is re-checked
       in one slot of its own and skips the failure limits: an attack, which cannot
       present such a token, does not delay its owner's renewals. Memory is bounded by
       ``slots + 1`` times the hash's memory cost, whatever the number of callers.
    5. An unknown or revoked key id is checked against a dummy hash of the same cost, so
       the time of an answer does not tell which key ids exist.

    Revocation: a revocation made in this process (:meth:`forget`) drops the key's cache
    entries at once; one made elsewhere (``sentrail apikey revoke``) takes effect within
    ``ttl`` seconds, when the cached entry expires.
    """

    def __init__(
        self,
        store: LogStore,
        ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        slots: int | None = None,
        wait_s: float = 2.0,
        limiter: FailureLimiter | None = None,
        hasher: PasswordHasher = _HASHER,
        renewal_s: float = 600.0,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self.slots = slots or max(1, os.cpu_count() or 1)
        self.wait_s = wait_s
        self.limiter = limiter or FailureLimiter()
        self.hasher = hasher
        self.renewal_s = renewal_s
        self._mac_key = secrets.token_bytes(32)
        self._cache: dict[bytes, tuple[Principal, float]] = {}
        self._known: dict[bytes, float] = {}  # digest -> until when it may renew
        self._lock = threading.Lock()
        self._dummy: str | None = None
        self._executor = ThreadPoolExecutor(self.slots + 1, thread_name_prefix="key-check")
        self._gates: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore, asyncio.Semaphore] | None
        self._gates = None  # (loop, general slots, the renewal slot), made on first use

    # -- the checks ---------------------------------------------------------------------
    async def averify(self, presented: str, client: str) -> Principal | None:
        """:meth:`verify` for the service: the hash runs off the event loop, bounded."""
        key_id, digest, hit = self._precheck(presented, client)
        if hit is not None or key_id is None:
            return hit
        gate = self._semaphore(renewal=self._renews(digest))
        try:
            await asyncio.wait_for(gate.acquire(), self.wait_s)
        except TimeoutError:
            if not self._renews(digest):  # not checked: neither a failure nor a try
                self.limiter.refund(client, key_id)
            raise KeyCheckDeferred(
                "every key check slot is busy", max(1.0, self.wait_s), limited=False
            ) from None
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._executor, self._check, presented, key_id, digest, client
            )
        finally:
            gate.release()

    def verify(self, presented: str, client: str = "local") -> Principal | None:
        """The principal of a valid, unrevoked key; None otherwise (never says why).

        KeyCheckDeferred when ``client`` or the key id has failed too often."""
        key_id, digest, hit = self._precheck(presented, client)
        if hit is not None or key_id is None:
            return hit
        return self._check(presented, key_id, digest, client)

    def _precheck(self, presented: str, client: str) -> tuple[str | None, bytes, Principal | None]:
        """(key id, cache digest, cached principal): the checks that cost no hashing."""
        match = _KEY.fullmatch(presented)
        if match is None:
            return None, b"", None
        digest = hashlib.blake2b(presented.encode(), key=self._mac_key, digest_size=32).digest()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[1] > self.clock():
            return match.group(1), digest, hit[0]
        if self._renews(digest):
            return match.group(1), digest, None
        wait = self.limiter.admit(client, match.group(1))
        if wait is not None:
            raise KeyCheckDeferred("too many failed key checks", wait, limited=True)
        return match.group(1), digest, None

    def _check(self, presented: str, key_id: str, digest: bytes, client: str) -> Principal | None:
        """The argon2id check (one slot's work): the stored hash, or the dummy's."""
        with records(self.store) as rtx:
            row = rtx.get_key(key_id)
        stored = row.secret_hash if row is not None else self._dummy_hash()
        ok: bool = False  # a mismatch, or a stored hash that is not one
        with contextlib.suppress(VerifyMismatchError, VerificationError, InvalidHashError):
            ok = self.hasher.verify(stored, presented)
        renewal = self._renews(digest)
        if not ok or row is None or row.revoked_at is not None:
            with self._lock:
                self._known.pop(digest, None)
            return None  # the tokens admit() took stay taken: a failure
        if not renewal:
            self.limiter.refund(client, key_id)
        principal = Principal(row.key_id, row.tenant_id, row.app_id, frozenset(row.scopes))
        now = self.clock()
        with self._lock:
            if len(self._cache) >= MAX_CACHED:
                self._cache = {d: e for d, e in self._cache.items() if e[1] > now}
                if len(self._cache) >= MAX_CACHED:
                    self._cache.clear()
            self._cache[digest] = (principal, now + self.ttl)
            if len(self._known) >= MAX_CACHED:
                self._known = {d: t for d, t in self._known.items() if t > now}
                if len(self._known) >= MAX_CACHED:
                    self._known.clear()
            self._known[digest] = now + self.renewal_s
        return principal

    def _dummy_hash(self) -> str:
        """A hash of a random secret at the cost new keys are made with (made once)."""
        with self._lock:
            if self._dummy is None:
                self._dummy = self.hasher.hash(secrets.token_urlsafe(32))
            return self._dummy

    def _renews(self, digest: bytes) -> bool:
        with self._lock:
            until = self._known.get(digest)
        return until is not None and until > self.clock()

    def _semaphore(self, *, renewal: bool) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._gates is None or self._gates[0] is not loop:
            self._gates = (loop, asyncio.Semaphore(self.slots), asyncio.Semaphore(1))
        return self._gates[2] if renewal else self._gates[1]

    # -- revocation and shutdown -----------------------------------------------------------
    def forget(self, key_id: str) -> None:
        """Drop every cached verification of ``key_id`` (after revoking it here)."""
        with self._lock:
            for digest, (p, _) in list(self._cache.items()):
                if p.key_id == key_id:
                    del self._cache[digest]

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
