"""Every string that came from a trace is hostile: make it inert before printing it."""

from __future__ import annotations

import re

# C0 and C1 controls (ESC starts ANSI sequences), DEL, and the Unicode format characters that
# reorder or hide text (bidi overrides and isolates, zero-width characters).
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]"
)
_NEWLINES = re.compile("[\n\t]")


def _visible(m: re.Match[str]) -> str:
    c = ord(m.group(0))
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def safe_text(text: object, *, limit: int = 500, one_line: bool = True) -> str:
    """``text`` with controls shown as escapes, newlines folded, and cut to ``limit``."""
    s = str(text)
    if len(s) > limit:
        s = s[:limit] + f"… (+{len(s) - limit} chars)"
    s = _UNSAFE.sub(_visible, s)
    if one_line:
        s = _NEWLINES.sub(lambda m: "\\n" if m.group(0) == "\n" else "\\t", s)
    return s
