"""The values a guarded call carries, made JSON-safe: what the decision point decides on
and observes is what the function gets, as JSON can hold it, and reading a value never
raises (``jsonable``, ``keyed``)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from sentrail.report.escape import utf8_safe

MAX_VALUE_CHARS = 64 * 1024


def jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of ``value`` (pydantic models dumped, other objects as ``repr``),
    with long strings cut, lone surrogates replaced (:func:`utf8_safe`) and nesting
    bounded. Never raises: a value that breaks while it is read (an ``__iter__`` or
    ``__getitem__`` that raises) is shown as its ``repr``."""
    try:
        return _jsonable(value, depth)
    except Exception:
        return _repr(value)


def _jsonable(value: Any, depth: int) -> Any:
    if depth > 32:
        return "<nested too deep>"
    if value is None or isinstance(value, bool):
        return value
    # Subclasses (numpy.float64, markupsafe.Markup...) as the plain type: JSON knows no more.
    if isinstance(value, int):
        plain = int.__int__(value)
        return plain if _INT_MIN <= plain <= _INT_MAX else _wide_int(plain)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        cut = str.__str__(value)[:MAX_VALUE_CHARS]
        return utf8_safe(cut if len(value) <= MAX_VALUE_CHARS else cut + "…")
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, Mapping):
        items = list(value.items())[:1000]
        return keyed((key_text(k), jsonable(v, depth + 1)) for k, v in items)
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v, depth + 1) for v in list(value)[:1000]]
    dump = getattr(value, "model_dump", None)  # pydantic v2
    if callable(dump):
        try:
            return jsonable(dump(mode="json"), depth + 1)
        except Exception:  # a model that cannot dump itself is shown as its repr
            return _repr(value)
    try:
        return jsonable(msgspec.to_builtins(value), depth + 1)  # dataclasses, structs, enums
    except (TypeError, ValueError):
        return _repr(value)


def key_text(key: Any) -> str:
    """A mapping key as text, cut to 200 characters (never raises)."""
    try:
        return str.__str__(key)[:200] if isinstance(key, str) else str(key)[:200]
    except Exception:  # a __str__ that raises or gives no string
        return f"<{type(key).__name__}>"


# What JSON (msgspec) carries as an integer; a wider one is given as the nearest float, so
# that a policy's comparisons (``double(params.amount) > 10000.0``) still hold.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def _wide_int(value: int) -> float:
    try:
        return float(value)
    except OverflowError:  # beyond the largest float: the largest float, with its sign
        return sys.float_info.max if value > 0 else -sys.float_info.max


def _repr(value: Any) -> str:
    try:
        return utf8_safe(repr(value)[:MAX_VALUE_CHARS])
    except Exception:  # a __repr__ that raises
        return f"<{type(value).__name__}>"


def keyed(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """The pairs as a dict, keys made UTF-8-safe, none lost: keys that read alike once made
    safe (``a\\udc80`` and ``a\\udc81``) stay two, the later one ``a\ufffd#N`` with an N that
    no key of the pairs holds. So the decision sees every value the function gets, each
    under the name it has there or a name no other value has."""
    items = [(utf8_safe(k), v) for k, v in pairs]
    taken = {k for k, _ in items}
    out: dict[str, Any] = {}
    for key, value in items:
        if key in out:
            n = 2
            while f"{key}#{n}" in taken:
                n += 1
            key = f"{key}#{n}"
            taken.add(key)
        out[key] = value
    return out
