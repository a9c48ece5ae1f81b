"""Findings, verdicts and the per-run result of analysis."""

from __future__ import annotations

import enum
from typing import Any

import msgspec


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    @property
    def label(self) -> str:
        return self.value

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r} (info, warning, critical)") from None


_SEVERITY_RANK = {Severity.INFO: 1, Severity.WARNING: 2, Severity.CRITICAL: 3}


class Category(enum.StrEnum):
    PERMISSION_ESCALATION = "permission_escalation"
    UNUSUAL_SEQUENCE = "unusual_sequence"
    EXCESSIVE_RETRIES = "excessive_retries"
    DATA_EXFILTRATION = "data_exfiltration"
    POLICY_VIOLATION = "policy_violation"
    UNTRUSTED_INSTRUCTION = "untrusted_instruction"
    TAINTED_ACTION = "tainted_action"
    MISSING_TELEMETRY = "missing_telemetry"
    BEHAVIOURAL_CORRELATION = "behavioural_correlation"
    ATTESTATION = "attestation"


class Verdict(enum.StrEnum):
    ALLOWED = "allowed"
    SUSPICIOUS = "suspicious"
    UNAUTHORIZED = "unauthorized"


class Finding(msgspec.Struct, omit_defaults=True):
    """One judgement about one step (or the whole run when ``step_index`` is None).

    ``id`` is deterministic (run, rule, step, key) so that the same finding produced by a
    batch analysis and by a live stream is the same finding.
    """

    id: str
    rule: str
    category: Category
    severity: Severity
    step_index: int | None
    message: str
    evidence: dict[str, Any] = msgspec.field(default_factory=dict)
    tags: list[str] = msgspec.field(default_factory=list)


class RiskContribution(msgspec.Struct):
    """One line of the explanation of a risk score."""

    reason: str
    points: int


class PolicyCheck(msgspec.Struct):
    """A ``[PASS]``/``[WARN]``/``[FAIL]`` line of the behavioural-policy section."""

    status: str
    text: str


class RunResult(msgspec.Struct, omit_defaults=True):
    """What the engine concludes about one run."""

    run_id: str
    agent_id: str
    verdict: Verdict
    risk_score: int
    findings: list[Finding]
    risk_contributions: list[RiskContribution] = msgspec.field(default_factory=list)
    policy_checks: list[PolicyCheck] = msgspec.field(default_factory=list)
    suppressed: list[Finding] = msgspec.field(default_factory=list)
    steps: int = 0
    status: str | None = None
    duration_s: float | None = None
    permissions_baseline: list[str] = msgspec.field(default_factory=list)
    permissions_used: list[str] = msgspec.field(default_factory=list)
    permissions_escalated: list[str] = msgspec.field(default_factory=list)
    policy_name: str | None = None

    @property
    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=None)
