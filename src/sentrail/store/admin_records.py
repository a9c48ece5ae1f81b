"""Record tables of administration: tenants, apps, API keys, policy bundles, baselines.

A mixin of :class:`sentrail.store.records.RecordTx` (the same transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from sentrail.store.rowcheck import opt_f as _opt_f
from sentrail.store.rowcheck import req_b as _b
from sentrail.store.rowcheck import req_f as _f
from sentrail.store.rowcheck import req_i as _i
from sentrail.store.rowcheck import req_s as _s
from sentrail.store.sql import SqlTx


class ApiKeyRow(msgspec.Struct, frozen=True):
    key_id: str
    tenant_id: str
    app_id: str
    scopes: tuple[str, ...]
    secret_hash: str
    created_at: float
    revoked_at: float | None = None


class PolicyUse(msgspec.Struct, frozen=True):
    """A stored policy bundle as one app of one tenant used it: ``runs`` of the app cite
    it (judged with it), the first and last of them by start time; ``stored_at``: when the
    store first kept the body (bundles are kept once, by hash, for every tenant)."""

    sha256: str
    stored_at: float
    runs: int
    first_run_at: float | None
    last_run_at: float | None


_KEY_COLS = "key_id, tenant_id, app_id, scopes, secret_hash, created_at, revoked_at"


def _key(row: Sequence[Any]) -> ApiKeyRow:
    scopes = _s(row[3], "api_keys.scopes")
    return ApiKeyRow(
        key_id=_s(row[0], "api_keys.key_id"),
        tenant_id=_s(row[1], "api_keys.tenant_id"),
        app_id=_s(row[2], "api_keys.app_id"),
        scopes=tuple(s for s in scopes.split(",") if s),
        secret_hash=_s(row[4], "api_keys.secret_hash"),
        created_at=_f(row[5], "api_keys.created_at"),
        revoked_at=_opt_f(row[6], "api_keys.revoked_at"),
    )


class AdminRecords:
    tx: SqlTx

    # -- tenants and apps ---------------------------------------------------------------
    def ensure_app(self, tenant: str, app: str, now: float) -> None:
        self.tx.all(
            "INSERT INTO tenants (tenant_id, retention_days, created_at) VALUES (?, NULL, ?) "
            "ON CONFLICT (tenant_id) DO NOTHING RETURNING tenant_id",
            (tenant, now),
        )
        self.tx.all(
            "INSERT INTO apps (tenant_id, app_id, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (tenant_id, app_id) DO NOTHING RETURNING app_id",
            (tenant, app, now),
        )

    def app_exists(self, tenant: str, app: str) -> bool:
        rows = self.tx.all("SELECT 1 FROM apps WHERE tenant_id = ? AND app_id = ?", (tenant, app))
        return bool(rows)

    # -- API keys -------------------------------------------------------------------------
    def put_key(self, key: ApiKeyRow) -> None:
        self.tx.all(
            f"INSERT INTO api_keys ({_KEY_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING key_id",  # noqa: S608
            (
                key.key_id,
                key.tenant_id,
                key.app_id,
                ",".join(key.scopes),
                key.secret_hash,
                key.created_at,
                key.revoked_at,
            ),
        )

    def get_key(self, key_id: str) -> ApiKeyRow | None:
        rows = self.tx.all(f"SELECT {_KEY_COLS} FROM api_keys WHERE key_id = ?", (key_id,))  # noqa: S608
        return _key(rows[0]) if rows else None

    def list_keys(self, tenant: str | None) -> list[ApiKeyRow]:
        sql = f"SELECT {_KEY_COLS} FROM api_keys"  # noqa: S608
        params: tuple[object, ...] = ()
        if tenant is not None:
            sql += " WHERE tenant_id = ?"
            params = (tenant,)
        return [_key(r) for r in self.tx.all(sql + " ORDER BY created_at, key_id", params)]

    def revoke_key(self, key_id: str, now: float) -> bool:
        rows = self.tx.all(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL "
            "RETURNING key_id",
            (now, key_id),
        )
        return bool(rows)

    # -- policy bundles and baselines -----------------------------------------------------
    def put_policy(self, sha256: str, body: bytes, now: float) -> None:
        """Keep a policy bundle by its SHA-256 (the hash every report and run row cites)."""
        self.tx.all(
            "INSERT INTO policies (sha256, body, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (sha256) DO NOTHING RETURNING sha256",
            (sha256, body, now),
        )

    def get_policy(self, sha256: str) -> bytes | None:
        rows = self.tx.all("SELECT body FROM policies WHERE sha256 = ?", (sha256,))
        return _b(rows[0][0], "policies.body") if rows else None

    def policy_stored_at(self, sha256: str) -> float | None:
        """When the store first kept the bundle with this hash (None: it does not hold it)."""
        rows = self.tx.all("SELECT created_at FROM policies WHERE sha256 = ?", (sha256,))
        return _f(rows[0][0], "policies.created_at") if rows else None

    def policies_used(self, tenant: str, app: str, limit: int = 100) -> list[PolicyUse]:
        """The stored bundles that runs of ``tenant``'s ``app`` cite, most recently used
        first (a bundle the store does not hold is left out: it cannot be replayed under)."""
        rows = self.tx.all(
            "SELECT p.sha256, p.created_at, COUNT(*), MIN(r.started_at), MAX(r.started_at) "
            "FROM runs r JOIN policies p ON p.sha256 = r.policy_sha256 "
            "WHERE r.tenant_id = ? AND r.app_id = ? GROUP BY p.sha256, p.created_at "
            "ORDER BY MAX(r.started_at) DESC, p.sha256 LIMIT ?",
            (tenant, app, limit),
        )
        return [
            PolicyUse(
                sha256=_s(r[0], "policies.sha256"),
                stored_at=_f(r[1], "policies.created_at"),
                runs=_i(r[2], "runs.count"),
                first_run_at=_opt_f(r[3], "runs.started_at"),
                last_run_at=_opt_f(r[4], "runs.started_at"),
            )
            for r in rows
        ]

    def app_cites_policy(self, tenant: str, app: str, sha256: str) -> bool:
        """Whether a run of ``tenant``'s ``app`` was judged with the bundle of this hash."""
        rows = self.tx.all(
            "SELECT 1 FROM runs WHERE tenant_id = ? AND app_id = ? AND policy_sha256 = ? LIMIT 1",
            (tenant, app, sha256),
        )
        return bool(rows)

    def put_baseline(self, tenant: str, agent: str, body: bytes, now: float) -> None:
        self.tx.all(
            "INSERT INTO baselines (tenant_id, agent_id, body, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (tenant_id, agent_id) DO UPDATE SET body = excluded.body, "
            "updated_at = excluded.updated_at RETURNING agent_id",
            (tenant, agent, body, now),
        )

    def get_baseline(self, tenant: str, agent: str) -> bytes | None:
        rows = self.tx.all(
            "SELECT body FROM baselines WHERE tenant_id = ? AND agent_id = ?", (tenant, agent)
        )
        return _b(rows[0][0], "baselines.body") if rows else None
