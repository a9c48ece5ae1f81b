"""The responder's summary of one run (``summary.json`` in an evidence bundle).

The evidence bundle proves *what was recorded*; the summary says, in the shape incident
responders expect, *what it amounts to*: who ran (provenance), what was planned, whether
the agent kept to its capabilities and to the policy, what governance concluded and why
(the explanations of :mod:`sentrail.forensics.explain`), and which parts the package holds.
It is built from the same facts as the rest of the bundle and travels inside the signed
manifest, so ``sentrail evidence verify`` covers it like any other member.

A check that could not be made says ``not_evaluated``: missing evidence is never a pass.
The replay diff part (``parts.replay_diff``) is there when the bundle carries a replay
(``sentrail replay --evidence``, :func:`sentrail.forensics.replay.diff_part`); nothing
stands in for it otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from sentrail.forensics.explain import DecisionView, Explanation, explain
from sentrail.model.finding import Category, Finding, RunResult, Severity
from sentrail.model.trace import Run

SUMMARY_FORMAT = "sentrail.evidence-summary/1"
MAX_PLAN_BYTES = 32 * 1024
MAX_EXPLANATIONS = 100
PLAN_TOOLS = frozenset({"agent.plan"})
_NO_BUNDLE = "no policy bundle is recorded for this run: nothing to check against"
_CAPABILITY_RULES = frozenset({"policy.unapproved_tool", "policy.environment"})


def evidence_summary(
    run: Run | None,
    result: RunResult | None,
    decisions: Sequence[DecisionView] = (),
    *,
    run_id: str,
    tenant: str,
    policy_sha256: str | None = None,
    trace_bytes: bytes | None = None,
    parts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary document (JSON-ready). ``run`` or ``result`` may be None when the run's
    payloads were erased or it was never analysed; the affected parts say so."""
    explanations = explain(run, result, decisions)
    findings = result.findings if result is not None else []
    return {
        "format": SUMMARY_FORMAT,
        "trace_id": run_id,
        "provenance": _provenance(run, tenant, policy_sha256),
        "execution_plan": _plan(run, trace_bytes),
        "capability_result": _capability(result, findings, decisions, explanations, policy_sha256),
        "policy_result": _policy(result, findings, explanations, policy_sha256),
        "governance_result": _governance(result, decisions, explanations),
        "parts": parts or {},
    }


def encode_summary(summary: dict[str, Any]) -> bytes:
    return msgspec.json.encode(summary, order="sorted")


def _provenance(run: Run | None, tenant: str, policy_sha256: str | None) -> dict[str, Any]:
    if run is None:
        return {"tenant_id": tenant, "available": False}
    return {
        "agent_id": run.agent_id,
        "agent_type": run.agent_type,
        "tenant_id": run.tenant_id or tenant,
        "store_tenant": tenant,
        "runtime_mode": run.runtime_mode,
        "trigger": run.trigger,
        "started_at": run.started_at,
        "completed_at": run.completed_at,
        "policy_version": run.policy_version,
        "policy_bundle_sha256": policy_sha256,
        "attestation": msgspec.to_builtins(run.attestation) if run.attestation else None,
    }


def _plan(run: Run | None, trace_bytes: bytes | None) -> dict[str, Any] | None:
    """The plan the trace itself declares: a top-level ``execution_plan`` (or ``plan``)
    field of the stored document, else the last ``agent.plan`` call's ``plan`` parameter."""
    if trace_bytes is not None:
        try:
            doc = msgspec.json.decode(trace_bytes)
        except msgspec.DecodeError:
            doc = None
        if isinstance(doc, dict):
            for key in ("execution_plan", "plan"):
                if doc.get(key) is not None:
                    return _bounded_plan(doc[key], f"trace.{key}")
    if run is not None:
        for step in reversed(run.steps):
            call = step.tool_call
            if call is not None and call.tool in PLAN_TOOLS and "plan" in call.parameters:
                where = f"step {step.step_index} {call.tool}"
                return _bounded_plan(call.parameters["plan"], where)
    return None


def _bounded_plan(plan: Any, source: str) -> dict[str, Any]:
    raw = msgspec.json.encode(plan)
    if len(raw) > MAX_PLAN_BYTES:
        return {
            "source": source,
            "truncated": True,
            "text": raw[:MAX_PLAN_BYTES].decode(errors="replace"),
        }
    return {"source": source, "plan": plan}


def _because(explanations: Iterable[Explanation], ids: set[str]) -> list[str]:
    return [e.because for e in explanations if e.finding_id in ids and e.decision_id is None]


def _capability(
    result: RunResult | None,
    findings: Sequence[Finding],
    decisions: Sequence[DecisionView],
    explanations: Sequence[Explanation],
    policy_sha256: str | None,
) -> dict[str, Any]:
    if result is None:
        return {"status": "not_evaluated", "reason": "the run was not analysed"}
    hits = [
        f
        for f in findings
        if f.rule in _CAPABILITY_RULES
        or (f.category is Category.PERMISSION_ESCALATION and f.severity is not Severity.INFO)
    ]
    denied = [
        d
        for d in decisions
        if str(d.control) in ("capability", "boundary") and str(d.outcome) != "allow"
    ]
    if hits or denied:
        status = "fail"
        reasons = _because(explanations, {f.id for f in hits})
        reasons += [d.explanation.split("; ")[0] for d in denied]
        reason = reasons[0] if reasons else "a capability check failed"
    elif policy_sha256 is None and not decisions:
        status, reason = "not_evaluated", _NO_BUNDLE
    else:
        status, reason = "pass", "every call was within the agent's tools and permissions"
    return {
        "status": status,
        "reason": reason,
        "permissions_used": result.permissions_used,
        "permissions_escalated": result.permissions_escalated,
        "violations": [
            {"step_index": f.step_index, "rule": f.rule, "finding_id": f.id} for f in hits
        ],
    }


def _policy(
    result: RunResult | None,
    findings: Sequence[Finding],
    explanations: Sequence[Explanation],
    policy_sha256: str | None,
) -> dict[str, Any]:
    if result is None:
        return {"policy": None, "status": "not_evaluated", "reason": "the run was not analysed"}
    hits = [f for f in findings if f.rule.startswith("policy.rule.")]
    worst = max((f.severity.rank for f in hits), default=0)
    status = {3: "fail", 2: "warn"}.get(worst, "pass")
    if policy_sha256 is None and not hits:
        status = "not_evaluated"
    ranked = sorted(hits, key=lambda f: -f.severity.rank)
    reasons = _because(explanations, {ranked[0].id}) if ranked else []
    reason = reasons[0] if reasons else ("no policy rule held" if status == "pass" else _NO_BUNDLE)
    return {
        "policy": result.policy_name,
        "policy_sha256": policy_sha256,
        "status": status,
        "reason": reason,
        "rules": sorted({f.rule.removeprefix("policy.rule.") for f in hits}),
    }


def _governance(
    result: RunResult | None,
    decisions: Sequence[DecisionView],
    explanations: Sequence[Explanation],
) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for d in decisions:
        counts[str(d.outcome)] = counts.get(str(d.outcome), 0) + 1
    shown = [e for e in explanations if e.decision_id or e.severity != "info"]
    return {
        "outcome": result.verdict.value if result is not None else "not_evaluated",
        "risk_score": result.risk_score if result is not None else None,
        "decisions": counts,
        "explanation": msgspec.to_builtins(shown[:MAX_EXPLANATIONS]),
        "explanations_total": len(shown),
    }
