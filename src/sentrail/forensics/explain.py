"""Why a step was blocked, held, modified or flagged: explanations built from facts only.

An explanation is assembled, never generated: every part is read from a finding's evidence,
a decision's recorded fields, the policy rule's own condition or the trace. Nothing here
guesses; a fact the evidence does not hold is left out rather than made up.

1. Every finding explains itself: the control that raised it (a policy rule, the agent
   profile's capabilities, its permission boundary, attestation, or a detector), the rule
   id and its condition (the CEL expression for a policy rule), the concrete values that
   matched, and for a tainted value the step and field it came from.
2. Every decision that did not simply allow explains itself: ``blocked`` (deny, enforced),
   ``held`` (approval required), ``modified`` (an approval let a held call through, or
   monitor mode let a call go that enforcement would have stopped). The deciding control
   and rule come from the decision; the findings of the same step that it acted on lend
   their matched values and sources.
3. The chain (``--explain``) adds what the one-line form leaves out: every reason the
   decision recorded, the injected instruction behind a tainted value, and what the finding
   added to the run's verdict.

Decisions are read through :class:`DecisionView`, the fields of
:class:`sentrail.enforce.model.Decision`, so the same code explains a live decision, a
stored one and a replayed one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import msgspec

from sentrail.forensics.conditions import condition_of
from sentrail.model.finding import Category, Finding, RunResult
from sentrail.model.trace import Run, Step

# The controls an explanation names (docs/forensics.md).
CONTROLS = (
    "identity",
    "containment",
    "capability",
    "boundary",
    "budget",
    "attestation",
    "policy_rule",
    "approval",
    "detector",
    "enforcement_mode",
    "judge",
    "error",
)
# Evidence keys that say how a finding was made, not what matched.
_META = frozenset({"suppressed_by", "condition", "rule_id", "values", "injection", "excerpt"})
MAX_MATCHED = 12
MAX_VALUE = 200


class DecisionView(Protocol):
    """What an explanation reads from a decision (a :class:`~sentrail.enforce.model.Decision`)."""

    @property
    def decision_id(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def control(self) -> str: ...
    @property
    def explanation(self) -> str: ...
    @property
    def tool(self) -> str: ...
    @property
    def step_index(self) -> int: ...
    @property
    def rule_ids(self) -> Sequence[str]: ...
    @property
    def enforced(self) -> bool: ...
    @property
    def would_have(self) -> str | None: ...
    @property
    def approval_id(self) -> str | None: ...


class Matched(msgspec.Struct, frozen=True):
    """One concrete value that matched: ``name`` is where it was read (``step.environment``,
    ``parameter``, ``permission``)."""

    name: str
    value: Any


class ValueSource(msgspec.Struct, frozen=True, omit_defaults=True):
    """Where a tainted value came from: the step whose result first held it, and the field."""

    step_index: int
    field: str
    tool: str | None = None
    injected: bool = False
    instruction: str | None = None  # the instruction injected in that result, if any


class Explanation(msgspec.Struct, omit_defaults=True):
    """Why one step was blocked, held, modified or flagged (docs/forensics.md)."""

    step_index: int | None
    outcome: str  # blocked | held | modified | flagged
    control: str  # one of CONTROLS
    rule_id: str
    because: str  # one plain sentence
    tool: str | None = None
    severity: str | None = None
    condition: str = ""
    matched: list[Matched] = msgspec.field(default_factory=list)
    source: ValueSource | None = None
    finding_id: str | None = None
    decision_id: str | None = None
    findings: list[str] = msgspec.field(default_factory=list)  # a decision's findings
    chain: list[str] = msgspec.field(default_factory=list)


def explain(
    run: Run | None, result: RunResult | None, decisions: Iterable[DecisionView] = ()
) -> list[Explanation]:
    """The explanations of a run: its decisions that did not simply allow, then its findings,
    in step order (run-level findings last). ``run`` (the trace) names tools and the source
    steps of tainted values; without it those names are left out. Without ``result`` (a run
    never analysed: the decision point's decisions only, as ``mcp-proxy`` records them) the
    decisions are still explained."""
    steps = _steps(run)
    findings = result.findings if result is not None else []
    by_finding = {f.id: _finding(f, findings, steps, result) for f in findings}
    out = [e for d in decisions if (e := _decision(d, findings, by_finding)) is not None]
    out.extend(by_finding.values())
    out.sort(
        key=lambda e: (
            e.step_index is None,
            e.step_index or 0,
            e.decision_id is None,
            -_RANK.get(e.severity or "", 0),
        )
    )
    return out


_RANK = {"critical": 3, "warning": 2, "info": 1}


def explain_finding(
    f: Finding, run: Run | None = None, findings: Sequence[Finding] = ()
) -> Explanation:
    """One finding's explanation without its run's verdict (``findings``: the run's other
    findings, where the source of a tainted value may have been flagged)."""
    return _finding(f, findings, _steps(run), None)


def _steps(run: Run | None) -> dict[int, Step]:
    return {s.step_index: s for s in run.steps} if run is not None else {}


def by_finding(explanations: Iterable[Explanation]) -> dict[str, Explanation]:
    """The explanations of findings, by finding id (for a renderer that lists findings)."""
    return {e.finding_id: e for e in explanations if e.finding_id and e.decision_id is None}


# -- findings ---------------------------------------------------------------------------------
def control_of(f: Finding) -> str:
    """The control a finding stands for."""
    if f.rule.startswith("policy.rule."):
        return "policy_rule"
    if f.rule in ("policy.unapproved_tool", "policy.environment"):
        return "capability"
    if f.category is Category.PERMISSION_ESCALATION:
        return "boundary"
    if f.category is Category.ATTESTATION:
        return "attestation"
    return "detector"


def _finding(
    f: Finding, findings: Sequence[Finding], steps: dict[int, Step], result: RunResult | None
) -> Explanation:
    ev = f.evidence
    control = control_of(f)
    condition = str(ev.get("condition") or "") or condition_of(f.rule)
    rule_id = f.rule
    matched = _matched(ev)
    source = _source(ev, findings, steps)
    tool = ev.get("tool") if isinstance(ev.get("tool"), str) else _tool(steps, f.step_index)
    because = _because(f, control, rule_id, condition, matched, source)
    e = Explanation(
        step_index=f.step_index,
        outcome="flagged",
        control=control,
        rule_id=rule_id,
        because=because,
        tool=tool,
        severity=f.severity.value,
        condition=condition,
        matched=matched,
        source=source,
        finding_id=f.id,
    )
    e.chain = _finding_chain(e, f, result)
    return e


def _matched(ev: dict[str, Any]) -> list[Matched]:
    out: list[Matched] = []
    values = ev.get("values")
    if isinstance(values, dict):  # a policy rule: the variables its condition read
        for var, fields in values.items():
            if isinstance(fields, dict):
                out.extend(Matched(f"{var}.{k}", _short(v)) for k, v in fields.items())
            else:
                out.append(Matched(str(var), _short(fields)))
    skip = _META | ({"tool", "status"} if isinstance(values, dict) else set())
    for k, v in ev.items():
        if k in skip or k.startswith("source_") or v is None or v == [] or v == "":
            continue
        out.append(Matched(k, _short(v)))
    return out[:MAX_MATCHED]


def _short(value: Any) -> Any:
    if isinstance(value, str):
        return value[:MAX_VALUE]
    if isinstance(value, list):
        return [_short(v) for v in value[:10]]
    if isinstance(value, dict):
        return {str(k)[:MAX_VALUE]: _short(v) for k, v in list(value.items())[:10]}
    return value


def _source(
    ev: dict[str, Any], findings: Sequence[Finding], steps: dict[int, Step]
) -> ValueSource | None:
    """The source of a tainted (or exfiltrated) value, from the finding's evidence."""
    step = ev.get("source_step")
    if not isinstance(step, int) or isinstance(step, bool):
        return None
    field = ev.get("source_path")
    injected = bool(ev.get("injection"))
    instruction = ev.get("excerpt") if isinstance(ev.get("excerpt"), str) else None
    for f in findings:
        if f.category is Category.UNTRUSTED_INSTRUCTION and f.step_index == step:
            injected = True
            instruction = instruction or _text(f.evidence.get("excerpt"))
            field = field or _text(f.evidence.get("path"))
    tool = ev.get("source_tool")
    return ValueSource(
        step_index=step,
        field=field if isinstance(field, str) and field else "result",
        tool=tool if isinstance(tool, str) else _tool(steps, step),
        injected=injected,
        instruction=instruction[:MAX_VALUE] if instruction else None,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _tool(steps: dict[int, Step], index: int | None) -> str | None:
    step = steps.get(index) if index is not None else None
    return step.tool_call.tool if step is not None and step.tool_call is not None else None


def _pairs(matched: Sequence[Matched], limit: int = 4) -> str:
    return ", ".join(f"{m.name} = {_render(m.value)}" for m in matched[:limit])


def _render(value: Any) -> str:
    if isinstance(value, str):
        return repr(value[:80])
    return msgspec.json.encode(value).decode()[:120]


def _because(
    f: Finding,
    control: str,
    rule_id: str,
    condition: str,
    matched: Sequence[Matched],
    source: ValueSource | None,
) -> str:
    ev = f.evidence
    if control == "policy_rule":
        return f"policy rule {ev.get('rule_id') or rule_id} held: {condition}" + (
            f" (with {_pairs(matched)})" if matched else ""
        )
    if f.rule == "policy.unapproved_tool":
        return f"{ev.get('tool')} is not on the approved tools of profile {ev.get('profile')}"
    if f.rule == "policy.environment":
        return f"environment {ev.get('environment')} is outside the profile's environments"
    if control == "boundary" and "permission" in ev:
        where = ev.get("boundary_source") or "boundary"
        extra = " and the trace lists it as denied" if ev.get("denied") else ""
        if ev.get("approval_id"):
            extra = f", approved by {ev.get('approval_id')}"
        return f"permission {ev['permission']} is outside the {where}{extra}"
    if source is not None and "parameter" in ev:
        by = f"{source.tool}, " if source.tool else ""
        origin = f"step {source.step_index}'s result ({by}{source.field})"
        injected = ", which carried an injected instruction" if source.injected else ""
        return (
            f"parameter {ev['parameter']} = {_render(ev.get('value', ''))} first appeared in "
            f"{origin}{injected}, not in the user's request"
        )
    if f.rule == "tainted_action.instructed" and source is not None:
        words = ", ".join(str(w) for w in ev.get("shared_words", [])[:6])
        return f"the call repeats the instruction injected at step {source.step_index} ({words})"
    if f.category is Category.UNTRUSTED_INSTRUCTION:
        return (
            f"the result holds instruction-like text at {ev.get('path', 'result')}: "
            f"{_render(ev.get('excerpt', ''))}"
        )
    if f.category is Category.DATA_EXFILTRATION:
        after = f" after step {source.step_index}" if source is not None else ""
        return f"{ev.get('pattern', 'transfer')}: data sent to {ev.get('destination')}{after}"
    detail = _pairs(matched)
    return f"{condition or f.rule}" + (f" ({detail})" if detail else "")


def _finding_chain(e: Explanation, f: Finding, result: RunResult | None) -> list[str]:
    where = f"step {e.step_index}" if e.step_index is not None else "the run"
    chain = [
        f"{where}{f' {e.tool}' if e.tool else ''}: flagged {e.severity} by {e.control} {e.rule_id}"
    ]
    if e.condition:
        chain.append(f"condition: {e.condition}")
    if e.matched:
        chain.append(f"matched: {_pairs(e.matched, MAX_MATCHED)}")
    src = e.source
    if src is not None:
        line = f"source: step {src.step_index}{f' {src.tool}' if src.tool else ''} {src.field}"
        if src.injected:
            line += " (carried an injected instruction"
            line += f": {_render(src.instruction)})" if src.instruction else ")"
        chain.append(line)
    suppressed = f.evidence.get("suppressed_by")
    if isinstance(suppressed, dict):
        chain.append(f"suppressed by an exception of {suppressed.get('owner')}")
    if result is None:
        return chain
    share = next(
        (c for c in result.risk_contributions if c.reason.startswith(f.category.value)), None
    )
    verdict = f"verdict: {result.verdict.value} (risk {result.risk_score}/100)"
    if share is not None:
        verdict += f"; {share.reason} adds {share.points}"
    chain.append(verdict)
    return chain


# -- decisions -------------------------------------------------------------------------------
_DECISION_CONTROL = {"policy": "policy_rule", "findings": "detector"}


def _decision(
    d: DecisionView, findings: Sequence[Finding], explained: dict[str, Explanation]
) -> Explanation | None:
    outcome = str(d.outcome)
    would = str(d.would_have) if d.would_have is not None else None
    control = str(d.control)
    if outcome == "deny" and d.enforced:
        kind = "blocked"
    elif outcome == "approval_required" and d.enforced:
        kind = "held"
    elif (would not in (None, "allow")) or control == "approval":
        kind = "modified"
    else:
        return None
    control = _DECISION_CONTROL.get(control, control)
    reasons = [r for r in d.explanation.split("; ") if r]
    acted = [f for f in findings if f.step_index == d.step_index and f.rule in set(d.rule_ids)]
    rule = _deciding_rule(control, d.rule_ids, acted)
    lead = explained.get(next((f.id for f in acted if f.rule == rule), ""))
    because = reasons[0] if reasons else f"{control} decided"
    if lead is not None:
        because = lead.because
    if kind == "modified" and would is not None and control == "enforcement_mode":
        because = f"monitor mode: the call went ahead; enforcement would have said {would}"
    e = Explanation(
        step_index=d.step_index if d.step_index >= 0 else None,
        outcome=kind,
        control=control,
        rule_id=rule,
        because=because,
        tool=d.tool or None,
        condition=lead.condition if lead is not None else condition_of(rule),
        matched=lead.matched if lead is not None else [],
        source=lead.source if lead is not None else None,
        decision_id=d.decision_id,
        findings=[f.id for f in acted],
    )
    chain = [f"step {e.step_index} {e.tool}: {kind} by {control} {rule} ({d.decision_id})"]
    chain.extend(f"reason: {r}" for r in reasons)
    if e.condition:
        chain.append(f"condition: {e.condition}")
    if lead is not None:
        chain.extend(line for line in lead.chain[1:] if not line.startswith("condition:"))
    if d.approval_id:
        chain.append(f"approval: {d.approval_id}")
    if would is not None:
        chain.append(f"enforcement would have said {would}; monitor mode let the call go")
    e.chain = chain
    return e


_RULE_PREFIX = {
    "containment": "containment.",
    "capability": "capability.",
    "boundary": "boundary.",
    "budget": "budget.",
    "attestation": "attestation.",
    "approval": "approval.",
    "policy_rule": "policy.",
    "judge": "judge.",
}


def _deciding_rule(control: str, rule_ids: Sequence[str], acted: Sequence[Finding]) -> str:
    prefix = _RULE_PREFIX.get(control)
    if prefix is not None:
        for rule in rule_ids:
            if rule.startswith(prefix):
                return rule
    worst = max(acted, key=lambda f: f.severity.rank, default=None)
    if worst is not None:
        return worst.rule
    return rule_ids[0] if rule_ids else control
