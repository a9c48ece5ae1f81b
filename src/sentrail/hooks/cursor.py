"""The Cursor hook protocol (cursor.com/docs/agent/hooks; docs/hooks.md).

Every payload carries ``hook_event_name``, ``conversation_id`` (the run), ``generation_id``
and ``workspace_roots``. Events handled:

- ``beforeShellExecution`` (``command``, ``cwd``) and ``beforeMCPExecution`` (``tool_name``,
  ``tool_input``): decided; the answer is ``{"permission": "allow"|"deny"|"ask",
  "user_message", "agent_message"}``. An allowed call gets ``{}`` by default (``defer``:
  Cursor's own approval rules apply), ``permission: allow`` with ``--allow-mode allow``.
- ``beforeReadFile`` (``file_path``, ``content``): decided (``allow``/``deny`` only, so an
  approval is a ``deny``); when allowed, the content is observed as the read's result,
  since that is what the model is about to see.
- ``afterShellExecution`` (``output``) and ``afterMCPExecution`` (``result_json``): the output
  is observed; Cursor takes no answer from these events (``{}``), so a finding cannot be
  shown to the model, but it taints the run and later calls are judged with it.
- ``beforeSubmitPrompt`` (``prompt``): recorded as the run's trigger; ``{"continue": true}``.

Cursor's after-events carry no call id: a result is tied to its call by the generation id,
the tool and the arguments.
"""

from __future__ import annotations

from typing import Any

import msgspec

from sentrail.enforce.model import Decision, Outcome, args_hash
from sentrail.hooks.claude import reason_text
from sentrail.hooks.mapping import (
    Paths,
    ToolCallSpec,
    bounded_value,
    clip,
    clip_params,
    name_part,
    tool_result,
)
from sentrail.hooks.payload import get_str
from sentrail.hooks.runner import HookOptions, open_run
from sentrail.model.trace import ToolResult
from sentrail.report.escape import safe_text

Answer = dict[str, Any] | None
_ASKS = frozenset({"beforeShellExecution", "beforeMCPExecution"})
BEFORE = frozenset({"beforeShellExecution", "beforeMCPExecution", "beforeReadFile"})


def _cwd(payload: dict[str, Any]) -> str:
    cwd = get_str(payload, "cwd", required=False)
    if cwd:
        return cwd
    roots = payload.get("workspace_roots")
    if isinstance(roots, list) and roots and isinstance(roots[0], str):
        return roots[0]
    return ""


def _json_arg(value: Any) -> Any:
    """Cursor sends MCP arguments and results as JSON text (or as JSON): decode bounded."""
    if isinstance(value, str) and len(value) <= 4 * 1024 * 1024:
        try:
            return msgspec.json.decode(value)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            return value
    return value


def spec_of(payload: dict[str, Any], event: str) -> ToolCallSpec | None:
    cwd = _cwd(payload)
    paths = Paths(cwd)
    if event in ("beforeShellExecution", "afterShellExecution"):
        command = clip(get_str(payload, "command"))
        return ToolCallSpec("shell.exec", {"command": command}, paths.cwd or None, ["shell:exec"])
    if event in ("beforeMCPExecution", "afterMCPExecution"):
        name = get_str(payload, "tool_name")
        args = _json_arg(payload.get("tool_input"))
        params = clip_params(args) if isinstance(args, dict) else {"input": bounded_value(args)}
        return ToolCallSpec(f"mcp.{name_part(name)}", params, None, ["mcp:cursor"], name)
    if event == "beforeReadFile":
        path = get_str(payload, "file_path")
        return ToolCallSpec(
            "files.read", {"path": paths.shown(path)}, paths.absolute(path) or None, ["files:read"]
        )
    return None


def _key(payload: dict[str, Any], spec: ToolCallSpec) -> str:
    generation = get_str(payload, "generation_id", required=False)[:200]
    return f"{generation}:{spec.tool}:{args_hash(spec.parameters)}"


def handle(payload: dict[str, Any], options: HookOptions) -> Answer:
    event = get_str(payload, "hook_event_name")
    session = get_str(payload, "conversation_id")
    if event == "beforeSubmitPrompt":
        prompt = get_str(payload, "prompt", required=False)
        if prompt:
            with open_run(options, session) as run:
                run.prompt(prompt)
        return {"continue": True}
    spec = spec_of(payload, event)
    if spec is None:
        return {}  # afterFileEdit, stop, ...: nothing to judge
    key = _key(payload, spec)
    if event in BEFORE:
        with open_run(options, session) as run:
            decision = run.decide(key, spec)
            content = payload.get("content")
            if event == "beforeReadFile" and decision.allowed and isinstance(content, str):
                run.observe(key, ToolResult(status="success", data=bounded_value(content)))
        return permission_answer(event, decision, spec, options)
    if event == "afterShellExecution":
        result = tool_result({"output": payload.get("output")})
    else:
        result = tool_result(_json_arg(payload.get("result_json")))
    with open_run(options, session) as run:
        run.observe(key, result)
    return {}  # Cursor reads no answer from after-events


def permission_answer(
    event: str, d: Decision, spec: ToolCallSpec, options: HookOptions
) -> dict[str, Any]:
    name = spec.action or spec.tool
    if d.outcome is Outcome.ALLOW:
        if options.allow_mode == "allow":
            return {"permission": "allow"}
        return {}
    if d.outcome is Outcome.APPROVAL_REQUIRED and event in _ASKS:
        text = reason_text(f"sentrail asks for approval of {name}", d)
        return {"permission": "ask", "user_message": text, "agent_message": text}
    text = reason_text(f"sentrail denied {name}", d)
    return {"permission": "deny", "user_message": text, "agent_message": text}


def failure_answer(event: str | None, why: str, options: HookOptions) -> Answer:
    if event == "beforeSubmitPrompt":
        return {"continue": True}
    if event is not None and event not in BEFORE:
        return {}
    text = safe_text(f"sentrail could not check this call: {why}", limit=2000)
    permission = "ask" if options.on_error == "ask" and event in _ASKS else "deny"
    return {"permission": permission, "user_message": text, "agent_message": text}
