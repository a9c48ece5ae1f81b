"""The engine: what is shared across runs — the policy, the baselines, the detector set.

A run is judged by folding its events (:mod:`sentrail.engine.fold`); ``analyze`` folds a
whole trace as the events a live producer would have sent, so a trace file and a stream
of the same run agree by construction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sentrail.detect.base import Detector
from sentrail.detect.registry import DETECTORS
from sentrail.engine.fold import RunFolder
from sentrail.model.baseline import Baselines
from sentrail.model.events import StepEvent
from sentrail.model.finding import RunResult
from sentrail.model.trace import Run, RunHeader
from sentrail.policy.compiled import Policy


class Engine:
    """Holds what is shared across runs: the policy, baselines and the detector set."""

    def __init__(
        self,
        policy: Policy | None = None,
        baselines: Baselines | None = None,
        *,
        today: dt.date | None = None,
        detectors: Iterable[type[Detector]] = DETECTORS.values(),
    ) -> None:
        self.policy = policy or Policy()
        self.baselines = baselines
        self.today = today
        self.detectors = tuple(detectors)

    def start(self, header: RunHeader) -> RunFolder:
        """A fold of one run, opened with its header."""
        return RunFolder(self, header)

    def analyze(self, run: Run) -> RunResult:
        """Judge a whole trace: its steps folded in order, then the end of the run."""
        folder = self.start(run.header())
        for step in run.steps:
            folder.feed(StepEvent(run_id=run.run_id, step=step))
        result = folder.close().result
        assert result is not None
        return result
