"""``sentrail approvals list|approve|deny`` and ``sentrail contain ...`` (docs/enforcement.md).

Both act on the evidence store that the decision points use (``--database``), so an
approval given here is seen by the service, hooks and gateways at their next call, and a
containment action within a second.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from sentrail.cli.common import EXIT_FINDINGS, echo_table, fail
from sentrail.cli.store import Database, _open
from sentrail.enforce.persist import StoreApprovals, StoreContainment
from sentrail.enforce.release import release_agent
from sentrail.enforce.state import EnforcementError
from sentrail.engine.config import EngineConfig
from sentrail.errors import SentrailError
from sentrail.model.decode import decode_run
from sentrail.model.trace import Attestation
from sentrail.report.escape import safe_text
from sentrail.runtime.sources import read_document

approvals_app = typer.Typer(help="Approvals of held tool calls.", no_args_is_help=True)
contain_app = typer.Typer(
    help="Containment: quarantine, revoke, disable, freeze.", no_args_is_help=True
)

Tenant = Annotated[str, typer.Option("--tenant", help="Tenant id")]
By = Annotated[str, typer.Option("--by", help="Who does this (recorded)")]
Reason = Annotated[str, typer.Option("--reason", help="Why (recorded)")]


def _when(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@approvals_app.command("list")
def approvals_list(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant")] = None,
    database: Database = None,
) -> None:
    """Pending approvals: id, tenant, run, agent, tool, argument hash, expiry, reason."""
    store = _open(database)
    try:
        pending = StoreApprovals(store).pending(tenant)
    except SentrailError as exc:
        fail(str(exc))
    finally:
        store.close()
    rows = [
        [
            safe_text(a.approval_id),
            safe_text(a.tenant_id),
            safe_text(a.run_id),
            safe_text(a.agent_id),
            safe_text(a.tool),
            f"{a.args_sha256[:16]}…",
            _when(a.expires),
            safe_text(a.reason, limit=200),
        ]
        for a in pending
    ]
    headers = ["APPROVAL ID", "TENANT", "RUN", "AGENT", "TOOL", "ARGS SHA-256", "EXPIRES", "REASON"]
    echo_table(headers, rows, "no pending approvals")


def _decide(
    approval_id: str, tenant: str, approve: bool, by: str, reason: str, db: str | None
) -> None:
    store = _open(db)
    started = time.time()
    try:
        a = StoreApprovals(store).decide(approval_id, tenant, approve, by, reason)
    except (EnforcementError, SentrailError) as exc:
        fail(str(exc))
    finally:
        store.close()
    waited = started - a.requested_at
    typer.echo(
        f"{a.approval_id} {a.status} by {safe_text(by)} "
        f"({safe_text(a.tool)} in run {safe_text(a.run_id)}; requested {waited:.0f} s ago)"
    )


@approvals_app.command("approve")
def approve(
    approval_id: Annotated[str, typer.Argument(help="Approval id (apr_...)")],
    tenant: Tenant,
    by: By,
    reason: Reason = "",
    database: Database = None,
) -> None:
    """Approve one held call: valid only for its run, tool and exact arguments, once."""
    _decide(approval_id, tenant, True, by, reason, database)


@approvals_app.command("deny")
def deny(
    approval_id: Annotated[str, typer.Argument(help="Approval id (apr_...)")],
    tenant: Tenant,
    by: By,
    reason: Reason = "",
    database: Database = None,
) -> None:
    """Refuse one held call."""
    _decide(approval_id, tenant, False, by, reason, database)


def _contain(
    action: str, tenant: str, target: str, by: str, reason: str, db: str | None, **kw: str
) -> None:
    store = _open(db)
    try:
        c = StoreContainment(store)
        fn = getattr(c, action)
        changed = fn(tenant, target, *kw.values(), by=by, reason=reason)
    except (EnforcementError, SentrailError) as exc:
        fail(str(exc))
    finally:
        store.close()
    what = f"{action.replace('_', ' ')} {safe_text(target)}"
    typer.echo(f"{what}: done" if changed else f"{what}: already so (nothing changed)")


@contain_app.command("quarantine")
def quarantine(
    agent: Annotated[str, typer.Argument()],
    tenant: Tenant,
    by: By,
    reason: Reason,
    database: Database = None,
) -> None:
    """Deny every non-read-only call of AGENT."""
    _contain("quarantine", tenant, agent, by, reason, database)


@contain_app.command("freeze-run")
def freeze_run(
    run_id: Annotated[str, typer.Argument()],
    tenant: Tenant,
    by: By,
    reason: Reason,
    database: Database = None,
) -> None:
    """Deny every further call of one run."""
    _contain("freeze_run", tenant, run_id, by, reason, database)


@contain_app.command("revoke-grant")
def revoke_grant(
    agent: Annotated[str, typer.Argument()],
    permission: Annotated[str, typer.Argument()],
    tenant: Tenant,
    by: By,
    reason: Reason,
    database: Database = None,
) -> None:
    """Deny calls of AGENT that use PERMISSION (a glob)."""
    _contain("revoke_grant", tenant, agent, by, reason, database, permission=permission)


def _toggle_tool(
    enable: bool, tool: str, tenant: str, by: str, reason: str, agent: str, db: str | None
) -> None:
    store = _open(db)
    try:
        c = StoreContainment(store)
        toggle = c.enable_tool if enable else c.disable_tool
        changed = toggle(tenant, tool, by=by, reason=reason, agent=agent)
    except (EnforcementError, SentrailError) as exc:
        fail(str(exc))
    finally:
        store.close()
    verb, unchanged = ("enable", "was not disabled") if enable else ("disable", "already so")
    typer.echo(
        f"{verb} {safe_text(tool)} for {safe_text(agent)}: " + ("done" if changed else unchanged)
    )


Agent = Annotated[str, typer.Option("--agent", help="One agent; default: fleet-wide")]


@contain_app.command("disable-tool")
def disable_tool(
    tool: Annotated[str, typer.Argument(help="Tool name or glob")],
    tenant: Tenant,
    by: By,
    reason: Reason,
    agent: Agent = "*",
    database: Database = None,
) -> None:
    """Disable a tool for one agent or for the whole fleet."""
    _toggle_tool(False, tool, tenant, by, reason, agent, database)


@contain_app.command("enable-tool")
def enable_tool(
    tool: Annotated[str, typer.Argument(help="Tool name or glob")],
    tenant: Tenant,
    by: By,
    reason: Reason,
    agent: Agent = "*",
    database: Database = None,
) -> None:
    """Re-enable a disabled tool."""
    _toggle_tool(True, tool, tenant, by, reason, agent, database)


@contain_app.command("release")
def release(
    agent: Annotated[str, typer.Argument()],
    tenant: Tenant,
    by: By,
    reason: Reason,
    attestation: Annotated[Path, typer.Option("--attestation", help="Attestation JSON")],
    policy_version: Annotated[str, typer.Option("--policy-version", help="The agent's policy")],
    canary: Annotated[str, typer.Option("--canary", help="A canary run trace of the agent")],
    policy: Annotated[
        str | None, typer.Option("--policy", help="The current policy bundle")
    ] = None,
    database: Database = None,
) -> None:
    """Lift a quarantine: needs a clean attestation, the current policy and a passing canary."""
    try:
        engine = EngineConfig(policy_path=policy).build()
        att = msgspec.json.decode(attestation.read_bytes(), type=Attestation)
        run = decode_run(read_document(canary))
    except (SentrailError, OSError, msgspec.DecodeError) as exc:
        fail(str(exc))
    store = _open(database)
    try:
        done = release_agent(
            StoreContainment(store),
            engine,
            tenant,
            agent,
            by=by,
            reason=reason,
            attestation=att,
            policy_version=policy_version,
            canary=run,
        )
    except EnforcementError as exc:
        typer.echo(f"FAIL: {safe_text(str(exc), limit=2000)}")
        raise typer.Exit(EXIT_FINDINGS) from None
    except SentrailError as exc:
        fail(str(exc))
    finally:
        store.close()
    typer.echo(
        f"released {safe_text(agent)}" if done else f"{safe_text(agent)} was not quarantined"
    )


@contain_app.command("list")
def contain_list(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant")] = None,
    database: Database = None,
) -> None:
    """The containment log (chain of custody): when, who, what, why."""
    store = _open(database)
    try:
        log = StoreContainment(store).log
    except SentrailError as exc:
        fail(str(exc))
    finally:
        store.close()
    rows = [
        [
            _when(a.at),
            safe_text(a.tenant_id),
            safe_text(a.kind),
            safe_text(a.target),
            safe_text(a.by),
            safe_text(a.reason, limit=300),
        ]
        for a in log
        if tenant is None or a.tenant_id == tenant
    ]
    headers = ["WHEN", "TENANT", "ACTION", "TARGET", "BY", "REASON"]
    echo_table(headers, rows, "no containment actions")
