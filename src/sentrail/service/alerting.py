"""Alerting for the service and workers: an AlertRouter from a policy file, and its
counters as Prometheus metrics (``sentrail_alerts_total{outcome}``,
``sentrail_alert_sink_total{sink,outcome}``), dropped alerts included."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from sentrail.alerts.policy import load_alert_policy
from sentrail.alerts.router import AlertRouter
from sentrail.alerts.sinks import build_sinks


def open_router(path: str) -> AlertRouter:
    """The router of the alert policy at ``path`` (sinks from the environment's secrets)."""
    policy = load_alert_policy(path)
    return AlertRouter(policy, build_sinks(policy))


class AlertCollector(Collector):
    def __init__(self, router: AlertRouter) -> None:
        self.router = router

    def collect(self) -> Iterator[CounterMetricFamily]:
        total = CounterMetricFamily(
            "sentrail_alerts", "Alerts by what happened to them", labels=["outcome"]
        )
        for outcome, n in sorted(self.router.counters().items()):
            total.add_metric([outcome], n)
        yield total
        per_sink = CounterMetricFamily(
            "sentrail_alert_sink",
            "Alert deliveries by sink and outcome",
            labels=["sink", "outcome"],
        )
        for sink, counts in sorted(self.router.sink_counters().items()):
            for outcome, n in sorted(counts.items()):
                per_sink.add_metric([sink, outcome], n)
        yield per_sink
