"""Cutting a byte stream into JSON documents, with bounds.

- :func:`bounded_lines`: lines from a ``readline``, each cut at the document limit (the
  rest of a longer line is skipped, so one huge line cannot exhaust memory);
- :func:`ndjson_lines`: the non-blank lines of an NDJSON body, numbered, without their
  line terminators (``\n`` or ``\r\n``);
- :class:`DocumentFramer`: lines into documents: NDJSON (one per line) or a document
  spread over many lines (a pretty-printed trace on stdin), several in a row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from sentrail.errors import InputError
from sentrail.model.decode import MAX_DOCUMENT_BYTES

_OUTSIDE = re.compile(rb'["{}\[\]]')


def ndjson_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` for each non-blank line, without ``\n`` or ``\r\n``."""
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if line.strip():
            yield lineno, line


_INSIDE = re.compile(rb'["\\]')


def skip_rest(readline: Callable[[int], bytes]) -> None:
    while True:
        more = readline(1 << 20)
        if not more or more.endswith(b"\n"):
            return


def bounded_lines(readline: Callable[[int], bytes], limit: int) -> Iterator[bytes]:
    """Lines from ``readline`` until EOF, each at most ``limit + 1`` bytes."""
    while True:
        line = readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            skip_rest(readline)
        yield line


class DocumentFramer:
    """Cuts lines into JSON documents: one per line, or one spanning several lines.

    A document starts at a line whose first non-blank byte is ``{`` or ``[`` and ends
    where its brackets balance (strings and escapes are skipped); whatever else is on
    that line stays with it, so trailing garbage is reported by the decoder.
    """

    def __init__(self, limit: int = MAX_DOCUMENT_BYTES) -> None:
        self.limit = limit
        self.lineno = 0
        self._pending: list[bytes] = []
        self._size = 0
        self._start = 0
        self._depth = 0
        self._in_string = False
        self._escape = False

    def _reset(self) -> None:
        self._pending, self._size, self._depth = [], 0, 0
        self._in_string = self._escape = False

    def _scan(self, line: bytes) -> bool:
        """Track nesting through ``line``; True when the top-level value closed in it."""
        i, n = 0, len(line)
        if self._escape:
            i, self._escape = 1, False
        while i < n:
            if self._in_string:
                m = _INSIDE.search(line, i)
                if m is None:
                    return False
                if m.group() == b"\\":
                    if m.end() >= n:
                        self._escape = True
                        return False
                    i = m.end() + 1
                    continue
                self._in_string, i = False, m.end()
                continue
            m = _OUTSIDE.search(line, i)
            if m is None:
                return False
            c, i = m.group(), m.end()
            if c == b'"':
                self._in_string = True
            elif c in (b"{", b"["):
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth <= 0:
                    return True
        return False

    def feed(self, line: bytes) -> tuple[int, bytes | InputError] | None:
        """One line in; ``(first line number, document or error)`` when one is complete."""
        self.lineno += 1
        if self.lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        if not self._pending:
            head = line.lstrip()
            if not head:
                return None
            if head[:1] not in (b"{", b"["):
                self._reset()
                return self.lineno, InputError("expected a JSON object (one event per line)")
            self._start = self.lineno
        self._pending.append(line)
        self._size += len(line)
        if self._size > self.limit:
            self._reset()
            return self._start, InputError(f"document is larger than {self.limit} bytes")
        if not self._scan(line):
            return None
        doc = b"".join(self._pending)
        self._reset()
        return self._start, doc

    def end(self) -> tuple[int, InputError] | None:
        """At the end of input: an unfinished document is an error."""
        if not self._pending:
            return None
        start = self._start
        self._reset()
        return start, InputError("truncated JSON: the input ends before the document does")
