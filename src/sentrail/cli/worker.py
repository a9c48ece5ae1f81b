"""``sentrail worker``: analyse one partition of a tenant's live stream, durably.

Where the worker's findings go (the store first, then alerts, the printer and a SIEM
file) is assembled in :func:`sentrail.runtime.compose.worker_pipeline`; the worker signs
checkpoints of what it stores on the service's 1-second clock
(the store's :class:`~sentrail.store.checkpoint_timer.CheckpointTimer`).

``SENTRAIL_TEST_KILL_AT=fetched:N`` or ``committed:N`` makes the process kill itself
(SIGKILL) right after its N-th fetch or store commit: the crash tests' way of stopping a
real worker at an exact point (docs/streaming.md).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from sentrail.bus.base import Bus, BusError
from sentrail.cli.common import EXIT_FINDINGS, fail
from sentrail.cli.store import Database, _keys, _open
from sentrail.cli.store_access import keep_policy
from sentrail.engine.config import EngineConfig
from sentrail.errors import SentrailError
from sentrail.model.finding import Severity
from sentrail.report.escape import safe_text
from sentrail.runtime.compose import worker_pipeline
from sentrail.runtime.worker import Worker
from sentrail.store.checkpoint_timer import CheckpointTimer

KILL_AT = "SENTRAIL_TEST_KILL_AT"


def kill_at(spec: str | None) -> Callable[[str], None] | None:
    """The fault hook of ``SENTRAIL_TEST_KILL_AT`` (``point:N``), or None."""
    if not spec:
        return None
    point, _, count = spec.partition(":")
    try:
        left = int(count or "1")
    except ValueError:
        fail(f"{KILL_AT} must be fetched:N or committed:N")
    seen = 0

    def fault(at: str) -> None:
        nonlocal seen
        if at == point:
            seen += 1
            if seen >= left:
                os.kill(os.getpid(), signal.SIGKILL)

    return fault


def _siem(path: Path | None, fmt: str) -> Any:
    if path is None:
        return None
    from sentrail.siem.formats import ExportFormat
    from sentrail.siem.forward import Forwarder, StreamSink

    try:
        kind = ExportFormat(fmt)
    except ValueError:
        fail(f"--siem-format must be one of {', '.join(f.value for f in ExportFormat)}")
    try:
        stream = path.open("ab")
    except OSError as exc:
        fail(f"cannot open {safe_text(path)}: {exc.strerror}")
    return Forwarder(kind, StreamSink(stream), batch_size=100)


def worker(
    bus_url: Annotated[str, typer.Option("--bus", help="nats://HOST:PORT")],
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant whose stream to read")],
    database: Database = None,
    app_id: Annotated[str, typer.Option("--app", help="App id the runs are indexed under")] = (
        "default"
    ),
    partition: Annotated[int, typer.Option("--partition", help="This worker's partition")] = 0,
    partitions: Annotated[int, typer.Option("--partitions", help="Number of partitions")] = 1,
    idle_timeout: Annotated[
        float, typer.Option("--idle-timeout", help="Close a silent run after this many seconds")
    ] = 300.0,
    policy: Annotated[str | None, typer.Option("--policy", help="Policy bundle")] = None,
    baselines: Annotated[str | None, typer.Option("--baselines", help="Baselines file")] = None,
    min_severity: Annotated[
        str, typer.Option("--min-severity", help="Print findings from: info|warning|critical")
    ] = "warning",
    lease_ttl: Annotated[
        float, typer.Option("--lease-ttl", help="Seconds a dead worker's partition stays held")
    ] = 10.0,
    alerts: Annotated[
        str | None, typer.Option("--alerts", help="Alert policy (docs/alerts.md)")
    ] = None,
    siem_file: Annotated[
        Path | None, typer.Option("--siem-file", help="Append each run's SIEM records here")
    ] = None,
    siem_format: Annotated[
        str, typer.Option("--siem-format", help="ocsf | splunk-hec | cef | ecs")
    ] = "ocsf",
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help="Serve Prometheus metrics on 127.0.0.1")
    ] = None,
) -> None:
    """Consume the tenant stream, store every event, analyse runs as steps arrive.

    One run is always handled by one worker: a worker holds an exclusive lease on its
    partition, and a replacement resumes the partition's runs from the store.
    """
    if not 0 <= partition < partitions:
        fail(f"--partition must be in 0..{partitions - 1}")
    try:
        print_from = Severity.parse(min_severity)
        engine = EngineConfig(policy_path=policy, baseline_path=baselines).build()
        signer = _keys().ensure()
    except (SentrailError, ValueError) as exc:
        fail(str(exc))
    router = None
    if alerts is not None:
        try:
            from sentrail.service.alerting import open_router
        except ImportError:
            fail("alerts need the extras: pip install 'sentrail[server,alerts]'")
        try:
            router = open_router(alerts)
        except SentrailError as exc:
            fail(str(exc))
    fault = kill_at(os.environ.get(KILL_AT))
    siem = _siem(siem_file, siem_format)
    store = _open(database, signer)
    keep_policy(store, engine.policy.sha256, policy)  # runs cite it by hash
    pipeline = worker_pipeline(
        store,
        router=router,
        print_from=print_from,
        siem=siem,
        policy_sha256=engine.policy.sha256,
    )
    timer = store.checkpoint_timer()  # the store's one timer (started after the lease)

    def make_worker(bus: Bus) -> Worker:
        return Worker(
            bus,
            engine,
            tenant,
            store=store,
            app_id=app_id,
            partition=partition,
            partitions=partitions,
            idle_timeout=idle_timeout,
            pipeline=pipeline,
            on_stored=timer.touch,
            fault=fault,
        )

    try:
        code = asyncio.run(_serve(bus_url, make_worker, lease_ttl, router, metrics_port, timer))
    except (BusError, SentrailError) as exc:
        fail(str(exc))
    finally:
        try:
            pipeline.shutdown()
        finally:
            store.close()
    raise typer.Exit(code)


def _serve_metrics(w: Worker, router: Any, port: int) -> None:
    """Worker statistics (and alert counters) for Prometheus, on loopback only."""
    from prometheus_client import start_http_server
    from prometheus_client.core import CounterMetricFamily
    from prometheus_client.registry import CollectorRegistry

    class Stats:
        def collect(self) -> Any:
            m = CounterMetricFamily("sentrail_worker", "Worker counters", labels=["what"])
            for name, value in vars(w.stats).items():
                m.add_metric([name], value)
            yield m

    registry = CollectorRegistry()
    registry.register(Stats())
    if router is not None:
        from sentrail.service.alerting import AlertCollector

        registry.register(AlertCollector(router))
    start_http_server(port, addr="127.0.0.1", registry=registry)


async def _serve(
    bus_url: str,
    make_worker: Callable[[Bus], Worker],
    lease_ttl: float,
    router: Any,
    metrics_port: int | None,
    timer: CheckpointTimer,
) -> int:
    from sentrail.bus import open_bus

    bus = await open_bus(bus_url)
    w = make_worker(bus)
    owner = f"{socket.gethostname()}:{os.getpid()}"
    lease_name = f"{w.tenant}.p{w.partition}-of-{w.partitions}"
    take = getattr(bus, "lease", None)
    lease = await take(lease_name, owner, lease_ttl) if take is not None else None
    if metrics_port is not None:
        _serve_metrics(w, router, metrics_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    stopped_by: list[int] = []  # the signal that stopped the worker: exit 128 + its number

    def on_signal(sig: int) -> None:
        stopped_by.append(sig)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    lost = False

    async def renew() -> None:
        nonlocal lost
        while not stop.is_set() and lease is not None:
            await asyncio.sleep(lease_ttl / 3)
            try:
                await lease.renew()
            except BusError as exc:
                typer.echo(f"error: {safe_text(str(exc))}; stopping", err=True)
                lost = True
                stop.set()

    typer.echo(
        f"worker {owner}: tenant {safe_text(w.tenant)} partition {w.partition}/{w.partitions}",
        err=True,
    )
    renewer = asyncio.create_task(renew())
    timer.start()  # after the lease: catches up tenants a killed predecessor left behind
    try:
        await w.run(stop)
    finally:
        renewer.cancel()
        timer.stop()  # the last events are covered before the process ends
        if lease is not None and not lost:
            await lease.release()
        await bus.close()
    s = w.stats
    typer.echo(
        f"stopped: {s.events} event(s), {s.duplicates} duplicate(s), {s.findings} finding(s), "
        f"{s.runs_completed} run(s) completed, {s.runs_incomplete} incomplete",
        err=True,
    )
    if lost:
        return EXIT_FINDINGS
    return 128 + stopped_by[0] if stopped_by else 0
