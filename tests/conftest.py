from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from sentrail.engine.engine import Engine
from sentrail.model.baseline import Baselines
from sentrail.model.decode import decode_run
from sentrail.model.finding import RunResult
from sentrail.policy.compiled import Policy
from sentrail.policy.load import parse_policy

# No time limit per generated example: these machines are shared and noisy, and a slow
# example is not a wrong one (timing belongs in `make bench`, never in a test).
settings.register_profile("sentrail", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("sentrail")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SHARED = Path(os.environ.get("SENTRAIL_SHARED") or ROOT.parent / "shared")


def analyze_doc(
    doc: dict[str, Any] | bytes,
    policy_yaml: str | None = None,
    baselines: Baselines | None = None,
) -> RunResult:
    """Analyse one trace document (a dict or raw bytes) with an optional inline policy."""
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    policy = Policy(parse_policy(policy_yaml.encode())) if policy_yaml is not None else Policy()
    return Engine(policy, baselines).analyze(decode_run(data))


@pytest.fixture
def analyze() -> Any:
    return analyze_doc
