"""The OpenAPI document, made true to what the service does.

FastAPI derives most of it from the routes; what it cannot see is set here:

1. request bodies: the routes read their bodies as bytes (bounded, gzip-aware), so each
   declares its body with ``openapi_extra``: a trace document (``application/json``, the
   :class:`~sentrail.model.trace.Run` schema), an NDJSON stream (``application/x-ndjson``),
   or either gzip-compressed (``application/gzip``); the small JSON bodies by their
   msgspec schemas (:func:`json_body`);
2. errors: validation errors are 400, not FastAPI's 422, and every error is an RFC 9457
   problem (``application/problem+json``); each operation lists the statuses it can give
   (401 / 403 / 429 where a key is needed, 404 where a path names a thing, 409 where
   state can conflict, 413 / 415 where a body is read, 503 everywhere the store or a
   bounded queue is involved), with ``Retry-After`` on 429 and 503;
3. ``/metrics`` is Prometheus text, not JSON.

The Bearer security scheme comes from the ``HTTPBearer`` dependency of
:func:`sentrail.service.deps.authenticated`, so every operation that needs a key says so.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from sentrail.model.events import Event
from sentrail.model.trace import Run
from sentrail.service.problems import MEDIA_TYPE, Problem
from sentrail.store.core import MAX_ID_CHARS

_REF = "#/components/schemas/{name}"
_COMPONENTS: dict[str, Any] = {}
GZIP = "application/gzip"
NDJSON = "application/x-ndjson"


def _schema_of(*kinds: Any) -> list[dict[str, Any]]:
    refs, components = msgspec.json.schema_components(kinds, ref_template=_REF)
    _COMPONENTS.update(components)
    return list(refs)


def json_body(kind: type[Any], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` declaring a JSON request body of msgspec type ``kind``."""
    (schema,) = _schema_of(kind)
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": schema}},
        }
    }


def json_reply(kind: Any, description: str) -> dict[int | str, dict[str, Any]]:
    """``responses`` declaring a 200 JSON reply of msgspec type ``kind``."""
    (schema,) = _schema_of(kind)
    return {200: {"description": description, "content": {"application/json": {"schema": schema}}}}


_BINARY = {"type": "string", "format": "binary"}
TRACE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One trace document (docs/trace-format.md); stored byte for byte. "
        "Also accepted gzip-compressed: as application/gzip, or with Content-Encoding: gzip.",
        "content": {
            "application/json": {"schema": _schema_of(Run)[0]},
            GZIP: {"schema": _BINARY},
        },
    }
}
EVENTS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "NDJSON events (run_started, step, run_completed), one per line; "
        "each line is stored as is. Also accepted gzip-compressed.",
        "content": {
            NDJSON: {"schema": {"type": "string"}},
            "application/json": {"schema": _schema_of(Event)[0]},  # one event: one line
            GZIP: {"schema": _BINARY},
        },
    }
}
_PROBLEM_REF = _schema_of(Problem)[0]

_WHY = {
    400: "The request is not valid (the problem's errors name where)",
    401: "Missing, malformed, unknown or revoked API key",
    403: "The key lacks the scope, or is for another app",
    404: "No such thing in the key's tenant and app",
    409: "Conflicts with what is stored (a redacted run, an event id reused with other "
    "content, a decided approval, a finding id that two apps hold)",
    413: "The body is larger than the limit (also after decompression)",
    415: "Content-Encoding other than identity or gzip",
    429: "Too many failed key checks from this client or for this key id; see Retry-After",
    503: "Busy (key checks or ingest at their bound) or the store failed; see Retry-After",
}
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "string"}}
}


def _problem(status: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": _WHY[status],
        "content": {MEDIA_TYPE: {"schema": _PROBLEM_REF}},
    }
    if status in (429, 503):
        out["headers"] = _RETRY_AFTER
    return out


def _statuses(path: str, method: str, op: dict[str, Any]) -> list[int]:
    statuses = {503}
    if op.get("parameters") or "requestBody" in op:
        statuses.add(400)
    if op.get("security"):
        statuses |= {401, 403, 429}
    named = path.replace("{app_id}", "")  # an app is checked against the key (403)
    if "{" in named or path == "/v1/log/checkpoint":
        statuses.add(404)
    if "requestBody" in op:
        statuses |= {400, 413, 415}
    if (path.endswith(("/traces", "/events")) and method == "post") or "/approvals/" in path:
        statuses.add(409)
    if path == "/v1/findings/{finding_id}":  # two apps hold the id: name one with ?app=
        statuses.add(409)
    return sorted(statuses)


def describe(app: FastAPI) -> dict[str, Any]:
    """The service's OpenAPI document (made once, then served as is)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.update(_COMPONENTS)
    for name in ("Run", "RunStarted", "StepEvent", "RunCompleted"):  # what the store keeps
        run_id = schemas.get(name, {}).get("properties", {}).get("run_id")
        if run_id is not None:
            run_id.update(minLength=1, maxLength=MAX_ID_CHARS)
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            if path == "/healthz":
                responses["503"] = _problem(503)
                continue
            for status in _statuses(path, method, op):
                responses.setdefault(str(status), _problem(status))
            if path == "/metrics":
                responses["200"] = {
                    "description": "Prometheus text exposition",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
    app.openapi_schema = doc
    return doc
