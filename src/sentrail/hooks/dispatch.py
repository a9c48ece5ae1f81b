"""Run one hook end to end: payload in, answer out, and never a traceback.

Every failure (an unreadable payload, a damaged session log, a bug) becomes the client's
fail-closed answer: a call is denied (or, with ``--on-error ask``, sent to the user), an
output is flagged as unchecked. The reason goes to stderr as well, for the client's log.
"""

from __future__ import annotations

import json
from typing import Any, BinaryIO

import msgspec

from sentrail.errors import SentrailError
from sentrail.hooks import claude, cursor
from sentrail.hooks.payload import read_payload
from sentrail.hooks.runner import HookOptions
from sentrail.report.escape import safe_text

CLIENTS = ("claude-code", "codex", "cursor")


class HookReply(msgspec.Struct, frozen=True):
    stdout: str  # the JSON answer and a newline, or "" for no answer
    stderr: str = ""
    failed: bool = False


def respond(stream: BinaryIO, options: HookOptions) -> HookReply:
    """Read the payload from ``stream`` and answer it as ``options.client`` expects."""
    payload: dict[str, Any] | None = None
    try:
        payload = read_payload(stream)
        answer = _handle(payload, options)
    except SentrailError as exc:
        return _failure(payload, str(exc), options)
    except Exception as exc:  # a bug must not become a traceback, nor an allowed call
        return _failure(payload, f"internal error: {type(exc).__name__}: {exc}", options)
    return HookReply(_render(answer))


def _handle(payload: dict[str, Any], options: HookOptions) -> dict[str, Any] | None:
    if options.client == "claude-code":
        return claude.handle(payload, options)
    if options.client == "codex":
        return claude.handle(payload, options, codex=True)
    if options.client == "cursor":
        return cursor.handle(payload, options)
    raise SentrailError(f"unknown hook client {options.client!r} ({', '.join(CLIENTS)})")


def _failure(payload: dict[str, Any] | None, why: str, options: HookOptions) -> HookReply:
    event = payload.get("hook_event_name") if payload is not None else None
    event = event if isinstance(event, str) else None
    why = safe_text(why, limit=1000)
    if options.client == "cursor":
        answer = cursor.failure_answer(event, why, options)
    else:
        answer = claude.failure_answer(event, why, options, codex=options.client == "codex")
    return HookReply(_render(answer), f"sentrail hook {options.client}: {why}\n", failed=True)


def _render(answer: dict[str, Any] | None) -> str:
    if answer is None:
        return ""
    return json.dumps(answer, ensure_ascii=False, separators=(",", ":")) + "\n"
