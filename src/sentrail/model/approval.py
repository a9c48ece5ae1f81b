"""An approval: one person's answer to one held tool call, bound to its exact arguments.

Declared once for everyone who handles approvals — the decision point that asks for one
and redeems it, the evidence store's ``approvals`` table that makes it durable and shared
between processes, and the API and CLI that show and decide them.
"""

from __future__ import annotations

import hashlib

import msgspec


class Approval(msgspec.Struct):
    """An approval bound to one run, one tool and the exact arguments, until ``expires``."""

    approval_id: str
    tenant_id: str
    run_id: str
    agent_id: str
    tool: str
    args_sha256: str
    requested_at: float
    expires: float
    status: str = "pending"  # pending | approved | denied | used
    decided_by: str | None = None
    decided_at: float | None = None
    reason: str = ""
    app_id: str = "*"  # the app of the run that asked ('*': tenant-wide)
    # The arguments themselves, in the canonical JSON that ``args_sha256`` hashes, so an
    # approver sees the exact call ('' when larger than MAX_ARGS_JSON: the hash still binds).
    args_json: str = ""


MAX_ARGS_JSON = 64 * 1024


def shown_args(approval: Approval) -> str | None:
    """The approval's arguments when they are recorded and hash to what it binds, else None."""
    if not approval.args_json:
        return None
    digest = hashlib.sha256(approval.args_json.encode()).hexdigest()
    return approval.args_json if digest == approval.args_sha256 else None
