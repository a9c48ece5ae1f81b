"""Put every stdio MCP server of a client's config behind ``sentrail mcp-proxy`` (and back).

The documented shapes: an ``mcpServers`` object of ``name -> {command, args, env, ...}``
at the top of Claude Code's ``.mcp.json`` and ``~/.claude.json`` (which also holds
``projects.<path>.mcpServers``, the local scope), Cursor's ``~/.cursor/mcp.json`` and
Claude Desktop's ``claude_desktop_config.json``. Remote entries (``url``, or a ``type``
other than ``stdio``) are left alone.

A wrapped entry keeps everything but ``command`` and ``args``, which become
``sentrail mcp-proxy [options] -- <command> <args...>``: the original command is in the
entry itself, so ``uninstall`` restores it from there (not from a stale backup). The
options carry the sentrail home and the store, because a client starts the proxy without
the user's shell environment: without them a proxy would not see the quarantines and
approvals of ``sentrail contain|approvals``. An entry already wrapped is rewrapped with the
current options (``updated``), or left alone when they are the same. Every write is
preceded by a backup (``<file>.sentrail-backup-<UTC time>``, same mode) and is atomic
(temporary file, fsync, rename), through a symlink to its target.
"""

from __future__ import annotations

import enum
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from sentrail import configfile
from sentrail.errors import InputError
from sentrail.gateway.names import plain_name

PROXY_SUBCOMMAND = "mcp-proxy"
MAX_CONFIG_BYTES = 64 * 1024 * 1024
Edit = Callable[[str, dict[str, Any]], tuple[dict[str, Any] | None, "Action"]]
_REMOTE_TYPES = frozenset({"http", "sse", "streamable-http", "streamableHttp", "ws", "websocket"})


class McpClient(enum.StrEnum):
    CLAUDE_CODE = "claude-code"
    CURSOR = "cursor"
    CLAUDE_DESKTOP = "claude-desktop"


class Action(enum.StrEnum):
    WRAPPED = "wrapped"
    ALREADY_WRAPPED = "already wrapped"
    UPDATED = "updated"
    RESTORED = "restored"
    NOT_WRAPPED = "not wrapped"
    REMOTE = "remote, left alone"
    MALFORMED = "malformed, left alone"
    NOT_FOUND = "not found"


class Change(msgspec.Struct, frozen=True):
    scope: str  # "mcpServers" or "projects[<path>].mcpServers"
    name: str
    action: Action
    command: list[str] = msgspec.field(default_factory=list)  # the server's own command


class Result(msgspec.Struct):
    path: str
    changes: list[Change]
    written: bool = False
    backup: str | None = None


class WrapOptions(msgspec.Struct, frozen=True):
    proxy_command: str = "sentrail"
    policy: str | None = None
    tenant: str | None = None
    monitor: bool = False
    servers: frozenset[str] | None = None  # only these entries (by name)
    home: str | None = None  # the sentrail home the proxy uses (keys, decision logs)
    database: str | None = None  # the store shared with `sentrail contain|approvals`


def default_config(
    client: McpClient,
    *,
    home: Path | None = None,
    platform: str | None = None,
    appdata: str | None = None,
) -> Path:
    """Where ``client`` keeps its user-level MCP config."""
    home = home if home is not None else Path.home()
    platform = platform or sys.platform
    if client is McpClient.CLAUDE_CODE:
        return home / ".claude.json"
    if client is McpClient.CURSOR:
        return home / ".cursor" / "mcp.json"
    if platform == "darwin":
        return home / "Library" / "Application Support" / "Claude" / "claude_desktop_config.json"
    if platform == "win32":
        base = Path(appdata or os.environ.get("APPDATA") or home / "AppData" / "Roaming")
        return base / "Claude" / "claude_desktop_config.json"
    return home / ".config" / "Claude" / "claude_desktop_config.json"


# -- one entry -------------------------------------------------------------------------
def _is_proxy_command(command: object) -> bool:
    if not isinstance(command, str):
        return False
    name = re.split(r"[\\/]", command)[-1].lower()
    return name.startswith("sentrail")


def is_wrapped(entry: dict[str, Any]) -> bool:
    args = entry.get("args")
    return (
        _is_proxy_command(entry.get("command"))
        and isinstance(args, list)
        and len(args) >= 1
        and args[0] == PROXY_SUBCOMMAND
        and "--" in args[1:]
    )


def _server_command(entry: dict[str, Any]) -> list[str] | None:
    command, args = entry.get("command"), entry.get("args", [])
    if not isinstance(command, str) or not command:
        return None
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        return None
    return [command, *args]


def _is_remote(entry: dict[str, Any]) -> bool:
    kind = entry.get("type")
    return "url" in entry or (isinstance(kind, str) and kind in _REMOTE_TYPES)


def wrap(entry: dict[str, Any], name: str, options: WrapOptions) -> dict[str, Any]:
    """The entry with its command behind the proxy (other keys unchanged)."""
    original = _server_command(entry)
    if original is None:
        raise ValueError("not a stdio entry with a command")
    args = [PROXY_SUBCOMMAND, "--agent-id", plain_name(name)]
    if options.policy:
        args += ["--policy", options.policy]
    if options.tenant:
        args += ["--tenant", options.tenant]
    if options.monitor:
        args.append("--monitor")
    if options.home:
        args += ["--home", options.home]
    if options.database:
        args += ["--database", options.database]
    return {**entry, "command": options.proxy_command, "args": [*args, "--", *original]}


def unwrap(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The entry with the server's own command back, or None if it is not ours to unwrap."""
    if not is_wrapped(entry):
        return None
    args: list[Any] = entry["args"]
    cut = args.index("--", 1)
    original = args[cut + 1 :]
    if not original or not all(isinstance(a, str) for a in original):
        return None
    restored: dict[str, Any] = {}
    for key, value in entry.items():  # the keys keep their places
        if key == "command":
            restored[key] = original[0]
        elif key != "args":
            restored[key] = value
        elif len(original) > 1:  # an entry without arguments had (most likely) no args
            restored[key] = original[1:]
    return restored


# -- the file --------------------------------------------------------------------------
def _tables(doc: dict[str, Any], client: McpClient) -> Iterator[tuple[str, dict[str, Any]]]:
    servers = doc.get("mcpServers")
    if isinstance(servers, dict):
        yield "mcpServers", servers
    projects = doc.get("projects") if client is McpClient.CLAUDE_CODE else None
    if isinstance(projects, dict):
        for where, project in projects.items():
            servers = project.get("mcpServers") if isinstance(project, dict) else None
            if isinstance(servers, dict):
                yield f"projects[{where}].mcpServers", servers


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key in one object")
    return obj


def read_config(path: Path) -> tuple[bytes, dict[str, Any]]:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read the MCP config: {exc.strerror}", str(path)) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise InputError(f"the MCP config is over {MAX_CONFIG_BYTES} bytes", str(path))
    try:
        doc = json.loads(data.decode("utf-8-sig"), object_pairs_hook=_refuse_duplicates)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"not a JSON MCP config: {exc}", str(path)) from None
    if not isinstance(doc, dict):
        raise InputError("the MCP config is not a JSON object", str(path))
    return data, doc


def _indent(data: bytes) -> str | int:
    m = re.search(rb"\n([ \t]+)\S", data)
    if m is None:
        return 2
    return "\t" if m.group(1).startswith(b"\t") else len(m.group(1))


def _rewrite(
    path: Path, client: McpClient, servers: frozenset[str] | None, dry_run: bool, edit: Edit
) -> Result:
    real = Path(os.path.realpath(path))
    data, doc = read_config(real)
    changes: list[Change] = []
    seen: set[str] = set()
    for scope, table in _tables(doc, client):
        for name in list(table):
            entry = table[name]
            if servers is not None and name not in servers:
                continue
            seen.add(name)
            if not isinstance(entry, dict):
                changes.append(Change(scope, name, Action.MALFORMED))
                continue
            new, action = edit(name, entry)
            command = _server_command(unwrap(entry) or entry) or []
            if new is not None:
                table[name] = new
                command = _server_command(unwrap(new) or new) or command
            changes.append(Change(scope, name, action, command))
    changes += [Change("", n, Action.NOT_FOUND) for n in sorted((servers or set()) - seen)]
    result = Result(str(real), changes)
    writes = (Action.WRAPPED, Action.UPDATED, Action.RESTORED)
    if dry_run or not any(c.action in writes for c in changes):
        return result
    mode = real.stat().st_mode & 0o777
    text = json.dumps(doc, indent=_indent(data), ensure_ascii=False) + "\n"
    try:
        result.backup = str(configfile.backup(real, data, mode))
        configfile.replace(real, text.encode("utf-8"), mode)
    except OSError as exc:
        raise InputError(f"cannot write the MCP config: {exc.strerror}", str(real)) from None
    result.written = True
    return result


def install(
    path: Path, client: McpClient, options: WrapOptions, *, dry_run: bool = False
) -> Result:
    def edit(name: str, entry: dict[str, Any]) -> tuple[dict[str, Any] | None, Action]:
        if is_wrapped(entry):
            inner = unwrap(entry)
            if inner is None:
                return None, Action.MALFORMED
            again = wrap(inner, name, options)
            if again == entry:
                return None, Action.ALREADY_WRAPPED
            return again, Action.UPDATED
        if _is_remote(entry):
            return None, Action.REMOTE
        if _server_command(entry) is None:
            return None, Action.MALFORMED
        return wrap(entry, name, options), Action.WRAPPED

    return _rewrite(path, client, options.servers, dry_run, edit)


def uninstall(
    path: Path,
    client: McpClient,
    *,
    servers: frozenset[str] | None = None,
    dry_run: bool = False,
) -> Result:
    def edit(name: str, entry: dict[str, Any]) -> tuple[dict[str, Any] | None, Action]:
        if not is_wrapped(entry):
            return None, Action.NOT_WRAPPED
        restored = unwrap(entry)
        if restored is None:
            return None, Action.MALFORMED
        return restored, Action.RESTORED

    return _rewrite(path, client, servers, dry_run, edit)
