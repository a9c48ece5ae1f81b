"""Example traces judged under the example policy, and the golden-file helper.

Golden files live in ``golden/``; ``SENTRAIL_UPDATE_GOLDEN=1 pytest tests/forensics``
rewrites them (then review the diff: a golden file is a claim about behaviour).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from sentrail.engine.engine import Engine
from sentrail.model.decode import decode_run
from sentrail.model.finding import RunResult
from sentrail.model.trace import Run
from sentrail.policy.compiled import Policy
from sentrail.policy.load import load_policy
from tests.conftest import EXAMPLES
from tests.store.conftest import Backend, _postgres, _sqlite

GOLDEN = Path(__file__).parent / "golden"
TRACES = sorted(p.name for p in (EXAMPLES / "traces").glob("*.json") if p.name != "truncated.json")


@cache
def engine() -> Engine:
    return Engine(Policy(load_policy(str(EXAMPLES / "policy.yaml"))))


def judged(name: str) -> tuple[Run, RunResult]:
    run = decode_run((EXAMPLES / "traces" / name).read_bytes())
    return run, engine().analyze(run)


def check_golden(name: str, value: Any) -> None:
    path = GOLDEN / name
    text = json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if os.environ.get("SENTRAIL_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"no golden file {path} (set SENTRAIL_UPDATE_GOLDEN=1 to write it)"
    assert json.loads(path.read_text()) == json.loads(text), f"{name} differs from golden"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Both real store backends (PostgreSQL errors, never skips, when it is down)."""
    yield from _sqlite(tmp_path) if request.param == "sqlite" else _postgres()
