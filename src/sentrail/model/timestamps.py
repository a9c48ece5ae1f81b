"""Reading the timestamps of a trace: ISO 8601 text in, an aware datetime (or nothing) out.

Every layer reads trace times the same way (detectors, the engine's durations, the index's
start times, the watch's clock column), so the rule lives once, here: a time without a zone
is UTC, and text that is not a time is no time at all (the telemetry detector reports it),
never an error.
"""

from __future__ import annotations

import datetime as dt


def parse_time(text: str | None) -> dt.datetime | None:
    """``text`` as an aware datetime (UTC when it names no zone); None when it is no time."""
    if not text:
        return None
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def epoch_of(text: str | None, default: float) -> float:
    """``text`` as seconds since the epoch, or ``default`` when it is no time."""
    when = parse_time(text)
    return when.timestamp() if when is not None else default
