"""Containment and approvals: the state the decision point consults besides the policy.

Both are in memory here, behind small classes; every change is an :class:`Action` with
who, why and when (the chain of custody), handed to ``on_change`` so that a caller can
make it durable (the evidence store) before it takes effect.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

import msgspec

from sentrail.errors import SentrailError
from sentrail.model.approval import Approval
from sentrail.policy.match import GlobSet


class EnforcementError(SentrailError):
    """A containment or approval action that cannot be done (with the reason)."""


class Action(msgspec.Struct, frozen=True):
    """One containment or approval change, as recorded."""

    kind: str  # quarantine | release | revoke_grant | disable_tool | enable_tool | freeze_run
    # | approval_requested | approved | denied
    tenant_id: str
    target: str  # agent id, tool (with agent or '*'), run id, approval id
    by: str
    reason: str
    at: float
    app_id: str = "*"  # the app it belongs to (a run's freeze); '*': tenant-wide


Recorder = Callable[[Action], None]


class Containment:
    """Quarantined agents, revoked grants, disabled tools, frozen runs (per tenant)."""

    def __init__(self, on_change: Recorder | None = None) -> None:
        self.on_change = on_change or (lambda a: None)
        self.quarantined: dict[tuple[str, str], Action] = {}
        self.revoked: dict[tuple[str, str], set[str]] = {}
        self.disabled: dict[tuple[str, str], set[str]] = {}  # (tenant, agent or '*') -> tools
        self.frozen: dict[tuple[str, str, str], Action] = {}  # (tenant, app or '*', run)
        self.log: list[Action] = []
        self._lock = threading.Lock()

    def _do(
        self, kind: str, tenant: str, target: str, by: str, reason: str, app: str = "*"
    ) -> Action:
        if not by.strip() or not reason.strip():
            raise EnforcementError("containment needs who (by) and why (reason)")
        action = Action(kind, tenant, target, by, reason, time.time(), app)
        self.on_change(action)  # durable first: a failure leaves the state unchanged
        self.log.append(action)
        return action

    def quarantine(self, tenant: str, agent: str, by: str, reason: str) -> bool:
        """All non-read-only calls of ``agent`` are denied. False if it already was."""
        with self._lock:
            if (tenant, agent) in self.quarantined:
                return False
            self.quarantined[(tenant, agent)] = self._do("quarantine", tenant, agent, by, reason)
            return True

    def revoke_grant(self, tenant: str, agent: str, permission: str, by: str, reason: str) -> bool:
        with self._lock:
            held = self.revoked.setdefault((tenant, agent), set())
            if permission in held:
                return False
            self._do("revoke_grant", tenant, f"{agent} {permission}", by, reason)
            held.add(permission)
            return True

    def disable_tool(self, tenant: str, tool: str, by: str, reason: str, agent: str = "*") -> bool:
        """Disable ``tool`` (a glob) for one agent or, with ``agent='*'``, fleet-wide."""
        with self._lock:
            held = self.disabled.setdefault((tenant, agent), set())
            if tool in held:
                return False
            self._do("disable_tool", tenant, f"{agent} {tool}", by, reason)
            held.add(tool)
            return True

    def enable_tool(self, tenant: str, tool: str, by: str, reason: str, agent: str = "*") -> bool:
        with self._lock:
            held = self.disabled.get((tenant, agent), set())
            if tool not in held:
                return False
            self._do("enable_tool", tenant, f"{agent} {tool}", by, reason)
            held.discard(tool)
            return True

    def freeze_run(self, tenant: str, run_id: str, by: str, reason: str, app: str = "*") -> bool:
        """Every further call of the run is denied: the run ``run_id`` of ``app`` (two apps
        may use one run id: they are two runs), or with ``app='*'`` that id in every app."""
        with self._lock:
            if (tenant, app, run_id) in self.frozen:
                return False
            action = self._do("freeze_run", tenant, run_id, by, reason, app)
            self.frozen[(tenant, app, run_id)] = action
            return True

    def release(self, tenant: str, agent: str, by: str, reason: str) -> bool:
        """Lift a quarantine (the caller has checked the re-enable conditions)."""
        with self._lock:
            if (tenant, agent) not in self.quarantined:
                return False
            self._do("release", tenant, agent, by, reason)
            del self.quarantined[(tenant, agent)]
            return True

    # -- what the decision point asks -----------------------------------------------------
    def is_quarantined(self, tenant: str, agent: str) -> Action | None:
        return self.quarantined.get((tenant, agent))

    def is_frozen(self, tenant: str, run_id: str, app: str = "default") -> Action | None:
        """The freeze of the run ``run_id`` of ``app`` (its own, or one of every app)."""
        return self.frozen.get((tenant, app, run_id)) or self.frozen.get((tenant, "*", run_id))

    def revoked_for(self, tenant: str, agent: str) -> GlobSet | None:
        held = self.revoked.get((tenant, agent))
        return GlobSet(held) if held else None

    def tool_disabled(self, tenant: str, agent: str, tool: str) -> str | None:
        """The glob that disables ``tool`` for ``agent`` (or fleet-wide), if any."""
        for key in ((tenant, agent), (tenant, "*")):
            for pattern in self.disabled.get(key, ()):
                if tool in GlobSet([pattern]):
                    return f"{key[1]} {pattern}"
        return None


def redeem_problem(
    approval_id: str,
    a: Approval | None,
    tenant: str,
    run_id: str,
    tool: str,
    args_sha256: str,
    now: float,
    app: str = "default",
) -> str:
    """Why approval ``a`` cannot be used for this exact call of ``app``'s run ("" when it
    can): an approval is its app's; another app's run of the same id is another run."""
    if a is None or a.tenant_id != tenant or a.app_id != app:
        return f"no approval {approval_id!r}"
    if a.status != "approved":
        return f"approval {approval_id} is {a.status}"
    if a.expires <= now:
        return f"approval {approval_id} expired"
    if (a.run_id, a.tool) != (run_id, tool):
        return f"approval {approval_id} is for {a.tool} in run {a.run_id}"
    if a.args_sha256 != args_sha256:
        return f"approval {approval_id} was given for different arguments"
    return ""


class ApprovalBook:
    """Approvals bound to the exact arguments: another argument set is not approved."""

    def __init__(self, ttl: float = 3600.0, on_change: Recorder | None = None) -> None:
        self.ttl = ttl
        self.on_change = on_change or (lambda a: None)
        self.approvals: dict[str, Approval] = {}
        self._open: dict[tuple[str, ...], Approval] = {}  # the pending one per call
        # Every approval of each call, in the order requested: what approved_for looks in
        # (a decision point asks on every call that needs an approval; a scan of all the
        # approvals ever requested grew with them).
        self._by_call: dict[tuple[str, ...], list[Approval]] = {}
        self._lock = threading.Lock()

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
        """A pending approval for this exact call (the same pending one if asked again)."""
        now = time.time()
        key = (tenant, app, run_id, tool, args_sha256)
        with self._lock:
            open_ = self._open.get(key)
            if open_ is not None and open_.status == "pending" and open_.expires > now:
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
                reason=reason,
                app_id=app,
                args_json=args_json,
            )
            self.on_change(
                Action("approval_requested", tenant, approval.approval_id, agent, reason, now)
            )
            self.approvals[approval.approval_id] = approval
            self._open[key] = approval
            self._by_call.setdefault(key, []).append(approval)
            return approval

    def decide(
        self, approval_id: str, tenant: str, approve: bool, by: str, reason: str
    ) -> Approval:
        now = time.time()
        with self._lock:
            a = self.approvals.get(approval_id)
            if a is None or a.tenant_id != tenant:
                raise EnforcementError(f"no approval {approval_id!r}")
            if a.status != "pending":
                raise EnforcementError(f"approval {approval_id} is already {a.status}")
            if a.expires <= now:
                raise EnforcementError(f"approval {approval_id} expired")
            if not by.strip():
                raise EnforcementError("an approver identity is required")
            kind = "approved" if approve else "denied"
            self.on_change(Action(kind, tenant, approval_id, by, reason, now))
            a.status, a.decided_by, a.decided_at = kind, by, now
            return a

    def redeem(
        self,
        approval_id: str,
        tenant: str,
        run_id: str,
        tool: str,
        args_sha256: str,
        app: str = "default",
    ) -> tuple[Approval | None, str]:
        """Use an approval for this exact call: (approval, "") or (None, why not)."""
        with self._lock:
            a = self.approvals.get(approval_id)
            now = time.time()
            why = redeem_problem(approval_id, a, tenant, run_id, tool, args_sha256, now, app)
            if why or a is None:
                return None, why
            a.status = "used"
            return a, ""

    def approved_for(
        self, tenant: str, run_id: str, tool: str, args_sha256: str, app: str = "default"
    ) -> str | None:
        """The id of an approved, unused, unexpired approval of exactly this call."""
        now = time.time()
        with self._lock:
            for a in self._by_call.get((tenant, app, run_id, tool, args_sha256), ()):
                if a.status == "approved" and a.expires > now:
                    return a.approval_id
        return None

    def pending(self, tenant: str | None = None) -> list[Approval]:
        now = time.time()
        return [
            a
            for a in self.approvals.values()
            if a.status == "pending" and a.expires > now and tenant in (None, a.tenant_id)
        ]
