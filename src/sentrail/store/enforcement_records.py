"""Record tables of enforcement: approvals, the containment log, decisions (schema v3).

A mixin of :class:`sentrail.store.records.RecordTx`: the same transaction, the same
type-checked reading of rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from sentrail.model.approval import Approval
from sentrail.store.rowcheck import opt_f as _opt_f
from sentrail.store.rowcheck import opt_s as _opt_s
from sentrail.store.rowcheck import req_f as _f
from sentrail.store.rowcheck import req_s as _s
from sentrail.store.sql import SqlTx


class ContainmentRow(msgspec.Struct, frozen=True):
    """One containment action; ``app_id`` is the app it belongs to ('*': tenant-wide)."""

    action_id: str
    tenant_id: str
    kind: str
    target: str
    actor: str
    reason: str
    at: float
    app_id: str = "*"


ALL_APPS = "*"
# Controls on agents and tools bind every app's calls: a key of any app of the tenant sees them.
TENANT_WIDE_KINDS = frozenset(
    {"quarantine", "release", "revoke_grant", "disable_tool", "enable_tool"}
)


def action_visible(row: ContainmentRow, app: str) -> bool:
    """Whether a caller bound to ``app`` sees a containment action: the app's own actions
    (freezing one of its runs, deciding one of its approvals) and the tenant-wide controls.
    An action of another app is not its; nor is a run freeze or an approval record that
    names no app (``*``: made with ``sentrail contain``, or from before schema v5),
    since its run may be another app's. A caller for every app sees the whole tenant."""
    if app == ALL_APPS or row.app_id == app:
        return True
    return row.app_id == ALL_APPS and row.kind in TENANT_WIDE_KINDS


_APPROVAL_COLS = (
    "approval_id, tenant_id, run_id, agent_id, tool, args_sha256, requested_at, expires, "
    "status, decided_by, decided_at, reason, app_id, args_json"
)


def _approval(r: Sequence[Any]) -> Approval:
    return Approval(
        approval_id=_s(r[0], "approvals.approval_id"),
        tenant_id=_s(r[1], "approvals.tenant_id"),
        run_id=_s(r[2], "approvals.run_id"),
        agent_id=_s(r[3], "approvals.agent_id"),
        tool=_s(r[4], "approvals.tool"),
        args_sha256=_s(r[5], "approvals.args_sha256"),
        requested_at=_f(r[6], "approvals.requested_at"),
        expires=_f(r[7], "approvals.expires"),
        status=_s(r[8], "approvals.status"),
        decided_by=_opt_s(r[9], "approvals.decided_by"),
        decided_at=_opt_f(r[10], "approvals.decided_at"),
        reason=_s(r[11], "approvals.reason"),
        app_id=_s(r[12], "approvals.app_id"),
        args_json=_s(r[13], "approvals.args_json"),
    )


class EnforcementRecords:
    tx: SqlTx

    def put_approval(self, a: Approval) -> None:
        self.tx.all(
            f"INSERT INTO approvals ({_APPROVAL_COLS}) VALUES "  # noqa: S608
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING approval_id",
            (
                a.approval_id,
                a.tenant_id,
                a.run_id,
                a.agent_id,
                a.tool,
                a.args_sha256,
                a.requested_at,
                a.expires,
                a.status,
                a.decided_by,
                a.decided_at,
                a.reason,
                a.app_id,
                a.args_json,
            ),
        )

    def get_approval(self, approval_id: str) -> Approval | None:
        rows = self.tx.all(
            f"SELECT {_APPROVAL_COLS} FROM approvals WHERE approval_id = ?",  # noqa: S608
            (approval_id,),
        )
        return _approval(rows[0]) if rows else None

    def find_approval(
        self,
        tenant: str,
        app: str,
        run_id: str,
        tool: str,
        args_sha256: str,
        status: str,
        now: float,
    ) -> Approval | None:
        """The oldest unexpired approval of exactly this call of ``app``'s run in ``status``
        (two apps may use one run id: another app's approval is never this call's)."""
        rows = self.tx.all(
            f"SELECT {_APPROVAL_COLS} FROM approvals WHERE tenant_id = ? AND app_id = ? "  # noqa: S608
            "AND run_id = ? AND tool = ? AND args_sha256 = ? AND status = ? AND expires > ? "
            "ORDER BY requested_at LIMIT 1",
            (tenant, app, run_id, tool, args_sha256, status, now),
        )
        return _approval(rows[0]) if rows else None

    def set_approval_status(
        self, approval_id: str, expected: str, status: str, by: str | None, at: float | None
    ) -> bool:
        """Compare-and-set: only an approval still in ``expected`` changes (single use)."""
        rows = self.tx.all(
            "UPDATE approvals SET status = ?, decided_by = COALESCE(?, decided_by), "
            "decided_at = COALESCE(?, decided_at) WHERE approval_id = ? AND status = ? "
            "RETURNING approval_id",
            (status, by, at, approval_id, expected),
        )
        return bool(rows)

    def list_approvals(
        self, tenant: str | None, status: str | None, limit: int = 500, app: str | None = None
    ) -> list[Approval]:
        """Approvals, oldest first; with ``app``, only that app's (an approval is its run's
        app's; one of a tenant-wide request is seen by tenant-wide callers only)."""
        sql = f"SELECT {_APPROVAL_COLS} FROM approvals WHERE 1 = 1"  # noqa: S608
        params: list[object] = []
        if tenant is not None:
            sql += " AND tenant_id = ?"
            params.append(tenant)
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        if app is not None:
            sql += " AND app_id = ?"
            params.append(app)
        params.append(limit)
        return [_approval(r) for r in self.tx.all(sql + " ORDER BY requested_at LIMIT ?", params)]

    def put_containment(self, c: ContainmentRow) -> None:
        self.tx.all(
            "INSERT INTO containment (action_id, tenant_id, kind, target, actor, reason, at, "
            "app_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING action_id",
            (c.action_id, c.tenant_id, c.kind, c.target, c.actor, c.reason, c.at, c.app_id),
        )

    def containment_log(self, tenant: str | None = None) -> list[ContainmentRow]:
        sql = (
            "SELECT action_id, tenant_id, kind, target, actor, reason, at, app_id FROM containment"
        )
        params: tuple[object, ...] = ()
        if tenant is not None:
            sql += " WHERE tenant_id = ?"
            params = (tenant,)
        return [
            ContainmentRow(
                _s(r[0], "containment.action_id"),
                _s(r[1], "containment.tenant_id"),
                _s(r[2], "containment.kind"),
                _s(r[3], "containment.target"),
                _s(r[4], "containment.actor"),
                _s(r[5], "containment.reason"),
                _f(r[6], "containment.at"),
                _s(r[7], "containment.app_id"),
            )
            for r in self.tx.all(sql + " ORDER BY at, action_id", params)
        ]

    def put_decision(
        self,
        tenant: str,
        decision_id: str,
        app: str,
        run_id: str,
        tool: str,
        outcome: str,
        args_sha256: str,
        at: float,
        body: bytes,
    ) -> None:
        self.tx.all(
            "INSERT INTO decisions (tenant_id, decision_id, app_id, run_id, tool, decision, "
            "args_sha256, created_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "RETURNING decision_id",
            (tenant, decision_id, app, run_id, tool, outcome, args_sha256, at, body),
        )
