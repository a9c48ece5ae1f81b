"""Secret masking and bounded excerpts for anything that leaves sentrail in an alert or export.

Evidence and tool parameters come from traces: they may hold credentials the agent read or
sent. Values under telling keys (``password``, ``token``, ...) and secret-looking strings
(provider key formats, private keys, bearer tokens, credentials in URLs, card numbers) are
replaced by ``[masked]`` before anything is sent.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from sentrail.detect.content_values import SECRET
from sentrail.report.escape import safe_text

MASK = "[masked]"

_SECRET_KEY = re.compile(
    r"pass(?:word|wd|phrase)?$|^pwd$|secret|token|api[_-]?key|auth(?:orization)?$|"
    r"credential|private[_-]?key|cookie|session[_-]?id|^cvv$|^ssn$|card[_-]?number",
    re.I,
)
# Beyond the detectors' SECRET: bearer/basic credentials and user:password@ in URLs.
_EXTRA = re.compile(
    r"\b(?:Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{12,}|(?<=://)[^/\s:@]+:[^/\s@]+(?=@)",
    re.I,
)
_MAX_DEPTH = 12
_MAX_ITEMS = 200


def mask_text(text: str) -> str:
    """``text`` with every secret-looking value replaced by ``[masked]``."""
    return _EXTRA.sub(MASK, SECRET.sub(MASK, text))


def is_secret_key(key: str) -> bool:
    return _SECRET_KEY.search(key) is not None


def mask_secrets(value: Any, _depth: int = 0, *, cut: int | None = None) -> Any:
    """A copy of a JSON-like value with secrets masked; deep or huge values are cut, and
    strings to ``cut`` characters when given (masked before they are cut)."""
    if isinstance(value, str):
        masked = mask_text(value)
        return masked if cut is None or len(masked) <= cut else masked[:cut] + "…"
    if _depth >= _MAX_DEPTH:
        return "[nested too deep]"
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= _MAX_ITEMS:
                out["…"] = f"+{len(value) - _MAX_ITEMS} more keys"
                break
            key = str(k)
            secret_value = isinstance(v, str | int | float) and not isinstance(v, bool)
            secret = is_secret_key(key) and secret_value
            out[key] = MASK if secret else mask_secrets(v, _depth + 1, cut=cut)
        return out
    if isinstance(value, list | tuple):
        items = [mask_secrets(v, _depth + 1, cut=cut) for v in value[:_MAX_ITEMS]]
        if len(value) > _MAX_ITEMS:
            items.append(f"… +{len(value) - _MAX_ITEMS} more")
        return items
    if value is None or isinstance(value, bool | int | float):
        return value
    return mask_text(str(value))


def excerpt(value: Any, limit: int = 500) -> str:
    """A one-line, masked, escaped JSON excerpt of ``value`` of at most about ``limit`` chars.

    Each string is cut to a quarter of the limit first, so that one long value cannot crowd
    the others out; keys keep their order (detectors put the telling ones first)."""
    try:
        shortened = mask_secrets(value, cut=max(20, limit // 4))
        text = msgspec.json.encode(shortened).decode()
    except (TypeError, msgspec.EncodeError):
        text = mask_text(str(value))
    text = safe_text(text, limit=len(text))  # escape first, then cut: a hard bound
    return text if len(text) <= limit else text[:limit] + f"… (+{len(text) - limit} chars)"


def bounded_json(value: Any, limit: int = 4096) -> Any:
    """``value`` masked, or a masked excerpt string when its JSON is longer than ``limit``."""
    masked = mask_secrets(value)
    try:
        size = len(msgspec.json.encode(masked))
    except (TypeError, msgspec.EncodeError):
        return excerpt(value, limit)
    return masked if size <= limit else excerpt(value, limit)
