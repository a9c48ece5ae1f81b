"""Policy bundle schema (see docs/policy.md). Plain msgspec structs, validated on load."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Literal

import msgspec


class RiskClass(enum.StrEnum):
    READ_ONLY = "read_only"
    LOW_RISK_WRITE = "low_risk_write"
    SENSITIVE_WRITE = "sensitive_write"
    DESTRUCTIVE = "destructive"
    PRIVILEGED_ADMIN = "privileged_admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def is_write(self) -> bool:
        return self is not RiskClass.READ_ONLY


_RANK = {
    RiskClass.READ_ONLY: 0,
    RiskClass.LOW_RISK_WRITE: 1,
    RiskClass.SENSITIVE_WRITE: 2,
    RiskClass.DESTRUCTIVE: 3,
    RiskClass.PRIVILEGED_ADMIN: 4,
}


class Strict(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Policy files are written by people: a misspelt key is an error, not ignored."""


class EtlAllowance(Strict):
    destination: str
    reason: str = ""


class ExfiltrationLimits(Strict):
    large_read_bytes: int = 20_000
    sensitive_permissions: list[str] = msgspec.field(
        default_factory=lambda: ["secrets:*", "*:secret*", "credentials:*", "pii:*", "*:pii*"]
    )


class Grant(Strict):
    """A permission granted beyond the boundary until a moment (time-bound grant)."""

    permission: str
    until: dt.datetime
    reason: str = ""


class Budgets(Strict):
    """Per-run and per-minute limits; None = unlimited."""

    calls_per_run: int | None = None
    writes_per_run: int | None = None
    cost_per_run: float | None = None
    calls_per_minute: int | None = None


class AttestationPolicy(Strict):
    """Allowed values for high-risk actions (sensitive writes and above); None = any."""

    image_digests: list[str] | None = None
    model_ids: list[str] | None = None
    policy_versions: list[str] | None = None
    tool_registry_versions: list[str] | None = None


class AutoResponse(Strict):
    """Contain automatically when a finding matches (rule glob, category, severity)."""

    action: Literal["freeze_run", "quarantine"]
    rule: str = "*"
    category: str | None = None
    min_severity: Literal["info", "warning", "critical"] = "critical"


class JudgePolicy(Strict):
    """The semantic judge on the decision point (docs/enforcement.md, "A semantic judge
    on the decision point"). Off unless a profile's ``enforcement`` has this block. The
    judge can only make a decision stricter; it is never asked about a deny."""

    endpoint: Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s]+$", max_length=2048)]
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    # The NAME of the environment variable that holds the API key (never the key).
    api_key_env: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")] = (
        "SENTRAIL_JUDGE_API_KEY"
    )
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=30)] = 0.5
    # Which calls the judge is asked about (each level includes the ones before it):
    # approval_required: calls the rules hold for an approval; ambiguous: also allowed
    # calls in a run where the rules found a warning or worse; writes: also every allowed
    # call that may write; always: every call the rules do not deny.
    ask_when: Literal["approval_required", "ambiguous", "writes", "always"] = "ambiguous"
    # What a "suspicious" answer makes of the call ("unauthorized" is always a deny).
    on_suspicious: Literal["approval_required", "deny"] = "approval_required"
    # A timeout, an error, a malformed reply, a spent budget or an "unsure" answer: the
    # rules' decision stands (recorded), or the call is held for approval, or denied.
    on_failure: Literal["rules", "approval_required", "deny"] = "rules"
    calls_per_run: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 20
    calls_per_hour: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 600
    cache_size: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 1024


class Enforcement(Strict):
    """How the decision point treats an agent (docs/enforcement.md)."""

    mode: Literal["enforce", "monitor"] = "enforce"
    # Unknown tool or missing identity on a non-read-only call, and any error or timeout.
    on_unknown: Literal["deny", "approval_required"] = "deny"
    on_escalation: Literal["deny", "approval_required"] = "approval_required"
    approval_for: list[RiskClass] = msgspec.field(
        default_factory=lambda: [RiskClass.DESTRUCTIVE, RiskClass.PRIVILEGED_ADMIN]
    )
    write_scopes: list[str] | None = None  # resources a write may target (globs)
    grants: list[Grant] = msgspec.field(default_factory=list)
    budgets: Budgets = msgspec.field(default_factory=Budgets)
    attestation: AttestationPolicy | None = None
    auto_contain: list[AutoResponse] = msgspec.field(default_factory=list)
    judge: JudgePolicy | None = None  # off by default


class AgentProfile(Strict):
    id: str
    name: str = ""
    permission_boundary: list[str] | None = None
    approved_tools: list[str] | None = None
    trusted_networks: list[str] = msgspec.field(default_factory=list)
    trusted_domains: list[str] = msgspec.field(default_factory=list)
    environments: list[str] | None = None
    retry_threshold: int = 3
    exfiltration: ExfiltrationLimits = msgspec.field(default_factory=ExfiltrationLimits)
    etl_allowances: list[EtlAllowance] = msgspec.field(default_factory=list)
    # Triggers from an untrusted channel (globs over the trace's trigger_source or the
    # trigger text, e.g. "email:*"): their task text is scanned like a tool result.
    untrusted_triggers: list[str] = msgspec.field(default_factory=list)
    enforcement: Enforcement = msgspec.field(default_factory=Enforcement)


class ToolEntry(Strict):
    name: str
    risk: RiskClass
    description: str = ""


class RuleExamples(Strict):
    must_fire: list[str] = msgspec.field(default_factory=list)
    must_not_fire: list[str] = msgspec.field(default_factory=list)


class Rule(Strict):
    id: str
    condition: str
    description: str = ""
    severity: str = "warning"
    tools: list[str] | None = None
    agents: list[str] | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    examples: RuleExamples | None = None


class ActionPattern(Strict):
    """One entry of the dangerous-actions rule pack (:mod:`sentrail.policy.dangerous`)."""

    id: str
    pattern: str = ""
    description: str = ""
    severity: str = "critical"
    scope: Literal["arguments", "outgoing", "tool"] = "arguments"
    hints: list[str] = msgspec.field(default_factory=list)
    requested_words: list[str] = msgspec.field(default_factory=list)
    enabled: bool = True


class Suppression(Strict):
    """An owned, expiring exception to a rule: findings it matches are kept aside as
    suppressed (with who allowed it and why), not reported. A record, not an error."""

    rule: str
    owner: str
    reason: str
    expires: dt.date
    agent: str = "*"
    tool: str = "*"


class PolicyBundle(Strict):
    version: int = 1
    name: str = "default"
    description: str = ""
    agents: list[AgentProfile] = msgspec.field(default_factory=list)
    tools: list[ToolEntry] = msgspec.field(default_factory=list)
    rules: list[Rule] = msgspec.field(default_factory=list)
    exceptions: list[Suppression] = msgspec.field(default_factory=list)
    dangerous_actions: list[ActionPattern] = msgspec.field(default_factory=list)
    default_profile: AgentProfile | None = None
