"""Coding-agent tools as sentrail tool calls, and tool output as tool results.

Each client names its tools its own way (``Bash``, ``apply_patch``, ``mcp__github__get_issue``);
the decision point judges sentrail tool names with parameters and a resource. The table is
documented in docs/hooks.md. Choices that matter for the detectors:

- File paths inside the session's working directory are given relative to it (``src/a.py``):
  editing the project's own files is the agent's job, not a value smuggled in from a tool
  result. Paths outside it stay absolute, so a write to ``~/.ssh/authorized_keys`` whose path
  came from a fetched page is a tainted action. The absolute path is always the ``resource``
  (for ``write_scopes``). Symbolic links are resolved first.
- An edit's new text is ``content`` (free text, like a message body); the replaced text is
  already in the file and is left out.
- Strings are cut to ``MAX_PARAM_CHARS``, results to what the detectors read (head and tail).
"""

from __future__ import annotations

import os
import re
from typing import Any

import msgspec

from sentrail.detect.text import SCAN_HEAD, SCAN_TAIL
from sentrail.model.trace import ToolResult

MAX_PARAM_CHARS = 64 * 1024
MAX_RESULT_CHARS = SCAN_HEAD + SCAN_TAIL  # detectors read no more of one value than this
_NAME_PART = re.compile(r"[^A-Za-z0-9_.-]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_PATCH_FILE = re.compile(r"^\*\*\* (Add|Update|Delete) File: (.+)$|^\*\*\* Move to: (.+)$", re.M)
_encode = msgspec.json.Encoder().encode


class ToolCallSpec(msgspec.Struct, omit_defaults=True):
    """What the decision point is asked about one client tool call."""

    tool: str
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    resource: str | None = None
    permissions: list[str] = msgspec.field(default_factory=list)
    action: str | None = None  # the client's own tool name


def clip(text: str, limit: int = MAX_PARAM_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} characters cut by sentrail]"


def _s(value: Any) -> str:
    """A string field of a tool input; other JSON values as their JSON text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return clip(value)
    return clip(_encode(value).decode("utf-8", "replace"))


def bounded_value(value: Any) -> Any:
    """``value`` itself when its JSON is short enough, else the head and tail of that text."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = _encode(value).decode("utf-8", "replace")
        except (TypeError, ValueError, OverflowError):
            text = repr(value)
        if len(text) <= MAX_RESULT_CHARS:
            return value
    if len(text) <= MAX_RESULT_CHARS:
        return text
    cut = len(text) - MAX_RESULT_CHARS
    return f"{text[:SCAN_HEAD]}\n[... {cut} characters cut by sentrail]\n{text[-SCAN_TAIL:]}"


def name_part(text: str) -> str:
    """A client or MCP name made safe for a tool name (``my server`` -> ``my_server``)."""
    return _NAME_PART.sub("_", text).strip("._") or "unnamed"


def snake(name: str) -> str:
    return _CAMEL.sub("_", name_part(name)).lower()


class Paths:
    """Paths of one session, relative to its working directory when inside it."""

    def __init__(self, cwd: str) -> None:
        self.cwd = _real(cwd) if cwd and os.path.isabs(cwd) else ""

    def absolute(self, path: str) -> str:
        if not path:
            return ""
        if not os.path.isabs(path):
            if not self.cwd:
                return os.path.normpath(path)
            path = os.path.join(self.cwd, path)
        return _real(path)

    def shown(self, path: str) -> str:
        """Relative to the working directory when inside it, else absolute."""
        full = self.absolute(path)
        if self.cwd and full and os.path.isabs(full):
            try:
                inside = os.path.commonpath([self.cwd, full]) == self.cwd
            except ValueError:
                inside = False
            if inside:
                return os.path.relpath(full, self.cwd)
        return full


def _real(path: str) -> str:
    try:
        return os.path.realpath(clip(path, 4096))
    except (OSError, ValueError):
        return os.path.normpath(clip(path, 4096))


def _mcp(name: str, tool_input: Any) -> ToolCallSpec | None:
    """``mcp__server__tool`` -> ``server.tool`` (the MCP naming both clients use)."""
    if not name.startswith("mcp__"):
        return None
    server, _, tool = name[5:].partition("__")
    server, tool = name_part(server), name_part(tool or "call")
    params = tool_input if isinstance(tool_input, dict) else {"input": tool_input}
    return ToolCallSpec(
        f"{server}.{tool}", clip_params(params), permissions=[f"mcp:{server}"], action=name
    )


def clip_params(params: dict[str, Any]) -> dict[str, Any]:
    return {str(k)[:200]: (clip(v) if isinstance(v, str) else v) for k, v in params.items()}


def _file(tool: str, perm: str, name: str, path: str, paths: Paths, **extra: Any) -> ToolCallSpec:
    params: dict[str, Any] = {"path": paths.shown(path)}
    params.update({k: v for k, v in extra.items() if v not in (None, "")})
    return ToolCallSpec(tool, params, paths.absolute(path) or None, [perm], name)


def claude_tool(name: str, tool_input: dict[str, Any], cwd: str) -> ToolCallSpec:
    """A Claude Code tool call (hooks reference: ``tool_name``, ``tool_input``)."""
    mcp = _mcp(name, tool_input)
    if mcp is not None:
        return mcp
    paths = Paths(cwd)
    get = tool_input.get
    if name == "Bash":
        return ToolCallSpec(
            "shell.exec", {"command": _s(get("command"))}, paths.cwd or None, ["shell:exec"], name
        )
    if name in ("BashOutput", "TaskOutput"):
        params = {"id": _s(get("bash_id") or get("shell_id") or get("task_id"))}
        return ToolCallSpec("shell.read_output", params, None, ["shell:exec"], name)
    if name in ("KillShell", "KillBash"):
        params = {"id": _s(get("shell_id") or get("bash_id"))}
        return ToolCallSpec("shell.kill", params, None, ["shell:exec"], name)
    if name in ("Read", "NotebookRead"):
        path = _s(get("file_path") or get("notebook_path"))
        return _file("files.read", "files:read", name, path, paths)
    if name == "Write":
        path = _s(get("file_path"))
        return _file("files.write", "files:write", name, path, paths, content=_s(get("content")))
    if name == "Edit":
        path = _s(get("file_path"))
        return _file("files.write", "files:write", name, path, paths, content=_s(get("new_string")))
    if name == "MultiEdit":
        edits = get("edits")
        new = (
            [e.get("new_string") for e in edits if isinstance(e, dict)]
            if isinstance(edits, list)
            else []
        )
        text = "\n".join(x for x in new if isinstance(x, str))
        return _file(
            "files.write", "files:write", name, _s(get("file_path")), paths, content=clip(text)
        )
    if name == "NotebookEdit":
        path = _s(get("notebook_path"))
        return _file("files.write", "files:write", name, path, paths, content=_s(get("new_source")))
    if name in ("Glob", "Grep", "LS"):
        tool = "files.list" if name == "LS" else "files.search"
        params = {"pattern": _s(get("pattern")), "glob": _s(get("glob"))}
        return _file(tool, "files:read", name, _s(get("path")) or paths.cwd, paths, **params)
    if name == "WebFetch":
        url = _s(get("url"))
        params = {"url": url, "prompt": _s(get("prompt"))}
        return ToolCallSpec("http.get", params, url or None, ["net:fetch"], name)
    if name == "WebSearch":
        return ToolCallSpec("web.search", {"query": _s(get("query"))}, None, ["net:search"], name)
    if name in ("Task", "Agent"):
        params = {k: _s(get(k)) for k in ("description", "prompt", "subagent_type") if get(k)}
        return ToolCallSpec("agent.delegate", params, None, ["agent:delegate"], name)
    if name == "TodoWrite":
        return ToolCallSpec("agent.todo", {"todos": _s(get("todos"))}, action=name)
    if name == "ExitPlanMode":
        return ToolCallSpec("agent.plan", {"plan": _s(get("plan"))}, action=name)
    if name in ("SlashCommand", "Skill"):
        params = {"command": _s(get("command") or get("skill") or get("name"))}
        return ToolCallSpec("agent.command", params, None, ["agent:command"], name)
    return ToolCallSpec(f"claude.{snake(name)}", clip_params(tool_input), action=name)


def codex_tool(name: str, tool_input: dict[str, Any], cwd: str) -> ToolCallSpec:
    """A Codex tool call: ``Bash`` (shell and exec), ``apply_patch``, MCP tools."""
    mcp = _mcp(name, tool_input)
    if mcp is not None:
        return mcp
    paths = Paths(cwd)
    if name == "Bash":
        command = {"command": _s(tool_input.get("command"))}
        return ToolCallSpec("shell.exec", command, paths.cwd or None, ["shell:exec"], name)
    if name == "apply_patch":
        patch = tool_input.get("command", tool_input.get("patch", tool_input.get("input")))
        text = patch if isinstance(patch, str) else _s(patch)
        files, deleted = patch_files(text, paths)
        params: dict[str, Any] = {"files": files, "patch": clip(text)}
        if deleted:
            params["deletes"] = deleted
        first = next(iter(_PATCH_FILE.finditer(text)), None)
        target = paths.absolute((first.group(2) or first.group(3)).strip()) if first else None
        return ToolCallSpec("files.patch", params, target or None, ["files:write"], name)
    return ToolCallSpec(f"codex.{snake(name)}", clip_params(tool_input), action=name)


def patch_files(patch: str, paths: Paths) -> tuple[list[str], list[str]]:
    """The files an ``apply_patch`` body adds, updates, moves to, and deletes."""
    files: list[str] = []
    deleted: list[str] = []
    for m in _PATCH_FILE.finditer(patch):
        kind, path = m.group(1), (m.group(2) or m.group(3) or "").strip()
        shown = paths.shown(path)
        if shown and shown not in files:
            files.append(shown)
        if kind == "Delete":
            deleted.append(shown)
        if len(files) >= 200:
            break
    return files, deleted


def tool_result(response: Any) -> ToolResult:
    """A client's ``tool_response`` as a sentrail result (status from its usual fields)."""
    status = "success"
    if isinstance(response, dict):
        code = response.get("code")
        if (
            response.get("success") is False
            or response.get("is_error") is True
            or response.get("isError") is True
            or response.get("interrupted") is True
            or (isinstance(code, int) and not isinstance(code, bool) and code >= 400)
        ):
            status = "error"
    return ToolResult(status=status, data=bounded_value(response))


def failure_result(error: Any) -> ToolResult:
    return ToolResult(status="error", error=bounded_value(error))
