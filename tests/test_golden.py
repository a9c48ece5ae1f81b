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
from pathlib import Path

import msgspec
import pytest

from sentrail.engine.engine import Engine
from sentrail.model.baseline import Baselines
from sentrail.model.decode import decode_run
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
