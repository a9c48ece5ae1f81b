"""The per-step views detectors share (``StepFacts.param_strings``) and the dangerous-action
texts built from them read exactly what the walks they replaced read."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from sentrail.detect.base import StepFacts
from sentrail.detect.dangerous import FREE_TEXT, MAX_TEXT, _texts, shell_read
from sentrail.detect.text import bounded, iter_strings, iter_texts
from sentrail.model.trace import Step
from sentrail.policy.compiled import Policy
from tests.strategies import json_values

params_values = st.dictionaries(
    st.sampled_from(["command", "body", "url", "message", "path", "x" * 30]) | st.text(max_size=8),
    json_values | st.text(max_size=MAX_TEXT + 50).map(lambda s: s * 3),
    max_size=5,
)


def _facts(params: dict[str, Any]) -> StepFacts:
    step = msgspec.convert(
        {
            "step_index": 0,
            "action": "tool_call",
            "tool_call": {"tool": "t.x", "parameters": params},
        },
        Step,
    )
    return StepFacts(step, Policy(), None)


def _texts_reference(params: dict[str, Any]) -> tuple[str, str]:
    """The dangerous-action texts as they were built before the shared view: one walk."""
    code: list[str] = []
    everything: list[str] = []
    size = 0
    for path, value in iter_strings(params):
        value = value[:MAX_TEXT]
        key = path.rsplit(".", 1)[-1].split("[", 1)[0].lower()
        everything.append(value)
        if key not in FREE_TEXT:
            code.append(value)
        size += len(value)
        if size >= MAX_TEXT:
            break
    return "\n".join(code), "\n".join(everything)


@settings(max_examples=200, deadline=None)
@given(params_values)
def test_param_strings_is_the_bounded_walk(params: dict[str, Any]) -> None:
    facts = _facts(params)
    expected = [(p, bounded(t)) for p, t in iter_strings(params)]
    assert facts.param_strings == expected
    assert [t for _, t in facts.param_strings] == [bounded(t) for t in iter_texts(params)]
    assert facts.param_strings is facts.param_strings  # walked once


@settings(max_examples=200, deadline=None)
@given(params_values)
def test_dangerous_texts_equal_the_single_walk(params: dict[str, Any]) -> None:
    code, everything = _texts_reference(params)
    read = shell_read(code)
    expected = (
        (everything, everything, False)
        if read is code and code == everything
        else (read, everything, read is not code)
    )
    assert _texts(_facts(params).param_strings) == expected
