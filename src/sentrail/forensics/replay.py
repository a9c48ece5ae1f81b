"""The replay diff: what a run's judgement becomes under another policy bundle, baseline or
sentrail version, step by step (``replay-diff.json``, docs/forensics.md).

Pure: it compares two judgements of one run — ``before`` (the stored one, or a fold under
the policy the run was judged with) and ``after`` (the replay) — whatever produced them;
:mod:`sentrail.runtime.replay` folds the stored events and calls it.

Findings are matched by id (deterministic: run, rule, step and key), so a finding in both
judgements with another severity is a severity change, not one gone and one added. A
step's *decision* is what the decision point's findings control makes of the step's
findings (:func:`sentrail.engine.scoring.call_outcome`: ``deny``, ``approval_required``,
``allow``); run-level findings (``step_index`` null) have none. Many runs' diffs are summed
into the fleet what-if by :mod:`sentrail.forensics.fleet`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from sentrail.engine.scoring import DENY, call_outcome
from sentrail.model.finding import Finding, RunResult
from sentrail.model.trace import Run
from sentrail.report.escape import safe_text

REPLAY_DIFF_FORMAT = "sentrail.replay-diff/1"
MAX_MESSAGE = 300


class Judgement(msgspec.Struct, omit_defaults=True):
    """One side of a diff: where the judgement came from and what it concluded.

    ``source``: ``stored`` (the result the store kept when the run was analysed),
    ``replayed`` (a fold of the stored events now) or ``audit_file`` (an audit file's run
    judged under ``--base-policy`` when it was read). ``policy_sha256`` is None for the
    built-in policy; ``baseline_sha256`` None for no baselines (or not recorded).
    """

    source: str
    verdict: str
    risk_score: int
    findings: int
    policy_name: str | None = None
    policy_sha256: str | None = None
    baseline_sha256: str | None = None
    sentrail_version: str | None = None


class FindingRef(msgspec.Struct):
    id: str
    rule: str
    severity: str
    category: str
    message: str


class SeverityChange(msgspec.Struct):
    id: str
    rule: str
    before: str
    after: str


class StepChange(msgspec.Struct):
    """What changed at one step (``step_index`` null: the run as a whole)."""

    step_index: int | None
    tool: str | None
    decision_before: str | None
    decision_after: str | None
    added: list[FindingRef]
    gone: list[FindingRef]
    severity_changed: list[SeverityChange]


class RuleChange(msgspec.Struct):
    rule: str
    added: int = 0
    gone: int = 0
    severity_changed: int = 0


class Counts(msgspec.Struct):
    steps_changed: int = 0
    decisions_changed: int = 0
    findings_added: int = 0
    findings_gone: int = 0
    severity_changed: int = 0


class ReplayDiff(msgspec.Struct):
    """``replay-diff.json`` (docs/forensics.md)."""

    format: str
    trace_id: str
    tenant_id: str
    app_id: str
    agent_id: str
    before: Judgement
    after: Judgement
    changed: bool
    verdict_changed: bool
    risk_delta: int
    counts: Counts
    steps: list[StepChange]
    rules: list[RuleChange]

    @property
    def newly_blocked(self) -> bool:
        """A step the decision point would now deny that it did not before."""
        return any(
            s.decision_after == DENY and s.decision_before != DENY
            for s in self.steps
            if s.step_index is not None
        )


def judgement(
    result: RunResult,
    source: str,
    *,
    policy_sha256: str | None = None,
    baseline_sha256: str | None = None,
    sentrail_version: str | None = None,
) -> Judgement:
    return Judgement(
        source=source,
        verdict=result.verdict.value,
        risk_score=result.risk_score,
        findings=len(result.findings),
        policy_name=result.policy_name,
        policy_sha256=policy_sha256,
        baseline_sha256=baseline_sha256,
        sentrail_version=sentrail_version,
    )


def _ref(f: Finding) -> FindingRef:
    return FindingRef(f.id, f.rule, f.severity.value, f.category.value, f.message[:MAX_MESSAGE])


def _by_step(findings: Iterable[Finding]) -> dict[int | None, list[Finding]]:
    out: dict[int | None, list[Finding]] = {}
    for f in findings:
        out.setdefault(f.step_index, []).append(f)
    return out


def _tools(run: Run | None) -> dict[int, str]:
    if run is None:
        return {}
    return {s.step_index: s.tool_call.tool for s in run.steps if s.tool_call is not None}


def replay_diff(
    before: RunResult,
    after: RunResult,
    before_side: Judgement,
    after_side: Judgement,
    *,
    tenant: str,
    app: str,
    run: Run | None = None,
) -> ReplayDiff:
    """The diff of two judgements of one run (see the module docstring); ``run`` (the
    trace) names each step's tool."""
    was, now = _by_step(before.findings), _by_step(after.findings)
    tools = _tools(run)
    steps: list[StepChange] = []
    rules: dict[str, RuleChange] = {}
    counts = Counts()

    def rule(name: str) -> RuleChange:
        r = rules.get(name)
        if r is None:
            r = rules[name] = RuleChange(name)
        return r

    keys = sorted(set(was) | set(now), key=lambda k: -1 if k is None else k)
    for index in keys:
        old = {f.id: f for f in was.get(index, [])}
        new = {f.id: f for f in now.get(index, [])}
        added = [_ref(f) for i, f in new.items() if i not in old]
        gone = [_ref(f) for i, f in old.items() if i not in new]
        moved = [
            SeverityChange(i, f.rule, old[i].severity.value, f.severity.value)
            for i, f in new.items()
            if i in old and old[i].severity is not f.severity
        ]
        d_before = None if index is None else call_outcome(old.values())
        d_after = None if index is None else call_outcome(new.values())
        if not (added or gone or moved or d_before != d_after):
            continue
        for a in added:
            rule(a.rule).added += 1
        for g in gone:
            rule(g.rule).gone += 1
        for m in moved:
            rule(m.rule).severity_changed += 1
        counts.steps_changed += 1
        counts.decisions_changed += d_before != d_after
        counts.findings_added += len(added)
        counts.findings_gone += len(gone)
        counts.severity_changed += len(moved)
        steps.append(
            StepChange(
                index,
                tools.get(index) if index is not None else None,
                d_before,
                d_after,
                added,
                gone,
                moved,
            )
        )
    verdict_changed = before.verdict is not after.verdict
    risk_delta = after.risk_score - before.risk_score
    return ReplayDiff(
        format=REPLAY_DIFF_FORMAT,
        trace_id=after.run_id,
        tenant_id=tenant,
        app_id=app,
        agent_id=after.agent_id,
        before=before_side,
        after=after_side,
        changed=bool(steps) or verdict_changed or risk_delta != 0,
        verdict_changed=verdict_changed,
        risk_delta=risk_delta,
        counts=counts,
        steps=steps,
        rules=sorted(rules.values(), key=lambda r: r.rule),
    )


def encode_diff(diff: ReplayDiff) -> bytes:
    return msgspec.json.encode(diff)


def diff_part(diff: ReplayDiff, member: str) -> dict[str, Any]:
    """The evidence summary's ``parts.replay_diff``: where the diff is, and its gist."""
    return {
        "member": member,
        "format": diff.format,
        "changed": diff.changed,
        "before": msgspec.to_builtins(diff.before),
        "after": msgspec.to_builtins(diff.after),
        "verdict_changed": diff.verdict_changed,
        "risk_delta": diff.risk_delta,
        "counts": msgspec.to_builtins(diff.counts),
    }


# -- the terminal form ------------------------------------------------------------------------
def _side(j: Judgement) -> str:
    policy = safe_text(j.policy_name or "built-in", limit=120)
    sha = f" sha256 {j.policy_sha256[:12]}" if j.policy_sha256 else ""
    base = f", baselines {j.baseline_sha256[:12]}" if j.baseline_sha256 else ""
    version = f", sentrail {safe_text(j.sentrail_version)}" if j.sentrail_version else ""
    return (
        f"{j.source}: policy {policy}{sha}{base}{version} -> {j.verdict}, "
        f"risk {j.risk_score}, {j.findings} finding(s)"
    )


def _finding_line(mark: str, f: FindingRef) -> str:
    return (
        f"    {mark} [{f.severity}] {safe_text(f.rule, limit=120)} "
        f"({safe_text(f.id, limit=80)}): {safe_text(f.message, limit=MAX_MESSAGE)}"
    )


def render_diff(diff: ReplayDiff) -> str:
    """The diff for a terminal: every string from the trace escaped."""
    lines = [
        f"Replay of run {safe_text(diff.trace_id)} (app {safe_text(diff.app_id)}, tenant "
        f"{safe_text(diff.tenant_id)}, agent {safe_text(diff.agent_id)})",
        f"  before  {_side(diff.before)}",
        f"  after   {_side(diff.after)}",
    ]
    verdict = (
        f"{diff.before.verdict} -> {diff.after.verdict}"
        if diff.verdict_changed
        else f"{diff.after.verdict} (unchanged)"
    )
    sign = "+" if diff.risk_delta > 0 else ""
    risk = (
        f"{diff.before.risk_score} -> {diff.after.risk_score} ({sign}{diff.risk_delta})"
        if diff.risk_delta
        else f"{diff.after.risk_score} (unchanged)"
    )
    lines.append(f"Verdict: {verdict}; risk: {risk}")
    if not diff.changed:
        lines.append("No change: the replay gives the same findings, verdict and risk.")
        return "\n".join(lines) + "\n"
    for s in diff.steps:
        if s.step_index is None:
            head = "  Run (no step):"
        else:
            tool = f" {safe_text(s.tool, limit=120)}" if s.tool else ""
            decision = (
                f": decision {s.decision_before} -> {s.decision_after}"
                if s.decision_before != s.decision_after
                else f": decision {s.decision_after} (unchanged)"
            )
            head = f"  Step {s.step_index}{tool}{decision}"
        lines.append(head)
        lines.extend(_finding_line("-", f) for f in s.gone)
        lines.extend(_finding_line("+", f) for f in s.added)
        lines.extend(
            f"    ~ {safe_text(m.rule, limit=120)} ({safe_text(m.id, limit=80)}): "
            f"{m.before} -> {m.after}"
            for m in s.severity_changed
        )
    c = diff.counts
    lines.append(
        f"Changed: {c.steps_changed} step(s), {c.decisions_changed} decision(s); findings "
        f"{c.findings_added} added, {c.findings_gone} gone, {c.severity_changed} re-rated"
    )
    for r in diff.rules:
        lines.append(f"  {safe_text(r.rule, limit=120)}: {rule_counts(r)}")
    return "\n".join(lines) + "\n"


def rule_counts(r: RuleChange) -> str:
    parts = [f"{r.added} added"] if r.added else []
    parts += [f"{r.gone} gone"] if r.gone else []
    parts += [f"{r.severity_changed} re-rated"] if r.severity_changed else []
    return ", ".join(parts)
