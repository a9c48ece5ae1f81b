"""RE2 (the optional ``google-re2`` wheel) for expressions the detectors run on ASCII text.

Python's ``re`` backtracks and tries long alternations branch by branch at every position;
RE2 runs a DFA over the bytes once. On ASCII text the two read an expression written
without look-around identically (both leftmost-first; ``\\w``, ``\\d``, ``\\b`` and case
folding are ASCII there), except the white-space classes: Python's ``\\s`` also holds
``\\v`` and ``\\x1c``-``\\x1f``, so ``ascii_re2`` spells them out. Non-ASCII text, and every
text when RE2 is missing or ``SENTRAIL_NO_RE2`` is set, keeps Python's ``re``: the
reference, which property tests compare with the compiled form.
"""

from __future__ import annotations

import os
import re
from typing import Any

# On ASCII text Python's \s is these characters (RE2's \s lacks \v and \x1c-\x1f).
_ASCII_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f "


_SAME_FLAGS = re.IGNORECASE | re.UNICODE | re.ASCII  # the only flags RE2 reads alike here


def ascii_re2(rx: re.Pattern[str]) -> str:
    """``rx`` (case-insensitive, no look-around) as RE2 reads it identically on ASCII text.
    What RE2 would read otherwise is refused (ValueError) rather than translated: other
    flags, non-ASCII characters, ``$`` (Python's also matches before a final newline),
    ``\\Z``, ``{,n}`` (a literal to RE2), ``[:`` in brackets (a POSIX class to RE2), and
    ``\\S`` in brackets (no such spelling)."""
    if not rx.flags & re.IGNORECASE or rx.flags & ~_SAME_FLAGS:
        raise ValueError(f"only case-insensitive expressions are read alike: {rx.pattern!r}")
    pattern = rx.pattern
    if not pattern.isascii():  # case folding of non-ASCII letters differs between them
        raise ValueError(f"only ASCII expressions are read alike: {pattern!r}")
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            escape = pattern[i + 1]
            if escape == "s":
                out.append(_ASCII_SPACE if in_class else f"[{_ASCII_SPACE}]")
            elif escape == "S" and not in_class:
                out.append(f"[^{_ASCII_SPACE}]")
            elif escape in "SZ":
                raise ValueError(f"\\{escape} reads differently in RE2: {pattern!r}")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if not in_class and (c == "$" or pattern.startswith("{,", i)):
            raise ValueError(f"{c!r} at {i} reads differently in RE2: {pattern!r}")
        if c == "[" and not in_class:
            in_class = True
            out.append(c)
            i += 1
            # A "]" first in the brackets (after an optional "^") is a literal.
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            if pattern.startswith("]", i):
                out.append("\\]")
                i += 1
            continue
        if in_class and pattern.startswith("[:", i):  # a POSIX class to RE2 only
            raise ValueError(f"'[:' in brackets reads differently in RE2: {pattern!r}")
        if c == "]" and in_class:
            in_class = False
        out.append(c)
        i += 1
    return "".join(out)


def _re2() -> Any:
    if os.environ.get("SENTRAIL_NO_RE2"):
        return None
    try:
        import re2
    except ImportError:
        return None
    return re2


def _options(re2: Any, max_mem: int) -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.max_mem = max_mem
    options.log_errors = False
    return options


def compile_one(rx: re.Pattern[str]) -> Any:
    """RE2's reading of ``rx`` (through ``ascii_re2``; its ``search`` and ``finditer`` take
    ASCII ``str``), or None without RE2."""
    re2 = _re2()
    if re2 is None:
        return None
    return re2.compile(ascii_re2(rx), _options(re2, 8 << 20))


def compile_set(expressions: list[str], max_mem: int = 64 << 20) -> Any:
    """A case-insensitive RE2 ``Set`` of ``expressions`` (RE2 syntax, e.g. from
    ``ascii_re2``; its compiled
    ``Match``: bytes in, the ids of the expressions found out), or None without RE2.
    Callers add ``"^"`` last: RE2's Set answers nothing, not an error, when its DFA gives
    up, so an answer without that id is not trusted."""
    re2 = _re2()
    if re2 is None:
        return None
    compiled = re2.Set.SearchSet(_options(re2, max_mem))
    for expr in expressions:
        compiled.Add(expr)
    compiled.Compile()
    # The wrapper's Match is a Python method around the compiled one (bytes in, a list of
    # ids out; an empty list where the wrapper says None): call the compiled one.
    return getattr(compiled, "_set", compiled)
