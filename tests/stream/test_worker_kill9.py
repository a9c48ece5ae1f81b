"""kill -9 of real ``sentrail worker`` processes under continuous publishing (issue 10,
item 0): nothing lost, nothing doubled, every finding stored once and printed once.

A few rounds here; ``benchmarks/worker_kill9.py`` runs 30 for the figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bus.conftest import NATS_URL
from tests.stream.kill9 import Harness


@pytest.mark.parametrize("partitions", [1, 2])
def test_killed_workers_under_continuous_publishing_lose_and_double_nothing(
    tmp_path: Path, partitions: int
) -> None:
    figures = Harness(NATS_URL, tmp_path, partitions, rate=100, seed=partitions).run(
        rounds=3 if partitions == 1 else 4
    )
    assert figures.stream_events > 0 and figures.findings_expected > 0
    assert figures.stored_events == figures.stream_events
    assert (figures.events_lost, figures.events_doubled) == (0, 0)
    assert figures.completed_runs_not_indexed == 0
    assert figures.findings_not_stored == 0
    assert figures.findings_never_emitted == 0
    assert figures.findings_emitted_twice == 0
    assert figures.checkpoint_size == figures.log_size  # a clean stop covers everything
    assert not figures.publisher_killed  # `emit --loop` stopped on SIGINT
