"""What a decision point is asked and what it answers (docs/enforcement.md).

An approval is declared in :mod:`sentrail.model.approval` (the store keeps it too)."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable
from typing import Annotated, Any

import msgspec

from sentrail.model.judgement import JudgeAnswer
from sentrail.model.trace import Attestation, ToolInfo


class Outcome(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    APPROVAL_REQUIRED = "approval_required"


class Control(enum.StrEnum):
    """Which control decided (the first that did not allow, else ``policy``)."""

    IDENTITY = "identity"
    CONTAINMENT = "containment"
    CAPABILITY = "capability"
    BOUNDARY = "boundary"
    POLICY = "policy"
    FINDINGS = "findings"
    BUDGET = "budget"
    ATTESTATION = "attestation"
    APPROVAL = "approval"
    ENFORCEMENT_MODE = "enforcement_mode"
    JUDGE = "judge"  # the profile's semantic judge made the decision stricter
    ERROR = "error"


class DecisionRequest(msgspec.Struct, omit_defaults=True):
    """One proposed tool call, with who makes it and in which run."""

    tool: str
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    tenant_id: str = "default"
    app_id: str = "default"  # the app whose run this is (the service pins it to the key's)
    agent_id: str | None = None
    agent_type: str | None = None
    runtime_mode: str | None = None
    run_id: str | None = None
    resource: str | None = None
    environment: str | None = None
    permissions: list[str] = msgspec.field(default_factory=list)
    cost: Annotated[float, msgspec.Meta(ge=0)] = 0.0  # negative would refill a budget
    attestation: Attestation | None = None
    approval_id: str | None = None
    action: str | None = None
    reasoning: str | None = None
    trigger: str | None = None  # what started the run (the user's request), at its start
    # The tools the agent is offered, when the list was (re)read before this call (an MCP
    # gateway's ``tools/list``): recorded on the call's step, as the trace format's ``tools``.
    tools: list[ToolInfo] | None = None


class Decision(msgspec.Struct, omit_defaults=True):
    """The answer. ``signature`` is Ed25519 over :meth:`signed_bytes` by ``key``."""

    decision_id: str
    outcome: Outcome
    control: Control
    explanation: str
    tool: str
    tenant_id: str
    run_id: str
    agent_id: str
    args_sha256: str
    step_index: int
    decided_at: float
    rule_ids: list[str] = msgspec.field(default_factory=list)
    obligations: list[str] = msgspec.field(default_factory=list)
    enforced: bool = True  # False in monitor mode: the call goes ahead regardless
    would_have: Outcome | None = None  # monitor mode: what enforcement would have said
    approval_id: str | None = None
    app_id: str = "default"  # whose run: the decision is logged in that app's run chain
    # The profile's semantic judge's answer about this call, when it was asked.
    judgement: JudgeAnswer | None = None
    key: str = ""
    signature: str = ""

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOW

    def signed_bytes(self) -> bytes:
        body = msgspec.structs.replace(self, signature="")
        return msgspec.json.encode(body)


def decode_decisions(payloads: Iterable[bytes]) -> list[Decision]:
    """Stored ``decision`` events back as decisions; one that no longer decodes (hostile or
    from another version) is left out rather than guessed at."""
    out: list[Decision] = []
    for payload in payloads:
        try:
            out.append(msgspec.json.decode(payload, type=Decision))
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
    return out


def canonical_args(parameters: dict[str, Any]) -> bytes:
    """The arguments in canonical JSON (keys sorted): the bytes an approval binds."""
    return msgspec.json.encode(parameters, order="sorted")


def args_hash(parameters: dict[str, Any]) -> str:
    """SHA-256 of the arguments in canonical JSON (keys sorted): what an approval binds."""
    return hashlib.sha256(canonical_args(parameters)).hexdigest()
