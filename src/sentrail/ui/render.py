"""HTML rendering: the Jinja2 environment (autoescape always on) and the filters that make
trace content inert and bounded before it is escaped.

Trace content is hostile. Every string from a trace goes through :func:`inert`: control,
bidi-override and zero-width characters are shown as visible escapes and the text is cut
to a bound (a 10 MB tool result renders as its first 64 KiB and a note of what was cut);
autoescaping then makes ``<script>`` and SVG markup text. Nothing from a trace ever
becomes a URL, an attribute name or a style: links are built from ids the store checked.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import msgspec
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from sentrail.report.escape import safe_text
from sentrail.service.auth import shown_actor

TEMPLATES = Path(__file__).resolve().parent / "templates"
TEXT_LIMIT = 4_000  # reasoning, messages, parameters in place
DATA_LIMIT = 64 * 1024  # a result's data, expanded


def inert(value: object, limit: int = TEXT_LIMIT) -> str:
    """Hostile text made visible and bounded (escaped afterwards by autoescape)."""
    if value is None:
        return ""
    return safe_text(value, limit=limit, one_line=False)


def inert_line(value: object, limit: int = 200) -> str:
    """One line of hostile text (names, ids, tool names)."""
    if value is None:
        return ""
    return safe_text(value, limit=limit, one_line=True)


def actor(value: str | None) -> str:
    """Who acted, as the API shows it (:func:`shown_actor`), made one inert line."""
    return inert_line(shown_actor(value))


def as_json(value: object, limit: int = DATA_LIMIT) -> str:
    """Any JSON value, indented, made inert and cut to ``limit`` characters.

    A long string is cut before it is encoded, so a 10 MB result costs a slice, not an
    encoding of 10 MB."""
    if isinstance(value, str) and len(value) > limit:
        value = value[:limit] + f"… (+{len(value) - limit} chars)"
    try:
        text = msgspec.json.format(msgspec.json.encode(value), indent=2).decode()
    except (TypeError, msgspec.EncodeError):
        text = repr(value)
    return inert(text, limit)


def when(epoch: float | None) -> str:
    if epoch is None:
        return "—"
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def day_label(day: int) -> str:
    return dt.datetime.fromtimestamp(day * 86_400, dt.UTC).strftime("%m-%d")


def duration(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 120_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms / 60_000:.1f} min"


def path_part(value: str) -> str:
    """One URL path segment (ids are checked already; this is defence in depth)."""
    return quote(value, safe="")


def query(params: dict[str, Any]) -> str:
    """A query string of the non-empty ``params``."""
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return ("?" + urlencode(kept)) if kept else ""


def make_env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"], default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        inert=inert,
        inert_line=inert_line,
        actor=actor,
        as_json=as_json,
        when=when,
        day_label=day_label,
        duration=duration,
        path_part=path_part,
    )
    env.globals["query"] = query
    return env
