"""unusual_sequence: tool calls and transitions the agent's learned baseline has never seen.

The baseline (``sentrail baseline learn``, see ``sentrail.engine.baseline_learn``) holds the
tools an agent called and its tool-to-tool transitions, with ``^`` as the pseudo-tool before
the first call. Per run, each never-seen tool is reported once (warning) and each
never-seen transition once (info; warning when the new call is a write), with the calls that
led to it. A baseline learned from fewer than ``MIN_RUNS`` runs is not enough history to
call anything unusual with confidence: its findings are info only. Without a baseline for
the agent this detector is silent.
"""

from __future__ import annotations

from typing import ClassVar

from sentrail.detect.base import Detector, RunContext, StepFacts
from sentrail.model.baseline import START, AgentBaseline
from sentrail.model.finding import Category, Severity

MIN_RUNS = 5
CONTEXT = 3  # tools shown before the unusual one


class UnusualSequence(Detector):
    name = "unusual_sequence"
    category = Category.UNUSUAL_SEQUENCE
    rules: ClassVar[dict[str, tuple[Severity, ...]]] = {
        "unusual_sequence.new_tool": (Severity.INFO, Severity.WARNING),
        "unusual_sequence.new_transition": (Severity.INFO, Severity.WARNING),
    }

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self._baseline: AgentBaseline | None = ctx.baseline
        self._recent: list[str] = [START]
        self._reported: set[str] = set()
        self._thin = self._baseline is not None and self._baseline.runs < MIN_RUNS

    def on_step(self, facts: StepFacts) -> None:
        tool = facts.tool
        baseline = self._baseline
        if tool is None or baseline is None:
            return
        recent = self._recent
        prev = recent[-1]
        if tool not in baseline.tools:
            if tool not in self._reported:
                self._reported.add(tool)
                self._report(facts, "new_tool", Severity.WARNING, prev, tool)
        else:
            transition = f"{prev} -> {tool}"
            known_prev = prev == START or prev in baseline.tools  # else already reported
            if (
                known_prev
                and transition not in baseline.transitions
                and transition not in self._reported
            ):
                self._reported.add(transition)
                sev = Severity.WARNING if facts.is_write else Severity.INFO
                self._report(facts, "new_transition", sev, prev, tool)
        recent.append(tool)
        if len(recent) > CONTEXT:
            del recent[0]

    def _report(
        self, facts: StepFacts, kind: str, severity: Severity, prev: str, tool: str
    ) -> None:
        baseline = self._baseline
        assert baseline is not None
        if self._thin:
            severity = Severity.INFO
        led = [*self._recent]
        path = " -> ".join([*led, tool])
        if kind == "new_tool":
            what = f"{tool} never seen in baseline"
            key = tool
        else:
            what = f"transition {prev} -> {tool} never seen in baseline"
            key = f"{prev} -> {tool}"
        note = f"; baseline has only {baseline.runs} run(s)" if self._thin else ""
        self.ctx.emit(
            f"unusual_sequence.{kind}",
            Category.UNUSUAL_SEQUENCE,
            severity,
            facts,
            f"Unusual sequence — {what} ({path}{note})",
            {
                "tool": tool,
                "previous": prev,
                "transition": f"{prev} -> {tool}",
                "sequence": [*led, tool],
                "is_write": facts.is_write,
                "risk": facts.risk.value if facts.risk is not None else None,
                "baseline_runs": baseline.runs,
                "baseline_calls_of_tool": baseline.tools.get(tool, 0),
                "insufficient_history": self._thin,
            },
            key=key,
        )
