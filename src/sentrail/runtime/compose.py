"""The composition module: which sinks each producer's findings go to, decided once.

Commands and the service do not wire callbacks of their own; they ask here for a
:class:`~sentrail.runtime.pipeline.Pipeline`:

- :func:`worker_pipeline` — ``sentrail worker``: the store writer (evidence, in the
  worker's own transaction), then the alert router, the finding printer, a SIEM forwarder;
- :func:`service_pipeline` — the HTTP service: the store writer (ingest writes the
  evidence with the events), then the alert router (``POST /v1/apps/{app}/events`` and
  ``/traces`` alert through it, as the worker does);
- :func:`watch_pipeline` — ``trace watch``: the view (no store);
- :func:`listener_pipeline` — in-process listeners (tests, benchmarks, embedding).

Notifiers that may block (a SIEM over HTTP) run behind a
:class:`~sentrail.runtime.pipeline.BatchProcessor`; the alert router queues on its own,
and printers write at once (:class:`~sentrail.runtime.pipeline.SimpleProcessor`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from sentrail.model.finding import Severity
from sentrail.runtime.exporters import AlertExporter, Emitter, FindingPrinter, SiemExporter
from sentrail.runtime.pipeline import BatchProcessor, Pipeline, Processor, RunUpdate
from sentrail.runtime.pipeline import SimpleProcessor as Simple
from sentrail.runtime.store_writer import StoreWriter
from sentrail.runtime.watch_records import RecordSink, WatchView

if TYPE_CHECKING:
    from sentrail.alerts.router import AlertRouter
    from sentrail.siem.forward import Forwarder
    from sentrail.store.core import LogStore


def worker_pipeline(
    store: LogStore | None,
    *,
    router: AlertRouter | None = None,
    print_from: Severity | None = None,
    out: TextIO | None = None,
    siem: Forwarder | None = None,
    policy_sha256: str | None = None,
) -> Pipeline:
    """Store writer, then alerts, then the printer (``print_from`` and up), then SIEM."""
    notify: list[Processor] = []
    if router is not None:
        notify.append(Simple(AlertExporter(router)))
    if print_from is not None:
        notify.append(Simple(FindingPrinter(print_from, out)))
    if siem is not None:
        notify.append(BatchProcessor(SiemExporter(siem)))
    evidence = StoreWriter(store, policy_sha256=policy_sha256) if store is not None else None
    return Pipeline(evidence, notify)


def service_pipeline(
    store: LogStore, *, router: AlertRouter | None = None, policy_sha256: str | None = None
) -> Pipeline:
    """Store writer (used by ingest inside its transaction), then the alert router."""
    notify: list[Processor] = [Simple(AlertExporter(router))] if router is not None else []
    return Pipeline(StoreWriter(store, policy_sha256=policy_sha256), notify)


def watch_pipeline(sink: RecordSink, min_severity: Severity = Severity.INFO) -> Pipeline:
    """The watch's view of every run start, step and end (nothing stored)."""
    return Pipeline(None, [Simple(WatchView(sink, min_severity))])


def listener_pipeline(
    *listeners: Callable[[RunUpdate], None], store: LogStore | None = None
) -> Pipeline:
    """Each update to ``listeners`` in turn (after the store, when there is one)."""
    evidence = StoreWriter(store) if store is not None else None
    return Pipeline(evidence, [Simple(Emitter(fn)) for fn in listeners])
