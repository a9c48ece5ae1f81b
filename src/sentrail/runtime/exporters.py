"""The pipeline's exporters besides the store writer: alerts, a terminal, a SIEM, a callback.

Each is an :class:`~sentrail.runtime.pipeline.Exporter` (``export`` / ``flush`` /
``shutdown``) over :class:`~sentrail.runtime.pipeline.RunUpdate` s; which of them a command
uses is decided in :mod:`sentrail.runtime.compose`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

from sentrail.model.finding import Severity
from sentrail.report.escape import safe_text
from sentrail.runtime.pipeline import RunUpdate

if TYPE_CHECKING:
    from sentrail.alerts.router import AlertRouter
    from sentrail.siem.forward import Forwarder


class AlertExporter:
    """Each new finding to the alert router (which queues: ``export`` never waits on a
    sink, and the router counts what it drops)."""

    def __init__(self, router: AlertRouter) -> None:
        self.router = router

    def export(self, updates: Sequence[RunUpdate]) -> None:
        for u in updates:
            if not u.findings:
                continue
            header = u.run.header()
            for f in u.findings:
                self.router.submit(f, header, u.run.steps, trace_hash=u.trace_hash or None)

    def flush(self) -> None:
        return None

    def shutdown(self) -> None:
        self.router.close()


class FindingPrinter:
    """One line per finding at or above ``min_severity`` (``sentrail worker``'s output),
    ending with the finding's id (what the API and the store know it by), every string
    escaped for the terminal."""

    def __init__(self, min_severity: Severity = Severity.INFO, out: TextIO | None = None) -> None:
        self.min_rank = min_severity.rank
        self.out = out

    def export(self, updates: Sequence[RunUpdate]) -> None:
        out = self.out or sys.stdout
        for u in updates:
            for f in u.findings:
                if f.severity.rank < self.min_rank:
                    continue
                step = "-" if f.step_index is None else str(f.step_index)
                out.write(
                    f"[{f.severity.value.upper()}] {safe_text(u.tenant)} run "
                    f"{safe_text(u.run_id)} step {step}: {safe_text(f.rule)}: "
                    f"{safe_text(f.message, limit=300)} ({safe_text(f.id, limit=80)})\n"
                )
        out.flush()

    def flush(self) -> None:
        (self.out or sys.stdout).flush()

    def shutdown(self) -> None:
        self.flush()


class SiemExporter:
    """A closed run's SIEM records (its tool calls and findings, in step order) to a
    forwarder: a file, standard output or Splunk HEC, in the forwarder's format."""

    def __init__(self, forwarder: Forwarder, clock: Callable[[], float] = time.time) -> None:
        self.forwarder = forwarder
        self.clock = clock

    def export(self, updates: Sequence[RunUpdate]) -> None:
        from sentrail.siem.records import records_from_run

        for u in updates:
            if u.result is None:
                continue
            for record in records_from_run(
                u.run,
                u.result,
                fallback_ms=int(self.clock() * 1000),
                trace_hash=u.trace_hash or None,
            ):
                self.forwarder.send(record)

    def flush(self) -> None:
        self.forwarder.flush()

    def shutdown(self) -> None:
        self.forwarder.close()


class Emitter:
    """Every update to a function, in the producer's thread: in-process listeners (tests,
    benchmarks, an embedding application)."""

    def __init__(self, fn: Callable[[RunUpdate], None]) -> None:
        self.fn = fn

    def export(self, updates: Sequence[RunUpdate]) -> None:
        for u in updates:
            self.fn(u)

    def flush(self) -> None:
        return None

    def shutdown(self) -> None:
        return None
