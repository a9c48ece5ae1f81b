"""What happens to each message between an MCP client and an MCP server.

Client to server: every message is forwarded byte for byte, except

- ``tools/call`` requests: the gate decides first; an allowed call is forwarded unchanged,
  any other answer goes back to the client as a ``CallToolResult`` with ``isError`` (the
  agent sees why) and the server never sees the call;
- what cannot be governed: a line that is not strict JSON (duplicate keys included), a
  ``tools/call`` without a usable id or with malformed params, a ``tools/call``
  notification, a message over the size limit, and a batch in a revision without batches.
  These get a JSON-RPC error (or, for a notification, nothing) and are not forwarded.

Server to client: every message is forwarded byte for byte, except that the result of a
forwarded call is first run through ``observe()`` (so that an injected instruction taints
later calls), and withheld (an ``isError`` result instead) if it cannot be inspected.

The tools a ``tools/list`` answer advertises are remembered (bounded); the next
``tools/call`` carries those that are new or changed since the last one recorded, so its
step has the trace format's ``tools`` and a description changed mid-session is reported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from sentrail.enforce.model import Outcome
from sentrail.gateway import jsonrpc as rpc
from sentrail.gateway.gate import Gate
from sentrail.gateway.lines import Frame, Oversized
from sentrail.model.trace import ToolInfo, ToolResult
from sentrail.report.escape import safe_text

Send = Callable[[bytes], Awaitable[None]]
MAX_IN_FLIGHT = 10_000
MAX_TASKS = 10_000
MAX_TOOL_NAME = 512
MAX_EXPLANATION = 2000
MAX_TOOLS = 1000  # advertised tools remembered per session
MAX_DESCRIPTION = 8 * 1024  # characters of a tool's description recorded
MAX_SCHEMA = 8 * 1024  # bytes of a tool's input schema (JSON) recorded, else its SHA-256


class _Call(msgspec.Struct):
    tool: str
    step_index: int
    modern: bool


_FORWARD = None  # a screened message that goes on unchanged


class _Drop:
    """A screened message that goes nowhere (a notification gets no answer)."""


_DROP = _Drop()
Screened = dict[str, Any] | _Drop | None  # a reply to the client, a drop, or forward


class Relay:
    def __init__(
        self,
        gate: Gate,
        to_client: Send,
        to_server: Send,
        *,
        monitor: bool = False,
        limit: int = 0,
        notice: Callable[[str], None] = lambda s: None,
    ) -> None:
        self.gate = gate
        self.to_client = to_client
        self.to_server = to_server
        self.monitor = monitor
        self.limit = limit
        self.notice = notice
        self.protocol_version: str | None = None  # from the initialize handshake, if any
        self._calls: dict[str, _Call] = {}  # id key -> a forwarded tools/call
        self._in_flight: dict[str, str] = {}  # id key -> method, of other client requests
        self._tasks: dict[str, _Call] = {}  # task id -> the task-augmented call
        self._inits: set[str] = set()
        self._advertised: dict[str, ToolInfo] = {}  # tools as last recorded on a step
        self._pending: dict[str, ToolInfo] = {}  # new or changed since: for the next call

    # -- client to server ----------------------------------------------------------------
    async def from_client(self, frame: Frame) -> None:
        if isinstance(frame, Oversized):
            rid = rpc.head_id(frame.head)
            self.notice(f"refused a client message of {frame.size} bytes (limit {self.limit})")
            await self._reply(
                rpc.error(rid, rpc.INVALID_REQUEST, f"message exceeds {self.limit} bytes")
            )
            return
        if not frame.strip():
            return
        try:
            msg = rpc.parse(frame)
        except rpc.ParseFailure as exc:
            self.notice(f"refused a client line that is not strict JSON: {exc}")
            await self._reply(rpc.error(None, rpc.PARSE_ERROR, f"parse error: {exc}"))
            return
        if isinstance(msg, list):
            await self._client_batch(frame, msg)
            return
        if not isinstance(msg, dict):
            await self._reply(rpc.error(None, rpc.INVALID_REQUEST, "not a JSON-RPC message"))
            return
        screened = await self._screen(msg)
        if screened is _FORWARD:
            await self.to_server(frame + b"\n")
        elif isinstance(screened, dict):
            await self._reply(screened)

    async def _client_batch(self, frame: bytes, items: list[Any]) -> None:
        version = self.protocol_version
        if version not in rpc.BATCH_REVISIONS or not items:
            why = (
                "an empty batch"
                if not items
                else f"JSON-RPC batches are not part of protocol revision {version or '(none)'}"
            )
            self.notice(f"refused a batch of {len(items)}: {why}")
            errors = [
                rpc.error(rid, rpc.INVALID_REQUEST, why)
                for rid in (rpc.valid_id(i.get("id")) for i in items if isinstance(i, dict))
                if rid is not None
            ]
            await self._reply(errors or rpc.error(None, rpc.INVALID_REQUEST, why))
            return
        raws = msgspec.json.decode(frame, type=list[msgspec.Raw])
        forward: list[bytes] = []
        replies: list[dict[str, Any]] = []
        for raw, item in zip(raws, items, strict=True):
            screened = (
                await self._screen(item)
                if isinstance(item, dict)
                else rpc.error(None, rpc.INVALID_REQUEST, "not a JSON-RPC message")
            )
            if screened is _FORWARD:
                forward.append(bytes(raw))
            elif isinstance(screened, dict):
                replies.append(screened)
        if len(forward) == len(items):
            await self.to_server(frame + b"\n")
        elif forward:
            await self.to_server(b"[" + b",".join(forward) + b"]\n")
        if replies:
            await self._reply(replies)

    async def _screen(self, msg: dict[str, Any]) -> Screened:
        method = msg.get("method")
        if method is None:
            return _FORWARD  # a response to a server request
        if method == "tools/call":
            if "id" not in msg:
                self.notice("dropped a tools/call notification (a call without an id)")
                return _DROP
            return await self._screen_call(msg)
        key = rpc.id_key(msg.get("id"))
        if key is not None:
            if method == "initialize":
                self._inits.add(key)
            elif method == "tasks/result":
                self._task_result(key, msg.get("params"))
            elif len(self._in_flight) < MAX_IN_FLIGHT:
                self._in_flight[key] = str(method)
        return _FORWARD

    async def _screen_call(self, msg: dict[str, Any]) -> Screened:
        rid = rpc.valid_id(msg["id"])
        key = rpc.id_key(rid)
        if rid is None or key is None:
            return rpc.error(None, rpc.INVALID_REQUEST, "a request id must be a string or integer")
        if key in self._calls or key in self._in_flight:
            return rpc.error(rid, rpc.INVALID_REQUEST, "the request id is already in use")
        if len(self._calls) >= MAX_IN_FLIGHT:
            return rpc.error(rid, rpc.INTERNAL_ERROR, "too many tool calls in flight")
        params = msg.get("params")
        if not isinstance(params, dict):
            return rpc.error(rid, rpc.INVALID_PARAMS, "tools/call needs params")
        tool = params.get("name")
        if not isinstance(tool, str) or not tool or len(tool) > MAX_TOOL_NAME:
            return rpc.error(rid, rpc.INVALID_PARAMS, "tools/call needs a tool name")
        arguments = params.get("arguments")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            return rpc.error(rid, rpc.INVALID_PARAMS, "tools/call arguments must be an object")
        modern = rpc.is_modern(params)
        listed = list(self._pending.values()) or None
        self._advertised.update(self._pending)
        self._pending.clear()
        decision = await self.gate.decide(tool, arguments, listed)
        if decision.outcome is Outcome.ALLOW:
            self._calls[key] = _Call(tool, decision.step_index, modern)
            return _FORWARD
        explanation = safe_text(decision.explanation, limit=MAX_EXPLANATION)
        if decision.outcome is Outcome.APPROVAL_REQUIRED:
            text = (
                f"sentrail: this call to {tool} needs an approval (approval id "
                f"{decision.approval_id}): {explanation} [decision {decision.decision_id}]"
            )
        else:
            text = (
                f"sentrail denied this call to {tool} ({decision.control.value}): "
                f"{explanation} [decision {decision.decision_id}]"
            )
        self.notice(
            f"{decision.outcome.value}: {tool} ({decision.control.value}): {explanation} "
            f"[decision {decision.decision_id}]"
        )
        return rpc.response(rid, rpc.tool_error(text, modern=modern))

    def _task_result(self, key: str, params: Any) -> None:
        task_id = params.get("taskId") if isinstance(params, dict) else None
        call = self._tasks.pop(task_id, None) if isinstance(task_id, str) else None
        if call is not None:
            self._calls[key] = call
        elif len(self._in_flight) < MAX_IN_FLIGHT:
            self._in_flight[key] = "tasks/result"

    # -- server to client ----------------------------------------------------------------
    async def from_server(self, frame: Frame) -> None:
        if isinstance(frame, Oversized):
            await self._server_oversized(frame)
            return
        if not frame.strip():
            return
        try:
            msg = rpc.parse(frame, strict=False)
        except rpc.ParseFailure as exc:
            self.notice(f"dropped a server line that is not JSON ({exc}): {frame[:200]!r}")
            return
        items = msg if isinstance(msg, list) else [msg]
        replaced: dict[int, dict[str, Any]] = {}
        for index, item in enumerate(items):
            if isinstance(item, dict) and "method" not in item:
                withheld = await self._server_response(item, frame)
                if withheld is not None:
                    replaced[index] = withheld
        if not replaced:
            await self.to_client(frame + b"\n")
        elif not isinstance(msg, list):
            await self._reply(replaced[0])
        else:
            raws = msgspec.json.decode(frame, type=list[msgspec.Raw])
            parts = [
                rpc.encode(replaced[i]).rstrip(b"\n") if i in replaced else bytes(raw)
                for i, raw in enumerate(raws)
            ]
            await self.to_client(b"[" + b",".join(parts) + b"]\n")

    async def _server_response(self, item: dict[str, Any], frame: bytes) -> dict[str, Any] | None:
        """Track the response; a replacement for it if a tool result is withheld."""
        rid = rpc.valid_id(item.get("id"))
        key = rpc.id_key(rid)
        if rid is None or key is None:
            return None
        method = self._in_flight.pop(key, None)
        result = item.get("result")
        if method == "tools/list" and isinstance(result, dict):
            self._tools_listed(result.get("tools"))
        if key in self._inits:
            self._inits.discard(key)
            version = result.get("protocolVersion") if isinstance(result, dict) else None
            self.protocol_version = version if isinstance(version, str) else None
        call = self._calls.pop(key, None)
        if call is None:
            return None
        if isinstance(result, dict) and _is_task(result):
            if len(self._tasks) < MAX_TASKS:
                self._tasks[str(result["task"]["taskId"])] = call
            return None  # the result comes later, with tasks/result
        if isinstance(result, dict) and result.get("resultType", "complete") != "complete":
            return None  # input required: the client retries with a new call, decided anew
        try:
            rpc.parse(frame)  # a tool result with duplicate keys could differ per parser
        except rpc.ParseFailure as exc:
            return self._withhold(rid, call, f"the tool result is ambiguous JSON ({exc})")
        findings = await self.gate.observe(_tool_result(item), call.step_index)
        if findings is None:
            return self._withhold(rid, call, "the tool result could not be inspected")
        for f in findings:
            self.notice(
                f"{f.severity.value} {f.category.value} in the result of {call.tool}: {f.message}"
            )
        return None

    def _tools_listed(self, tools: Any) -> None:
        """Remember what a ``tools/list`` answer advertises (bounded; hostile input)."""
        if not isinstance(tools, list):
            return
        for entry in tools[:MAX_TOOLS]:
            info = _tool_info(entry)
            if info is None:
                continue
            known = self._pending.get(info.name) or self._advertised.get(info.name)
            if known == info:
                continue
            if known is None and len(self._advertised) + len(self._pending) >= MAX_TOOLS:
                continue
            self._pending[info.name] = info

    def _withhold(self, rid: rpc.RequestId, call: _Call, why: str) -> dict[str, Any] | None:
        if self.monitor:
            self.notice(f"{why} (monitor mode: relayed anyway)")
            return None
        text = f"sentrail withheld the result of {call.tool}: {why}"
        self.notice(text)
        return rpc.response(rid, rpc.tool_error(text, modern=call.modern))

    async def _server_oversized(self, frame: Oversized) -> None:
        rid = rpc.head_id(frame.head)
        key = rpc.id_key(rid)
        why = f"the server's message of {frame.size} bytes exceeds the limit of {self.limit}"
        self.notice(f"dropped {why}")
        if rid is None or key is None:
            return
        call = self._calls.pop(key, None)
        if call is not None:
            text = f"sentrail withheld the result of {call.tool}: {why}"
            await self._reply(rpc.response(rid, rpc.tool_error(text, modern=call.modern)))
        elif self._in_flight.pop(key, None) is not None:
            await self._reply(rpc.error(rid, rpc.INTERNAL_ERROR, why))

    async def internal_error(self, frame: Frame, exc: Exception) -> None:
        """The relay failed on a client message: it was not forwarded; tell the client."""
        self.notice(f"internal error on a client message: {type(exc).__name__}: {exc}")
        rid = rpc.head_id(frame.head if isinstance(frame, Oversized) else frame[:4096])
        await self._reply(rpc.error(rid, rpc.INTERNAL_ERROR, "the proxy failed on this message"))

    async def _reply(self, message: dict[str, Any] | list[dict[str, Any]]) -> None:
        await self.to_client(rpc.encode(message))


def _is_task(result: dict[str, Any]) -> bool:
    task = result.get("task")
    return "content" not in result and isinstance(task, dict) and "taskId" in task


def _tool_info(entry: Any) -> ToolInfo | None:
    """One ``tools/list`` entry as the trace format's ``tools`` item, bounded."""
    if not isinstance(entry, dict):
        return None
    name = entry.get("name")
    if not isinstance(name, str) or not name or len(name) > MAX_TOOL_NAME:
        return None
    description = entry.get("description")
    text = description[:MAX_DESCRIPTION] if isinstance(description, str) else None
    schema = entry.get("inputSchema")
    if schema is not None:
        try:
            encoded = msgspec.json.encode(schema, order="sorted")
        except (TypeError, ValueError, OverflowError):
            encoded = repr(schema).encode()
        if len(encoded) > MAX_SCHEMA:
            schema = {"sha256": hashlib.sha256(encoded).hexdigest(), "bytes": len(encoded)}
    return ToolInfo(name=name, description=text, input_schema=schema)


def _tool_result(item: dict[str, Any]) -> ToolResult:
    """A JSON-RPC response to ``tools/call`` as the engine's ToolResult."""
    result = item.get("result")
    if result is None and "error" in item:
        err = item["error"]
        message = err.get("message") if isinstance(err, dict) else err
        return ToolResult(status="error", error=message, data=err)
    if not isinstance(result, dict):
        return ToolResult(status="success", data=result)
    body = {k: v for k, v in result.items() if k != "_meta"}
    if result.get("isError") is True:
        content = result.get("content")
        texts = [
            str(c["text"])
            for c in (content if isinstance(content, list) else [])
            if isinstance(c, dict) and isinstance(c.get("text"), str)
        ]
        return ToolResult(status="error", error="\n".join(texts), data=body)
    return ToolResult(status="success", data=body)
