"""The run timeline as the page draws it: one bar per step, where the run spent its time,
where it stalled and where it branched.

Pure: steps, findings and a risk classifier in, geometry and labels out. Bars are laid
end to end in step order with a width in proportion to the step's duration (a minimum
keeps a 1 ms step clickable); a *stall* is a gap between one step's end and the next
step's start that is long both in absolute terms and against the run's typical step, and
gets its own hatched segment so that it is obvious at a glance.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Callable, Sequence

import msgspec

from sentrail.model.finding import Finding
from sentrail.model.trace import Step

WIDTH = 1000.0  # SVG user units across
STALL_MIN_MS = 5_000.0
STALL_FACTOR = 3.0
_MIN_SHARE = 0.15  # of an even share: the narrowest bar


class Marker(msgspec.Struct, frozen=True):
    finding_id: str
    severity: str
    message: str


class StepBar(msgspec.Struct):
    idx: int
    step: Step
    risk: str  # a tool risk class, or "reasoning" for a step without a tool call
    x: float = 0.0
    w: float = 0.0
    stall_before_ms: float | None = None
    stall_x: float = 0.0
    stall_w: float = 0.0
    markers: list[Marker] = msgspec.field(default_factory=list)

    @property
    def worst(self) -> str | None:
        order = {"info": 1, "warning": 2, "critical": 3}
        return max((m.severity for m in self.markers), key=order.__getitem__, default=None)

    @property
    def branched(self) -> bool:
        return bool(self.step.alternatives)


class Timeline(msgspec.Struct):
    bars: list[StepBar]
    total_ms: float
    stalls: int
    branches: int
    busiest: int | None  # index into bars of the longest step


def _epoch_ms(ts: str | None) -> float | None:
    if not ts:
        return None
    try:
        when = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp() * 1000.0


def _duration(step: Step) -> float:
    d = step.duration_ms
    return float(d) if d is not None and d >= 0 else 0.0


def build(
    steps: Sequence[Step], findings: Sequence[Finding], risk_of: Callable[[str], str]
) -> Timeline:
    by_step: dict[int, list[Marker]] = {}
    for f in findings:
        if f.step_index is not None:
            by_step.setdefault(f.step_index, []).append(Marker(f.id, f.severity.value, f.message))
    bars = [
        StepBar(
            idx=i,
            step=s,
            risk=risk_of(s.tool_call.tool) if s.tool_call else "reasoning",
            markers=by_step.get(s.step_index, []),
        )
        for i, s in enumerate(steps)
    ]
    durations = [_duration(b.step) for b in bars]
    typical = statistics.median(durations) if durations else 0.0
    gaps: list[float] = [0.0] * len(bars)
    for i in range(1, len(bars)):
        prev_start = _epoch_ms(bars[i - 1].step.timestamp)
        start = _epoch_ms(bars[i].step.timestamp)
        if prev_start is None or start is None:
            continue
        gap = start - (prev_start + durations[i - 1])
        if gap >= STALL_MIN_MS and gap >= STALL_FACTOR * max(typical, 1.0):
            gaps[i] = gap
            bars[i].stall_before_ms = gap
    total = sum(durations) + sum(gaps)
    n = len(bars) + sum(1 for g in gaps if g)
    floor = (WIDTH / max(n, 1)) * _MIN_SHARE
    raw = [(max(g, 0.0), max(d, 0.0)) for g, d in zip(gaps, durations, strict=True)]
    scale_total = total if total > 0 else float(len(bars) or 1)
    x = 0.0
    parts: list[tuple[float, float]] = []
    for g, d in raw:
        gw = max(WIDTH * g / scale_total, floor) if g else 0.0
        dw = max(WIDTH * d / scale_total if total > 0 else WIDTH / max(len(bars), 1), floor)
        parts.append((gw, dw))
    span = sum(gw + dw for gw, dw in parts) or 1.0
    factor = WIDTH / span
    for bar, (gw, dw) in zip(bars, parts, strict=True):
        if gw:
            bar.stall_x, bar.stall_w = x, gw * factor
            x += gw * factor
        bar.x, bar.w = x, dw * factor
        x += dw * factor
    busiest = max(range(len(bars)), key=durations.__getitem__) if bars else None
    return Timeline(
        bars=bars,
        total_ms=total,
        stalls=sum(1 for g in gaps if g),
        branches=sum(1 for b in bars if b.branched),
        busiest=busiest,
    )
