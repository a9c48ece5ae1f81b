"""Writing sentrail's hook entries into a client's settings file, and taking them out.

- Claude Code: ``.claude/settings.json``; ``hooks.<Event>`` lists of ``{"matcher": "*",
  "hooks": [{"type": "command", "command": ..., "timeout": ...}]}`` for ``PreToolUse``,
  ``PostToolUse``, ``PostToolUseFailure`` and (without a matcher) ``UserPromptSubmit``.
- Codex: ``.codex/hooks.json``, the same shape without matchers (every tool), for
  ``PreToolUse``, ``PostToolUse`` and ``UserPromptSubmit``.
- Cursor: ``.cursor/hooks.json``, ``{"version": 1, "hooks": {"<event>": [{"command": ...}]}}``.

Install is idempotent (earlier sentrail entries for the client are replaced, anything
else is kept as it was), a changed file is backed up first (``<name>.sentrail-backup-<time>``),
and written atomically with its mode and indentation kept, through a symlink to its target
(as ``sentrail mcp install`` does). A file that is not a JSON object, or whose ``hooks``
are not shaped as documented, is refused rather than rewritten.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from sentrail import configfile
from sentrail.errors import SentrailError
from sentrail.model.decode import check_structure

MAX_SETTINGS_BYTES = 4 * 1024 * 1024
DEFAULT_TIMEOUT = 30


class InstallError(SentrailError):
    """A settings file that cannot be changed safely."""


class ClientSettings(NamedTuple):
    path: str  # default, relative to the current directory
    events: tuple[str, ...]
    matcher_events: tuple[str, ...]  # events whose entries carry ``matcher: "*"``
    nested: bool  # {"matcher", "hooks": [...]} entries (Claude Code, Codex) or flat (Cursor)


SETTINGS = {
    "claude-code": ClientSettings(
        ".claude/settings.json",
        ("PreToolUse", "PostToolUse", "PostToolUseFailure", "UserPromptSubmit"),
        ("PreToolUse", "PostToolUse", "PostToolUseFailure"),
        True,
    ),
    "codex": ClientSettings(
        ".codex/hooks.json", ("PreToolUse", "PostToolUse", "UserPromptSubmit"), (), True
    ),
    "cursor": ClientSettings(
        ".cursor/hooks.json",
        (
            "beforeShellExecution",
            "beforeMCPExecution",
            "beforeReadFile",
            "afterShellExecution",
            "afterMCPExecution",
            "beforeSubmitPrompt",
        ),
        (),
        False,
    ),
}


class InstallResult(msgspec.Struct, frozen=True):
    path: str
    changed: bool
    backup: str | None = None
    events: list[str] = msgspec.field(default_factory=list)


def default_executable() -> list[str]:
    found = shutil.which("sentrail")
    return [os.path.abspath(found)] if found else [sys.executable, "-m", "sentrail"]


def hook_command(client: str, options: list[str], executable: list[str] | None = None) -> str:
    """The shell command a client runs: ``<sentrail> hook <client> <options>``."""
    return shlex.join([*(executable or default_executable()), "hook", client, *options])


def is_sentrail_command(command: object, client: str) -> bool:
    """Is ``command`` a ``sentrail hook <client>`` invocation (any executable path)?"""
    if not isinstance(command, str):
        return False
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    for i in range(1, len(words) - 1):
        if words[i] == "hook" and words[i + 1] == client:
            return os.path.basename(words[i - 1]) == "sentrail"
    return False


def _load(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SETTINGS_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InstallError(f"cannot read: {exc.strerror}", str(path)) from None
    if len(data) > MAX_SETTINGS_BYTES:
        raise InstallError(f"larger than {MAX_SETTINGS_BYTES} bytes", str(path))
    if not data.strip():
        return {}
    try:
        check_structure(data)
        value = json.loads(data)
    except SentrailError as exc:
        raise InstallError(exc.message, str(path)) from None
    except (ValueError, RecursionError) as exc:
        raise InstallError(f"not valid JSON: {exc}", str(path)) from None
    if not isinstance(value, dict):
        raise InstallError("the settings file must hold a JSON object", str(path))
    return value


def _hooks(settings: dict[str, Any], path: Path) -> dict[str, Any]:
    hooks = settings.get("hooks")
    if hooks is None:
        return {}
    if not isinstance(hooks, dict):
        raise InstallError("'hooks' must be an object", str(path))
    for event, entries in hooks.items():
        if not isinstance(entries, list):
            raise InstallError(f"'hooks.{event}' must be a list", str(path))
    return hooks


def _remove(settings: dict[str, Any], client: str, spec: ClientSettings, path: Path) -> None:
    hooks = _hooks(settings, path)
    for event in list(hooks):
        entries: list[Any] = hooks[event]
        kept: list[Any] = []
        for entry in entries:
            if spec.nested and isinstance(entry, dict) and isinstance(entry.get("hooks"), list):
                inner = entry["hooks"]
                left = [
                    h
                    for h in inner
                    if not (isinstance(h, dict) and is_sentrail_command(h.get("command"), client))
                ]
                if len(left) == len(inner):
                    kept.append(entry)
                elif left:
                    kept.append({**entry, "hooks": left})
            elif not (
                not spec.nested
                and isinstance(entry, dict)
                and is_sentrail_command(entry.get("command"), client)
            ):
                kept.append(entry)
        if len(kept) != len(entries):
            if kept:
                hooks[event] = kept
            else:
                del hooks[event]
    if "hooks" in settings and not hooks and isinstance(settings["hooks"], dict):
        del settings["hooks"]


def _add(settings: dict[str, Any], spec: ClientSettings, command: str, timeout: int) -> None:
    hooks = settings.setdefault("hooks", {})
    for event in spec.events:
        if spec.nested:
            entry: dict[str, Any] = {}
            if event in spec.matcher_events:
                entry["matcher"] = "*"
            entry["hooks"] = [{"type": "command", "command": command, "timeout": timeout}]
        else:
            entry = {"command": command}
        hooks.setdefault(event, []).append(entry)
    if not spec.nested:
        settings.setdefault("version", 1)


def install(
    client: str, path: Path, command: str, *, timeout: int = DEFAULT_TIMEOUT
) -> InstallResult:
    """Add (or replace) the sentrail entries of ``client`` in the settings file at ``path``."""
    spec = _spec(client)
    before = _load(path)
    after = copy.deepcopy(before) if before is not None else {}
    _remove(after, client, spec, path)
    _add(after, spec, command, timeout)
    return _save(path, before, after, list(spec.events))


def uninstall(client: str, path: Path) -> InstallResult:
    """Take the sentrail entries of ``client`` out of the settings file at ``path``."""
    spec = _spec(client)
    before = _load(path)
    if before is None:
        return InstallResult(str(path), False)
    after = copy.deepcopy(before)
    _remove(after, client, spec, path)
    return _save(path, before, after, [])


def _spec(client: str) -> ClientSettings:
    spec = SETTINGS.get(client)
    if spec is None:
        raise InstallError(f"unknown client {client!r} ({', '.join(SETTINGS)})")
    return spec


def _save(
    path: Path, before: dict[str, Any] | None, after: dict[str, Any], events: list[str]
) -> InstallResult:
    if before == after:
        return InstallResult(str(path), False, events=events)
    real = Path(os.path.realpath(path))  # through a symlink to its target
    backup = None
    mode = 0o600
    indent: str | int = 2
    try:
        if before is not None:
            data = real.read_bytes()
            mode = real.stat().st_mode & 0o777
            indent = _indent(data)
            backup = str(configfile.backup(real, data, mode))
        real.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(after, indent=indent, ensure_ascii=False) + "\n"
        configfile.replace(real, text.encode("utf-8"), mode)
    except OSError as exc:
        raise InstallError(f"cannot write the settings: {exc.strerror}", str(real)) from None
    return InstallResult(str(real), True, backup, events)


def _indent(data: bytes) -> str | int:
    m = re.search(rb"\n([ \t]+)\S", data)
    if m is None:
        return 2
    return "\t" if m.group(1).startswith(b"\t") else len(m.group(1))
