"""The fleet what-if: many runs' replay diffs summed into one summary
(``sentrail replay --since 7d --policy NEW.yaml``, ``sentrail.replay-fleet/1``,
docs/forensics.md). Kept small however many runs are replayed: counts, and at most
:data:`MAX_FLEET_RUNS` changed runs and skipped runs listed.
"""

from __future__ import annotations

from typing import Any

import msgspec

from sentrail.forensics.replay import ReplayDiff, RuleChange, rule_counts
from sentrail.model.finding import Verdict
from sentrail.report.escape import safe_text

FLEET_FORMAT = "sentrail.replay-fleet/1"
MAX_FLEET_RUNS = 1000  # changed runs listed in a fleet summary (all are counted)
VERDICT_RANK = {Verdict.ALLOWED.value: 0, Verdict.SUSPICIOUS.value: 1, "unauthorized": 2}


class FleetRule(msgspec.Struct):
    rule: str
    added: int = 0
    gone: int = 0
    severity_changed: int = 0
    runs: int = 0  # runs where the rule changed


class VerdictChange(msgspec.Struct):
    before: str
    after: str
    runs: int


class ChangedRun(msgspec.Struct):
    app_id: str
    run_id: str
    agent_id: str
    verdict_before: str
    verdict_after: str
    risk_before: int
    risk_after: int
    findings_added: int
    findings_gone: int
    newly_blocked: bool


class Skipped(msgspec.Struct):
    app_id: str
    run_id: str
    reason: str


class FleetSummary(msgspec.Struct):
    """The fleet what-if (``sentrail replay --since``; docs/forensics.md)."""

    format: str
    tenant_id: str
    scope: dict[str, Any]
    after: dict[str, Any]
    runs: int
    changed: int
    newly_unauthorized: int
    newly_blocked: int
    no_longer_unauthorized: int
    findings_added: int
    findings_gone: int
    severity_changed: int
    verdict_changes: list[VerdictChange]
    rules: list[FleetRule]
    changed_runs: list[ChangedRun]
    changed_runs_truncated: bool
    skipped: list[Skipped]


class FleetTally:
    """Many runs' diffs summed into a :class:`FleetSummary` (kept small: counts, and at
    most :data:`MAX_FLEET_RUNS` changed runs listed)."""

    def __init__(self) -> None:
        self.runs = self.changed = 0
        self.newly_unauthorized = self.newly_blocked = self.no_longer_unauthorized = 0
        self.added = self.gone = self.moved = 0
        self.verdicts: dict[tuple[str, str], int] = {}
        self.rules: dict[str, FleetRule] = {}
        self.changed_runs: list[ChangedRun] = []
        self.truncated = False
        self.skipped: list[Skipped] = []

    def skip(self, app: str, run_id: str, reason: str) -> None:
        if len(self.skipped) < MAX_FLEET_RUNS:
            self.skipped.append(Skipped(app, run_id, reason))

    def add(self, diff: ReplayDiff) -> None:
        self.runs += 1
        if not diff.changed:
            return
        self.changed += 1
        b, a = diff.before.verdict, diff.after.verdict
        if diff.verdict_changed:
            self.verdicts[(b, a)] = self.verdicts.get((b, a), 0) + 1
        self.newly_unauthorized += a == "unauthorized" and b != "unauthorized"
        self.no_longer_unauthorized += b == "unauthorized" and a != "unauthorized"
        blocked = diff.newly_blocked
        self.newly_blocked += blocked
        c = diff.counts
        self.added += c.findings_added
        self.gone += c.findings_gone
        self.moved += c.severity_changed
        for r in diff.rules:
            fr = self.rules.get(r.rule)
            if fr is None:
                fr = self.rules[r.rule] = FleetRule(r.rule)
            fr.added += r.added
            fr.gone += r.gone
            fr.severity_changed += r.severity_changed
            fr.runs += 1
        if len(self.changed_runs) < MAX_FLEET_RUNS:
            self.changed_runs.append(
                ChangedRun(
                    diff.app_id,
                    diff.trace_id,
                    diff.agent_id,
                    b,
                    a,
                    diff.before.risk_score,
                    diff.after.risk_score,
                    c.findings_added,
                    c.findings_gone,
                    blocked,
                )
            )
        else:
            self.truncated = True

    def summary(self, tenant: str, scope: dict[str, Any], after: dict[str, Any]) -> FleetSummary:
        return FleetSummary(
            format=FLEET_FORMAT,
            tenant_id=tenant,
            scope=scope,
            after=after,
            runs=self.runs,
            changed=self.changed,
            newly_unauthorized=self.newly_unauthorized,
            newly_blocked=self.newly_blocked,
            no_longer_unauthorized=self.no_longer_unauthorized,
            findings_added=self.added,
            findings_gone=self.gone,
            severity_changed=self.moved,
            verdict_changes=[
                VerdictChange(b, a, n)
                for (b, a), n in sorted(
                    self.verdicts.items(),
                    key=lambda kv: (-kv[1], VERDICT_RANK.get(kv[0][0], 9), kv[0]),
                )
            ],
            rules=sorted(self.rules.values(), key=lambda r: (-r.runs, r.rule)),
            changed_runs=sorted(
                self.changed_runs, key=lambda r: (-r.newly_blocked, -r.risk_after, r.run_id)
            ),
            changed_runs_truncated=self.truncated,
            skipped=self.skipped,
        )


def render_fleet(s: FleetSummary, limit: int = 20) -> str:
    """The fleet what-if for a terminal (stored strings escaped)."""
    lines = [
        f"Replayed {s.runs} run(s) of tenant {safe_text(s.tenant_id)}: {s.changed} changed, "
        f"{len(s.skipped)} skipped",
        f"  newly unauthorized: {s.newly_unauthorized}; newly blocked (a step now denied): "
        f"{s.newly_blocked}; no longer unauthorized: {s.no_longer_unauthorized}",
        f"  findings: {s.findings_added} added, {s.findings_gone} gone, "
        f"{s.severity_changed} re-rated",
    ]
    if s.verdict_changes:
        lines.append("Verdict changes:")
        lines.extend(f"  {v.before} -> {v.after}: {v.runs} run(s)" for v in s.verdict_changes)
    if s.rules:
        lines.append("By rule:")
        for r in s.rules:
            counts = rule_counts(RuleChange(r.rule, r.added, r.gone, r.severity_changed))
            lines.append(f"  {safe_text(r.rule, limit=120)}: {counts} ({r.runs} run(s))")
    if s.changed_runs:
        lines.append("Changed runs:")
        for run in s.changed_runs[:limit]:
            mark = " NEWLY BLOCKED" if run.newly_blocked else ""
            lines.append(
                f"  {safe_text(run.run_id, limit=120)}  app={safe_text(run.app_id, limit=80)}  "
                f"agent={safe_text(run.agent_id, limit=80)}  {run.verdict_before} -> "
                f"{run.verdict_after}  risk {run.risk_before} -> {run.risk_after}{mark}"
            )
        more = len(s.changed_runs) - limit
        if more > 0 or s.changed_runs_truncated:
            lines.append(f"  ... and {s.changed - limit} more (--format json lists them)")
    for sk in s.skipped[:limit]:
        lines.append(
            f"skipped: {safe_text(sk.run_id, limit=120)} (app {safe_text(sk.app_id, limit=80)}): "
            f"{safe_text(sk.reason)}"
        )
    return "\n".join(lines) + "\n"
