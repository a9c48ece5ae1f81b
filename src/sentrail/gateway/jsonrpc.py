"""JSON-RPC as the gateway needs it: strict parsing, request ids, and the replies it writes.

The relay forwards the bytes it received; what it parses is only to decide. Parsing is
strict (RFC 8259 by msgspec, plus duplicate object keys refused) so that the proxy and
the server cannot be shown two different messages in one line. The replies the proxy
writes itself are built from the official ``mcp`` types.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    CallToolResult,
    ErrorData,
    JSONRPCError,
    JSONRPCResponse,
    TextContent,
)

from sentrail.errors import InputError
from sentrail.model.decode import check_structure

__all__ = [
    "BATCH_REVISIONS",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "PARSE_ERROR",
    "ParseFailure",
    "RequestId",
    "error",
    "head_id",
    "id_key",
    "is_modern",
    "parse",
    "response",
    "tool_error",
]

# JSON-RPC batches were part of one protocol revision only (added in 2025-03-26, removed
# in 2025-06-18); the stateless revisions have no batches either.
BATCH_REVISIONS = frozenset({"2025-03-26"})
PROTOCOL_META = "io.modelcontextprotocol/protocolVersion"  # per request, 2026-07-28 and later

RequestId = int | str
_HEAD_ID = re.compile(
    rb'^\s*\[?\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*(-?\d{1,18}|"(?:[^"\\]|\\.){0,256}")'
)


class ParseFailure(Exception):
    """The line is not strict JSON (the message says why)."""


def parse(line: bytes, *, strict: bool = True) -> Any:
    """Decode one line; ``strict`` also refuses duplicate object keys."""
    try:
        value = msgspec.json.decode(line)
    except msgspec.DecodeError as exc:
        raise ParseFailure(str(exc).replace("JSON is malformed: ", "")) from None
    except RecursionError:
        raise ParseFailure("nesting too deep") from None
    if strict and isinstance(value, dict | list):
        try:
            check_structure(line)
        except InputError as exc:
            raise ParseFailure(exc.message) from None
    return value


def id_key(value: object) -> str | None:
    """A key for a request id that keeps ``1`` and ``"1"`` apart; None unless str or int."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return f"i:{value}"
    if isinstance(value, str):
        return f"s:{value}"
    return None


def valid_id(value: object) -> RequestId | None:
    """``value`` if it can be a request id (a string or an integer), else None."""
    return value if id_key(value) is not None else None  # type: ignore[return-value]


def head_id(head: bytes) -> RequestId | None:
    """The top-level id of a message from its first bytes (for a message too large to parse)."""
    m = _HEAD_ID.match(head)
    if m is None:
        return None
    try:
        value = msgspec.json.decode(m.group(1))
    except msgspec.DecodeError:
        return None
    return valid_id(value)


def is_modern(params: dict[str, Any]) -> bool:
    """Does the request carry the stateless revision's per-request protocol version?"""
    meta = params.get("_meta")
    return isinstance(meta, dict) and isinstance(meta.get(PROTOCOL_META), str)


def tool_error(text: str, *, modern: bool) -> dict[str, Any]:
    """A ``CallToolResult`` with ``isError`` (the agent sees why), as a JSON object."""
    result = CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
    body = result.model_dump(by_alias=True, exclude_none=True, mode="json")
    if modern:
        body["resultType"] = "complete"
    else:
        body.pop("resultType", None)
    return body


def response(request_id: RequestId, result: dict[str, Any]) -> dict[str, Any]:
    msg = JSONRPCResponse(jsonrpc="2.0", id=request_id, result=result)
    return msg.model_dump(by_alias=True, mode="json")


def error(request_id: RequestId | None, code: int, message: str) -> dict[str, Any]:
    msg = JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message))
    out = msg.model_dump(by_alias=True, mode="json")
    if out["error"].get("data") is None:
        out["error"].pop("data", None)
    return out


def encode(message: dict[str, Any] | list[dict[str, Any]]) -> bytes:
    """One message (or a batch) as one line, newline included."""
    return msgspec.json.encode(message) + b"\n"
