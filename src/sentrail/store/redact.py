"""Field redaction of JSON payloads, findings and results (pure functions, no I/O).

A field spec is a dotted path into a JSON document: each component matches an object key
(or, when it is a decimal number, a list index), ``*`` matches any key or index. A spec
without a dot matches that key at ANY depth (``password`` redacts every ``"password"``
member wherever it is). A matched value, whatever it holds, becomes the string
``"[REDACTED]"``. Keys that contain a dot can only be reached with ``*``.

Examples: ``step.tool_call.parameters.password``, ``steps.*.result.data.email``, ``token``.

Findings and results derived from a redacted run are scrubbed too (the ``findings`` rows
and the run's ``results`` row), simply:

- whole-run erasure: every value of each finding's ``evidence`` and its ``message``
  become ``"[REDACTED]"`` (rule, category, severity, step and tags are kept);
- field redaction: the specs are applied to each finding's ``evidence`` too, and any
  evidence string or message that contains a redacted string value (of 4 characters or
  more; its first 24 characters suffice, as messages quote values cut short) becomes
  ``"[REDACTED]"``.

A row that is not the JSON object it should be cannot be scrubbed and is replaced by the
JSON string ``"[REDACTED]"``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from sentrail.evidence.redaction import REDACTED
from sentrail.store.base import StoreError

MAX_FIELDS = 100
MAX_FIELD_CHARS = 512
MIN_SECRET_CHARS = 4
PROBE_CHARS = 24
FieldSpec = tuple[str, ...]
_REDACTED_JSON = msgspec.json.encode(REDACTED)


def parse_fields(fields: Sequence[str]) -> tuple[FieldSpec, ...]:
    """The specs of ``fields`` (StoreError for an empty or malformed one)."""
    if isinstance(fields, str):
        raise StoreError("fields must be a list of field specs, not one string")
    if len(fields) > MAX_FIELDS:
        raise StoreError(f"at most {MAX_FIELDS} field specs")
    out: list[FieldSpec] = []
    for spec in fields:
        if not isinstance(spec, str) or not spec or len(spec) > MAX_FIELD_CHARS:
            raise StoreError(f"a field spec is a non-empty string of at most {MAX_FIELD_CHARS}")
        parts = tuple(spec.split("."))
        if "" in parts:
            raise StoreError(f"field spec {spec!r} has an empty component")
        out.append(parts)
    return tuple(dict.fromkeys(out))


def _matches(component: str, key: object) -> bool:
    return component == "*" or component == str(key)


def _at(node: Any, spec: FieldSpec, i: int, hits: list[Any]) -> Any:
    if i == len(spec):
        hits.append(node)
        return REDACTED
    c = spec[i]
    if isinstance(node, dict):
        return {k: _at(v, spec, i + 1, hits) if _matches(c, k) else v for k, v in node.items()}
    if isinstance(node, list):
        return [_at(v, spec, i + 1, hits) if _matches(c, j) else v for j, v in enumerate(node)]
    return node


def _anywhere(node: Any, key: str, hits: list[Any]) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if _matches(key, k):
                hits.append(v)
                out[k] = REDACTED
            else:
                out[k] = _anywhere(v, key, hits)
        return out
    if isinstance(node, list):
        return [_anywhere(v, key, hits) for v in node]
    return node


def redact_value(value: Any, specs: Sequence[FieldSpec], hits: list[Any] | None = None) -> Any:
    """``value`` (decoded JSON) with every match of ``specs`` replaced; the values
    replaced are appended to ``hits``. ``value`` itself is not modified."""
    found: list[Any] = [] if hits is None else hits
    for spec in specs:
        value = _anywhere(value, spec[0], found) if len(spec) == 1 else _at(value, spec, 0, found)
    return value


def _strings(values: Iterable[Any]) -> Iterable[str]:
    for v in values:
        if isinstance(v, str):
            yield v
        elif isinstance(v, dict):
            yield from _strings(v.values())
        elif isinstance(v, list):
            yield from _strings(v)


def secrets_of(hits: Iterable[Any]) -> set[str]:
    """The redacted string values worth looking for elsewhere."""
    return {s for s in _strings(hits) if len(s) >= MIN_SECRET_CHARS and s != REDACTED}


def _reject(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def view_of(payload: bytes, specs: Sequence[FieldSpec]) -> tuple[bytes | None, set[str]]:
    """The redacted view of a JSON payload (compact JSON, key order kept) and the string
    values it removed; ``(None, set())`` when the payload is not JSON."""
    try:
        doc = json.loads(payload, parse_constant=_reject)
        hits: list[Any] = []
        view = redact_value(doc, specs, hits)
        out = json.dumps(view, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (ValueError, RecursionError):
        return None, set()
    return out.encode(), secrets_of(hits)


def _mentions(text: str, probes: Sequence[str]) -> bool:
    return any(p in text for p in probes)


def _scrub_strings(node: Any, probes: Sequence[str]) -> Any:
    if isinstance(node, str):
        return REDACTED if _mentions(node, probes) else node
    if isinstance(node, dict):
        return {k: _scrub_strings(v, probes) for k, v in node.items()}
    if isinstance(node, list):
        return [_scrub_strings(v, probes) for v in node]
    return node


class Scrubber:
    """Scrubs findings and results of one redaction (see the module docstring)."""

    def __init__(self, specs: Sequence[FieldSpec], secrets: Iterable[str]) -> None:
        self.specs = tuple(specs)
        self.whole = not self.specs
        self.probes = tuple(sorted({s[:PROBE_CHARS] for s in secrets}))

    def finding(self, finding: Any) -> Any:
        if not isinstance(finding, dict):
            return REDACTED
        out = dict(finding)
        evidence = out.get("evidence")
        if isinstance(evidence, dict):
            if self.whole:
                out["evidence"] = dict.fromkeys(evidence, REDACTED)
            else:
                out["evidence"] = _scrub_strings(redact_value(evidence, self.specs), self.probes)
        elif evidence is not None:
            out["evidence"] = REDACTED
        message = out.get("message")
        if isinstance(message, str) and (self.whole or _mentions(message, self.probes)):
            out["message"] = REDACTED
        return out

    def finding_body(self, body: object) -> bytes:
        """A ``findings.body`` (JSON of a Finding), scrubbed."""
        doc = _decode(body)
        return _REDACTED_JSON if doc is None else msgspec.json.encode(self.finding(doc))

    def result_body(self, body: object) -> bytes:
        """A ``results.result`` (JSON of a RunResult): its findings and suppressed findings
        scrubbed."""
        doc = _decode(body)
        if not isinstance(doc, dict):
            return _REDACTED_JSON
        out = dict(doc)
        for name in ("findings", "suppressed"):
            items = out.get(name)
            if isinstance(items, list):
                out[name] = [self.finding(f) for f in items]
            elif items is not None:
                out[name] = []
        return msgspec.json.encode(out)


def _decode(body: object) -> Any:
    if isinstance(body, memoryview | bytearray):
        body = bytes(body)
    if not isinstance(body, bytes):
        return None
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None
