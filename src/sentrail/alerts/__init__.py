"""Alerts: which findings page, ticket or go into a digest, and delivery to webhooks, Slack
and PagerDuty (the ``[alerts]`` extra, httpx).

Alerts are best-effort: a sink that is down never blocks analysis or the evidence path, and
every alert that is not delivered is counted (``AlertRouter.counters()``).

Importing this package imports nothing optional; ``sentrail.alerts.sinks`` needs httpx.
"""
