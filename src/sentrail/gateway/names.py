"""Identifiers the gateway writes into file names, logs and policy matches: kept plain."""

from __future__ import annotations

import re
from pathlib import Path

from sentrail.errors import UsageError

ALLOWED = "letters, digits and . _ : @ + -"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$")
_OTHER = re.compile(r"[^A-Za-z0-9._:@+-]")


def check_name(value: str, what: str) -> str:
    """``value`` if it is 1-128 plain characters starting with a letter or digit."""
    if not _NAME.match(value):
        raise UsageError(f"{what} {value!r} must be 1-128 characters: {ALLOWED}")
    return value


def plain_name(text: str, fallback: str = "mcp-server") -> str:
    """``text`` made into an acceptable name (other characters become ``-``)."""
    cleaned = _OTHER.sub("-", text).lstrip("._:@+-")[:128]
    return cleaned or fallback


def agent_from_command(command: list[str]) -> str:
    """The default agent id: the server command's name (``npx``, ``my-server``...)."""
    name = Path(command[0]).name if command else ""
    return plain_name(re.sub(r"\.(exe|cmd|bat)$", "", name, flags=re.IGNORECASE))
