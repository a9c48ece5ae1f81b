"""The event bus: live step events from producers to workers and watchers.

- :mod:`.base` — the ``Bus`` / ``Consumer`` Protocols, subjects and message records.
- :mod:`.memory` — the in-process backend (the embedded default).
- :mod:`.nats` — NATS JetStream (the ``nats`` extra).
- :func:`open_bus` — ``memory://`` or ``nats://host:port``.
"""

from __future__ import annotations

from sentrail.bus.base import Bus, BusError, BusMessage, Consumer, subject_for
from sentrail.bus.factory import open_bus

__all__ = ["Bus", "BusError", "BusMessage", "Consumer", "open_bus", "subject_for"]
