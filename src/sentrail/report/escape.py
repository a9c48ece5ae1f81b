"""Every string that came from a trace is hostile: make it inert before printing it."""

from __future__ import annotations

import re

# C0 and C1 controls (ESC starts ANSI sequences), DEL, the Unicode format characters that
# reorder or hide text (bidi marks, overrides and isolates, zero-width characters, the soft
# hyphen), the characters that draw nothing (Unicode's default-ignorable ones: fillers,
# invisible vowels and operators, format controls, tag characters, which can also spell text
# a model reads; but the variation selectors U+FE00-U+FE0F, part of every emoji), line and
# paragraph separators, and lone surrogates (no encoder writes them). json_report.py escapes
# the same set in JSON.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\xad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    "\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ud800-\udfff\ufeff\uffa0\ufff0-\ufffb"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)
_SURROGATES = re.compile("[\ud800-\udfff]")
_NEWLINES = re.compile("[\n\t]")


def _visible(m: re.Match[str]) -> str:
    c = ord(m.group(0))
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" if c < 0x10000 else f"\\U{c:08x}"


def safe_text(text: object, *, limit: int = 500, one_line: bool = True) -> str:
    """``text`` with controls shown as escapes, newlines folded, and cut to ``limit``."""
    s = str(text)
    if len(s) > limit:
        s = s[:limit] + f"… (+{len(s) - limit} chars)"
    s = _UNSAFE.sub(_visible, s)
    if one_line:
        s = _NEWLINES.sub(lambda m: "\\n" if m.group(0) == "\n" else "\\t", s)
    return s


def utf8_safe(text: str) -> str:
    """``text`` as UTF-8 can carry it. A Python string may hold lone surrogates (a file name
    that is not UTF-8, read with ``os.fsdecode``; ``json.loads`` of a ``\\udc80`` escape),
    which no JSON encoder writes: each becomes U+FFFD, the replacement character, which is
    what a reader decoding such bytes shows (a model reads ``Ign\ufffdore`` as "Ignore", and
    so does the injection detector, which drops it)."""
    if text.isascii():
        return text
    return _SURROGATES.sub("\ufffd", text)
