"""Golden traces: every file under tests/golden/<detector>/ states what must (not) fire.

Each golden trace is an ordinary trace document with one extra top-level field (unknown
fields are ignored by the analyzer)::

    "expect": {"fires": true, "category": "excessive_retries",
               "rule": "excessive_retries.mutating",      # optional
               "severity": "warning",                     # optional: exact worst severity
               "step_index": 5,                           # optional
               "evidence": {"pattern": "..."}},           # optional: must equal these
    "expect_policy": "policies/retries.yaml",             # optional, relative to golden/
    "expect_baseline": "baselines/triage.json"            # optional, relative to golden/

``fires: false`` means no finding of that category (and rule, when given) may appear.
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from pathlib import Path

import msgspec
import pytest

from sentrail.detect.registry import DETECTORS
from sentrail.engine.engine import Engine
from sentrail.model.baseline import Baselines
from sentrail.model.decode import decode_run
from sentrail.model.finding import Severity
from sentrail.policy.compiled import Policy
from sentrail.policy.load import load_policy

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p for p in GOLDEN.glob("*/*.json") if p.parent.name not in {"baselines"})


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.name}" for p in CASES])
def test_golden(path: Path) -> None:
    raw = path.read_bytes()
    doc = json.loads(raw)
    expect = doc["expect"]
    policy = Policy(load_policy(GOLDEN / doc["expect_policy"])) if "expect_policy" in doc else None
    baselines = None
    if "expect_baseline" in doc:
        baselines = msgspec.json.decode(
            (GOLDEN / doc["expect_baseline"]).read_bytes(), type=Baselines
        )
    result = Engine(policy, baselines).analyze(decode_run(raw))
    hits = [
        f
        for f in result.findings
        if f.category.value == expect["category"]
        and ("rule" not in expect or f.rule == expect["rule"])
        and ("step_index" not in expect or f.step_index == expect["step_index"])
        and all(f.evidence.get(k) == v for k, v in expect.get("evidence", {}).items())
    ]
    shown = [(f.rule, f.severity.value, f.step_index, f.message) for f in result.findings]
    if expect["fires"]:
        assert hits, f"expected {expect} to fire; got {shown}"
        if "severity" in expect:
            worst = max((f.severity for f in hits), key=lambda s: s.rank)
            assert worst.value == expect["severity"], shown
    else:
        assert not hits, f"expected {expect} not to fire; got {shown}"


def test_every_detector_has_both_kinds_of_golden_trace() -> None:
    kinds: dict[str, set[bool]] = {}
    for path in CASES:
        exp = json.loads(path.read_bytes())["expect"]
        kinds.setdefault(exp["category"], set()).add(bool(exp["fires"]))
    missing = {c: k for c, k in kinds.items() if k != {True, False}}
    assert not missing, f"categories lacking a firing or a quiet golden trace: {missing}"
    assert len(kinds) >= 9, sorted(kinds)


def _declared_rules() -> dict[str, tuple[str, ...]]:
    """Every rule id the detectors declare (``policy.rule.*`` as one family) -> severities."""
    return {
        pattern: tuple(s.value for s in severities)
        for cls in DETECTORS.values()
        for pattern, severities in cls.rules.items()
    }


def _expectations() -> list[dict[str, object]]:
    return [json.loads(p.read_bytes())["expect"] for p in CASES]


def _names(pattern: str, expect: dict[str, object]) -> bool:
    rule = expect.get("rule")
    return isinstance(rule, str) and fnmatchcase(rule, pattern)


def test_every_declared_rule_and_severity_is_pinned_by_a_golden_trace() -> None:
    """A golden trace that names no rule proves nothing about each rule of its category:
    every declared rule has a firing golden trace naming it, and each severity the rule
    may have is the exact worst severity of one of them."""
    expectations = _expectations()
    unpinned: dict[str, list[str]] = {}
    for pattern, severities in _declared_rules().items():
        firing = [e for e in expectations if e["fires"] and _names(pattern, e)]
        pinned = {e.get("severity") for e in firing}
        missing = [s for s in severities if s not in pinned]
        if not firing:
            missing.insert(0, "(no firing trace)")
        if missing:
            unpinned[pattern] = missing
    assert not unpinned, f"declared rules and severities no golden trace pins: {unpinned}"


def test_every_declared_rule_has_a_quiet_or_lower_twin() -> None:
    """Next to its firing traces, every rule has a golden trace naming it that must stay
    quiet or fire below the rule's highest severity: the twin that shows what the cause is."""
    expectations = _expectations()
    lonely = []
    for pattern, severities in _declared_rules().items():
        top = max((Severity(s) for s in severities), key=lambda s: s.rank)
        if not any(
            _names(pattern, e)
            and (not e["fires"] or Severity(str(e.get("severity", top.value))).rank < top.rank)
            for e in expectations
        ):
            lonely.append(pattern)
    assert not lonely, f"rules without a quiet (or lower-severity) golden twin: {lonely}"
