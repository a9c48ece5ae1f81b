"""Reading a hook payload from stdin: bounded, UTF-8 JSON, one object, clear errors.

The payload is hostile input like any other (it carries tool arguments and tool output the
agent and the world chose): the size is capped before parsing, duplicate keys and deep
nesting are refused, and every field is read through typed accessors that say which field
is wrong rather than failing later with a ``KeyError``.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import msgspec

from sentrail.errors import InputError
from sentrail.model.decode import TOO_DEEP, check_structure, normalise_encoding

MAX_PAYLOAD_BYTES = 16 * 1024 * 1024


class HookInputError(InputError):
    """A hook payload that cannot be read as documented."""


def read_payload(stream: BinaryIO, limit: int = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    """Read at most ``limit`` bytes and decode them as one JSON object."""
    try:
        data = stream.read(limit + 1)
    except (OSError, ValueError) as exc:
        raise HookInputError(f"cannot read the hook payload: {exc}", "stdin") from None
    if len(data) > limit:
        raise HookInputError(f"hook payload is larger than {limit} bytes", "stdin")
    return decode_payload(data)


def decode_payload(data: bytes) -> dict[str, Any]:
    if not data.strip():
        raise HookInputError("empty hook payload (expected one JSON object)", "stdin")
    try:
        data = normalise_encoding(data)
        check_structure(data)
        value = msgspec.json.decode(data)
    except InputError as exc:
        raise HookInputError(exc.message, "stdin") from None
    except RecursionError:
        raise HookInputError(TOO_DEEP, "stdin") from None
    except msgspec.DecodeError as exc:
        msg = str(exc).replace("JSON is malformed: ", "")
        raise HookInputError(f"hook payload is not JSON: {msg}", "stdin") from None
    if not isinstance(value, dict):
        raise HookInputError(
            f"hook payload must be a JSON object, got {type(value).__name__}", "stdin"
        )
    return value


def get_str(payload: dict[str, Any], key: str, *, required: bool = True) -> str:
    """``payload[key]`` as a string ("" when optional and absent or null)."""
    value = payload.get(key)
    if value is None:
        if required:
            raise HookInputError("missing (a string is required)", key)
        return ""
    if not isinstance(value, str):
        raise HookInputError(f"must be a string, got {_kind(value)}", key)
    return value


def get_object(payload: dict[str, Any], key: str) -> dict[str, Any]:
    """``payload[key]`` as an object ({} when absent or null)."""
    value = payload.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise HookInputError(f"must be an object, got {_kind(value)}", key)
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a string" if isinstance(value, str) else type(value).__name__
