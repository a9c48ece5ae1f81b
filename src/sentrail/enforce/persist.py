"""Enforcement state in the evidence store, shared by every process that uses it.

- :class:`StoreApprovals` — approvals in the ``approvals`` table: a service, a hook and the
  ``sentrail approvals`` CLI see the same ones; redeeming is a compare-and-set, so an
  approval is used once even by racing processes.
- :class:`StoreContainment` — containment actions appended to the ``containment`` table
  (who, why, when) before they take effect; the current state is the replay of that log,
  refreshed from the table at most every ``refresh`` seconds.
- :func:`store_recorder` — records each signed decision before the answer: as an event
  of kind ``decision`` in the run's hash chain (the tamper-evident log) and as a row of
  the ``decisions`` table. If it fails, the decision point denies.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import msgspec

from sentrail.enforce.model import Decision
from sentrail.enforce.state import (
    Action,
    ApprovalBook,
    Containment,
    EnforcementError,
    redeem_problem,
)
from sentrail.model.approval import Approval
from sentrail.store.base import NewEvent
from sentrail.store.core import LogStore
from sentrail.store.enforcement_records import ContainmentRow
from sentrail.store.records import records


class StoreApprovals(ApprovalBook):
    def __init__(self, store: LogStore, ttl: float = 3600.0) -> None:
        super().__init__(ttl)
        self.store = store

    def request(
        self,
        tenant: str,
        run_id: str,
        agent: str,
        tool: str,
        args_sha256: str,
        reason: str,
        app: str = "*",
        args_json: str = "",
    ) -> Approval:
        now = time.time()
        with records(self.store, write=True) as rtx:
            open_ = rtx.find_approval(tenant, app, run_id, tool, args_sha256, "pending", now)
            if open_ is not None:
                return open_
            approval = Approval(
                approval_id=f"apr_{secrets.token_hex(8)}",
                tenant_id=tenant,
                run_id=run_id,
                agent_id=agent,
                tool=tool,
                args_sha256=args_sha256,
                requested_at=now,
                expires=now + self.ttl,
                reason=reason[:2000],
                app_id=app,
                args_json=args_json,
            )
            rtx.put_approval(approval)
        return approval

    def decide(
        self, approval_id: str, tenant: str, approve: bool, by: str, reason: str
    ) -> Approval:
        if not by.strip():
            raise EnforcementError("an approver identity is required")
        now = time.time()
        status = "approved" if approve else "denied"
        with records(self.store, write=True) as rtx:
            row = rtx.get_approval(approval_id)
            if row is None or row.tenant_id != tenant:
                raise EnforcementError(f"no approval {approval_id!r}")
            if row.status != "pending":
                raise EnforcementError(f"approval {approval_id} is already {row.status}")
            if row.expires <= now:
                raise EnforcementError(f"approval {approval_id} expired")
            if not rtx.set_approval_status(approval_id, "pending", status, by, now):
                raise EnforcementError(f"approval {approval_id} changed meanwhile")
            action = Action(status, tenant, approval_id, by, reason, now, row.app_id)
            rtx.put_containment(_action_row(action))
            row = rtx.get_approval(approval_id)
        assert row is not None
        return row

    def redeem(
        self,
        approval_id: str,
        tenant: str,
        run_id: str,
        tool: str,
        args_sha256: str,
        app: str = "default",
    ) -> tuple[Approval | None, str]:
        now = time.time()
        with records(self.store, write=True) as rtx:
            row = rtx.get_approval(approval_id)
            why = redeem_problem(approval_id, row, tenant, run_id, tool, args_sha256, now, app)
            if why or row is None:
                return None, why
            if not rtx.set_approval_status(approval_id, "approved", "used", None, None):
                return None, f"approval {approval_id} was used meanwhile"
        row.status = "used"
        return row, ""

    def approved_for(
        self, tenant: str, run_id: str, tool: str, args_sha256: str, app: str = "default"
    ) -> str | None:
        with records(self.store) as rtx:
            now = time.time()
            row = rtx.find_approval(tenant, app, run_id, tool, args_sha256, "approved", now)
        return row.approval_id if row is not None else None

    def pending(self, tenant: str | None = None, app: str | None = None) -> list[Approval]:
        """Pending approvals (of ``app`` only, when given: see ``list_approvals``)."""
        now = time.time()
        with records(self.store) as rtx:
            rows = rtx.list_approvals(tenant, "pending", app=app)
        return [r for r in rows if r.expires > now]


def _action_row(a: Action) -> ContainmentRow:
    return ContainmentRow(
        f"act_{secrets.token_hex(8)}",
        a.tenant_id,
        a.kind,
        a.target,
        a.by,
        a.reason,
        a.at,
        a.app_id,
    )


class StoreContainment(Containment):
    """Containment whose actions are durable first, and visible to every process."""

    def __init__(self, store: LogStore, refresh: float = 1.0) -> None:
        super().__init__(on_change=self._persist)
        self.store = store
        self.refresh = refresh
        self._loaded_at = float("-inf")
        self._seen = 0
        self.reload()

    def _persist(self, action: Action) -> None:
        with records(self.store, write=True) as rtx:
            rtx.put_containment(_action_row(action))
        self._seen += 1

    def reload(self) -> None:
        """Rebuild the state from the durable log (every process converges on it)."""
        with records(self.store) as rtx:
            log = rtx.containment_log()
        fresh = Containment()
        for row in log:
            _apply(fresh, row)
        with self._lock:
            self.quarantined, self.revoked = fresh.quarantined, fresh.revoked
            self.disabled, self.frozen = fresh.disabled, fresh.frozen
            self.log = [
                Action(r.kind, r.tenant_id, r.target, r.actor, r.reason, r.at, r.app_id)
                for r in log
            ]
        self._seen = len(log)
        self._loaded_at = time.monotonic()

    def _maybe_reload(self) -> None:
        if time.monotonic() - self._loaded_at >= self.refresh:
            self.reload()

    def is_quarantined(self, tenant: str, agent: str) -> Action | None:
        self._maybe_reload()
        return super().is_quarantined(tenant, agent)

    def is_frozen(self, tenant: str, run_id: str, app: str = "default") -> Action | None:
        self._maybe_reload()
        return super().is_frozen(tenant, run_id, app)


def _apply(c: Containment, row: ContainmentRow) -> None:
    """Replay one logged action into ``c`` (no recording: it is already durable)."""
    action = Action(row.kind, row.tenant_id, row.target, row.actor, row.reason, row.at, row.app_id)
    t = row.tenant_id
    if row.kind == "quarantine":
        c.quarantined[(t, row.target)] = action
    elif row.kind == "release":
        c.quarantined.pop((t, row.target), None)
    elif row.kind == "freeze_run":
        c.frozen[(t, row.app_id or "*", row.target)] = action
    elif row.kind in ("revoke_grant", "disable_tool", "enable_tool"):
        agent, _, item = row.target.partition(" ")
        if row.kind == "revoke_grant":
            c.revoked.setdefault((t, agent), set()).add(item)
        elif row.kind == "disable_tool":
            c.disabled.setdefault((t, agent), set()).add(item)
        else:
            c.disabled.get((t, agent), set()).discard(item)


def store_recorder(store: LogStore, app: str = "default") -> Callable[[Decision], None]:
    """Record a decision in the run's chain and the decisions table (log before act)."""

    def record(d: Decision) -> None:
        body = msgspec.json.encode(d)
        run_id = d.run_id or f"adhoc:{d.agent_id or '-'}"
        run_app = d.app_id or app
        store.append([NewEvent(d.tenant_id, run_app, run_id, d.decision_id, "decision", body)])
        with records(store, write=True) as rtx:
            rtx.put_decision(
                d.tenant_id,
                d.decision_id,
                run_app,
                run_id,
                d.tool,
                d.outcome.value,
                d.args_sha256,
                d.decided_at,
                body,
            )

    return record
