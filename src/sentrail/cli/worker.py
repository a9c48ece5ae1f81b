"""``sentrail worker``: analyse one partition of a tenant's live stream, durably."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from typing import Annotated, Any

import typer

from sentrail.bus.base import BusError, BusMessage
from sentrail.cli.common import EXIT_FINDINGS, fail
from sentrail.cli.store import Database, _keys, _open
from sentrail.errors import SentrailError
from sentrail.model.finding import Finding, Severity
from sentrail.report.escape import safe_text
from sentrail.runtime.batch import EngineConfig
from sentrail.runtime.worker import Worker


def _print_finding(min_rank: int) -> Any:
    def sink(tenant: str, run_id: str, f: Finding, msg: BusMessage | None) -> None:
        if f.severity.rank < min_rank:
            return
        step = "-" if f.step_index is None else str(f.step_index)
        typer.echo(
            f"[{f.severity.value.upper()}] {safe_text(tenant)} run {safe_text(run_id)} "
            f"step {step}: {safe_text(f.rule)}: {safe_text(f.message, limit=300)}"
        )
        sys.stdout.flush()

    return sink


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
        rank = Severity.parse(min_severity).rank
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
    store = _open(database, signer)
    try:
        code = asyncio.run(
            _serve(
                bus_url,
                tenant,
                store,
                engine,
                app_id,
                partition,
                partitions,
                idle_timeout,
                rank,
                lease_ttl,
                router,
                metrics_port,
            )
        )
    except (BusError, SentrailError) as exc:
        fail(str(exc))
    finally:
        store.close()
        if router is not None:
            router.close()
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
    tenant: str,
    store: Any,
    engine: Any,
    app_id: str,
    partition: int,
    partitions: int,
    idle_timeout: float,
    rank: int,
    lease_ttl: float,
    router: Any = None,
    metrics_port: int | None = None,
) -> int:
    from sentrail.bus import open_bus

    bus = await open_bus(bus_url)
    owner = f"{socket.gethostname()}:{os.getpid()}"
    lease_name = f"{tenant}.p{partition}-of-{partitions}"
    take = getattr(bus, "lease", None)
    lease = await take(lease_name, owner, lease_ttl) if take is not None else None
    printer = _print_finding(rank)

    def on_finding(t: str, run_id: str, f: Finding, msg: BusMessage | None) -> None:
        printer(t, run_id, f, msg)
        live = w.runs.get(run_id)
        if router is not None and live is not None:
            router.submit(f, live.header, live.steps, trace_hash=live.trace_hash or None)

    w = Worker(
        bus,
        engine,
        tenant,
        store=store,
        app_id=app_id,
        partition=partition,
        partitions=partitions,
        idle_timeout=idle_timeout,
        on_finding=on_finding,
    )
    if metrics_port is not None:
        _serve_metrics(w, router, metrics_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
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
        f"worker {owner}: tenant {safe_text(tenant)} partition {partition}/{partitions}",
        err=True,
    )
    renewer = asyncio.create_task(renew())
    try:
        await w.run(stop)
    finally:
        renewer.cancel()
        if lease is not None and not lost:
            await lease.release()
        await bus.close()
    s = w.stats
    typer.echo(
        f"stopped: {s.events} event(s), {s.duplicates} duplicate(s), {s.findings} finding(s), "
        f"{s.runs_completed} run(s) completed, {s.runs_incomplete} incomplete",
        err=True,
    )
    return EXIT_FINDINGS if lost else 0
