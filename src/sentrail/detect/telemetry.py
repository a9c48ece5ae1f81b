"""missing_telemetry: a trace that cannot be trusted to show everything the agent did.

Per step: gaps, duplicates and reordering in ``step_index``; unparseable timestamps, a
timestamp earlier than the previous step's or than ``started_at``; a step without a
timestamp in a run whose other steps have one; a sensitive action (a write of risk
``sensitive_write`` or above) without reasoning (info) or without a result (warning).

At the end of the run, because a live stream may deliver ``completed_at``, ``status`` and
``permissions_summary`` only with ``run_completed``: permissions used but absent from the
summary (not granted, escalated or denied there; warning), escalated grants never used
(info), a "completed" run with no steps (warning) and steps timestamped after
``completed_at`` (warning). Without a permissions summary, nothing is said about
permissions.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sentrail.detect.base import Detector, RunContext, StepFacts
from sentrail.model.finding import Category, Severity
from sentrail.model.timestamps import parse_time
from sentrail.policy.bundle import RiskClass
from sentrail.policy.match import GlobSet

_SENSITIVE = RiskClass.SENSITIVE_WRITE.rank
_CAT = Category.MISSING_TELEMETRY


# Set by a stream worker on an idle run, and by `trace watch` on a partial trace.
_UNFINISHED = frozenset({"incomplete", "partial"})


class MissingTelemetry(Detector):
    name = "missing_telemetry"
    category = Category.MISSING_TELEMETRY
    rules: ClassVar[dict[str, tuple[Severity, ...]]] = {
        "missing_telemetry.duplicate_step": (Severity.WARNING,),
        "missing_telemetry.step_gap": (Severity.INFO, Severity.WARNING),
        "missing_telemetry.step_order": (Severity.WARNING,),
        "missing_telemetry.bad_timestamp": (Severity.WARNING,),
        "missing_telemetry.time_backwards": (Severity.WARNING,),
        "missing_telemetry.before_start": (Severity.WARNING,),
        "missing_telemetry.no_timestamp": (Severity.INFO,),
        "missing_telemetry.no_result": (Severity.WARNING,),
        "missing_telemetry.no_reasoning": (Severity.INFO,),
        "missing_telemetry.empty_run": (Severity.WARNING,),
        "missing_telemetry.run_incomplete": (Severity.WARNING,),
        "missing_telemetry.unlisted_permission": (Severity.WARNING,),
        "missing_telemetry.unused_escalation": (Severity.INFO,),
        "missing_telemetry.after_completion": (Severity.WARNING,),
    }

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self._seen: set[int] = set()
        self._last_index: int | None = None
        self._last_time: dt.datetime | None = None
        self._last_time_step: int | None = None
        self._started = parse_time(ctx.header.started_at)
        self._timed = 0
        self._untimed_reported = False
        self._untimed_first: StepFacts | None = None
        self._used: dict[str, StepFacts] = {}  # permission -> first step using it
        self._max_time: dt.datetime | None = None
        self._arrived = 0

    def _emit(
        self,
        rule: str,
        severity: Severity,
        facts: StepFacts | None,
        message: str,
        evidence: dict[str, Any],
        key: str | None = None,
    ) -> None:
        # The arrival ordinal keeps ids unique when a producer repeats a step_index.
        key = f"#{self._arrived}" if key is None else key
        self.ctx.emit(
            f"missing_telemetry.{rule}", _CAT, severity, facts, message, evidence, key=key
        )

    def on_step(self, facts: StepFacts) -> None:
        self._check_index(facts)
        self._check_time(facts)
        used = self._used
        for perm in facts.permissions:
            if perm not in used:
                used[perm] = facts
        risk = facts.risk
        if risk is not None and risk.rank >= _SENSITIVE:
            self._check_sensitive(facts, risk)

    def _check_index(self, facts: StepFacts) -> None:
        index = facts.index
        last = self._last_index
        self._arrived += 1
        seen = self._seen
        if index in seen:
            self._emit(
                "duplicate_step",
                Severity.WARNING,
                facts,
                f"Telemetry inconsistent — step_index {index} appears more than once",
                {"step_index": index, "previous_step_index": last},
            )
        elif last is None:
            if index > 1:
                self._emit(
                    "step_gap",
                    Severity.INFO,
                    facts,
                    f"Telemetry gap — run starts at step {index} (steps 0–{index - 1} missing)",
                    {"from": None, "to": index, "missing": index},
                )
        elif index > last + 1:
            missing = index - last - 1
            span = f"step {last + 1}" if missing == 1 else f"steps {last + 1}–{index - 1}"
            self._emit(
                "step_gap",
                Severity.WARNING,
                facts,
                f"Telemetry gap — step_index jumps from {last} to {index} ({span} missing)",
                {"from": last, "to": index, "missing": missing},
            )
        elif index < last:
            self._emit(
                "step_order",
                Severity.WARNING,
                facts,
                f"Telemetry out of order — step {index} arrived after step {last}",
                {"step_index": index, "previous_step_index": last},
            )
        if len(seen) < 1_000_000:
            seen.add(index)
        self._last_index = index

    def _check_time(self, facts: StepFacts) -> None:
        text = facts.step.timestamp
        if not text:
            if self._timed and not self._untimed_reported:
                self._untimed_reported = True
                self._report_untimed(facts)
            elif self._untimed_first is None:
                self._untimed_first = facts
            return
        t = facts.time
        if t is None:
            self._emit(
                "bad_timestamp",
                Severity.WARNING,
                facts,
                f"Telemetry unreadable — step {facts.index} timestamp {text[:40]!r} "
                "is not ISO 8601",
                {"timestamp": text[:200]},
            )
            return
        self._timed += 1
        if self._untimed_first is not None and not self._untimed_reported:
            self._untimed_reported = True
            self._report_untimed(self._untimed_first)
        last = self._last_time
        if last is not None and t < last:
            self._emit(
                "time_backwards",
                Severity.WARNING,
                facts,
                f"Timestamps out of order — step {facts.index} at {text} is earlier than "
                f"step {self._last_time_step} ({(last - t).total_seconds():.3f}s before)",
                {
                    "timestamp": text,
                    "previous_step_index": self._last_time_step,
                    "seconds_back": (last - t).total_seconds(),
                },
            )
        elif last is None and self._started is not None and t < self._started:
            self._emit(
                "before_start",
                Severity.WARNING,
                facts,
                f"Timestamps out of order — step {facts.index} at {text} is before the run "
                f"started ({self.ctx.header.started_at})",
                {"timestamp": text, "started_at": self.ctx.header.started_at},
            )
        self._last_time = t
        self._last_time_step = facts.index
        if self._max_time is None or t > self._max_time:
            self._max_time = t

    def _report_untimed(self, facts: StepFacts) -> None:
        self._emit(
            "no_timestamp",
            Severity.INFO,
            facts,
            f"Telemetry incomplete — step {facts.index} has no timestamp (other steps do)",
            {"step_index": facts.index},
        )

    def _check_sensitive(self, facts: StepFacts, risk: RiskClass) -> None:
        step = facts.step
        label = risk.value.replace("_", " ")
        if step.result is None:
            self._emit(
                "no_result",
                Severity.WARNING,
                facts,
                f"Telemetry missing — {label} {facts.tool} has no recorded result",
                {"tool": facts.tool, "risk": risk.value},
            )
        if not (step.reasoning and step.reasoning.strip()):
            self._emit(
                "no_reasoning",
                Severity.INFO,
                facts,
                f"Telemetry missing — {label} {facts.tool} has no recorded reasoning",
                {"tool": facts.tool, "risk": risk.value},
            )

    def finish(self) -> None:
        ctx = self.ctx
        header = ctx.header
        if (header.status or "").strip().lower() == "completed" and not ctx.history:
            self._emit(
                "empty_run",
                Severity.WARNING,
                None,
                "Telemetry missing — run is marked completed but has no steps",
                {"status": header.status},
            )
        state = (header.status or "").strip().lower()
        if state in _UNFINISHED:
            self._emit(
                "run_incomplete",
                Severity.WARNING,
                None,
                f"Telemetry missing — the run stopped emitting before it completed "
                f"(status: {state})",
                {"status": header.status, "steps": len(ctx.history)},
            )
        self._check_after_completion()
        summary = header.permissions_summary
        if summary is None:
            return
        accounted = GlobSet([*summary.granted, *summary.escalated, *summary.denied])
        for perm, facts in self._used.items():
            if perm not in accounted:
                self._emit(
                    "unlisted_permission",
                    Severity.WARNING,
                    facts,
                    f"Telemetry inconsistent — {perm} used at step {facts.index} but absent "
                    "from permissions_summary.granted",
                    {"permission": perm, "tool": facts.tool},
                    key=perm,
                )
        granted = set(summary.granted)
        for perm in dict.fromkeys(summary.escalated):
            if perm not in granted or perm in self._used:
                continue
            pattern = GlobSet([perm])
            if not any(u in pattern for u in self._used):
                self._emit(
                    "unused_escalation",
                    Severity.INFO,
                    None,
                    f"Escalated permission {perm} was granted but never used",
                    {"permission": perm},
                    key=perm,
                )

    def _check_after_completion(self) -> None:
        end = parse_time(self.ctx.header.completed_at)
        if end is None or self._max_time is None or self._max_time <= end:
            return
        late = [f for f in self.ctx.history if f.time is not None and f.time > end]
        if late:
            self._emit(
                "after_completion",
                Severity.WARNING,
                late[0],
                f"Telemetry inconsistent — {len(late)} step(s) timestamped after the run "
                f"completed ({self.ctx.header.completed_at})",
                {
                    "completed_at": self.ctx.header.completed_at,
                    "steps": [f.index for f in late[:50]],
                    "count": len(late),
                },
            )
