"""What an engine is built from: a policy bundle file, a baselines file, today's date.

``EngineConfig`` is a small value (cheap to pass to worker processes); ``build()`` reads
and validates the files — the engine's only reads, done once, before any analysis, so a
bad bundle or baselines file is a located error before any work starts.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import msgspec

from sentrail.engine.engine import Engine
from sentrail.errors import InputError
from sentrail.model.baseline import BASELINE_FORMAT, Baselines
from sentrail.policy.compiled import Policy
from sentrail.policy.load import load_policy


class EngineConfig(msgspec.Struct, frozen=True):
    policy_path: str | None = None
    baseline_path: str | None = None
    today: dt.date | None = None

    def build(self) -> Engine:
        policy = Policy(load_policy(self.policy_path)) if self.policy_path else Policy()
        baselines = load_baselines(self.baseline_path) if self.baseline_path else None
        return Engine(policy, baselines, today=self.today)


def load_baselines(path: str) -> Baselines:
    """A ``sentrail baseline learn`` file, validated (InputError naming the file)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read baselines: {exc.strerror}", path) from None
    try:
        baselines = msgspec.json.decode(data, type=Baselines)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InputError(f"not a sentrail baselines file: {exc}", path) from None
    if baselines.format != BASELINE_FORMAT:
        raise InputError(f"baselines format {baselines.format!r} is not {BASELINE_FORMAT!r}", path)
    return baselines
