"""The timeline's geometry: where the run spent its time, stalls, branches, markers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sentrail.model.finding import Category, Finding, Severity
from sentrail.model.trace import Alternative, Step, ToolCall
from sentrail.ui.timeline import WIDTH, build


def _step(i: int, ts: str | None, ms: float | None, tool: str | None = "db.query") -> Step:
    return Step(
        step_index=i,
        action=f"a{i}",
        tool_call=ToolCall(tool) if tool else None,
        timestamp=ts,
        duration_ms=ms,
    )


def test_a_long_gap_between_steps_is_a_stall_and_the_longest_step_is_named() -> None:
    steps = [
        _step(0, "2026-03-01T00:00:00Z", 1000),
        _step(1, "2026-03-01T00:00:01Z", 4000),
        _step(2, "2026-03-01T00:01:00Z", 500),  # 55 s after step 1 ended
    ]
    tl = build(steps, [], lambda t: "read_only")
    assert tl.stalls == 1 and tl.bars[2].stall_before_ms == 55_000
    assert tl.bars[2].stall_w > tl.bars[1].w  # the stall is drawn at its size
    assert tl.busiest == 1
    assert tl.total_ms == 1000 + 4000 + 500 + 55_000


def test_steps_with_alternatives_and_findings_are_marked() -> None:
    steps = [_step(0, None, 10), _step(1, None, 10, tool=None)]
    steps[0].alternatives = [Alternative(action="wait", rejected_reason="live incident")]
    finding = Finding("f1", "r", Category.POLICY_VIOLATION, Severity.CRITICAL, 0, "no")
    tl = build(steps, [finding], lambda t: "destructive")
    assert tl.branches == 1 and tl.bars[0].branched and not tl.bars[1].branched
    assert tl.bars[0].worst == "critical" and tl.bars[1].worst is None
    assert tl.bars[0].risk == "destructive" and tl.bars[1].risk == "reasoning"


@given(
    st.lists(
        st.tuples(st.one_of(st.none(), st.floats(0, 1e7)), st.integers(0, 10_000)),
        max_size=60,
    )
)
def test_bars_fill_the_width_in_order_without_overlap(spec: list[tuple[float | None, int]]) -> None:
    steps = [
        _step(i, "2026-03-01T00:00:00.000Z" if gap is None else None, ms)
        for i, (ms, gap) in enumerate(spec)
    ]
    tl = build(steps, [], lambda t: "read_only")
    x = 0.0
    for bar in tl.bars:
        assert bar.w > 0
        assert bar.x >= x - 1e-6
        x = bar.x + bar.w
    assert x <= WIDTH + 1e-6
    if tl.bars:
        assert abs(x - WIDTH) < 1e-6
