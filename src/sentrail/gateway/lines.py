"""Newline-delimited framing (the MCP stdio transport) with a bound on each message.

A message longer than the limit is never held in memory: its first bytes are kept (to
answer its request id) and the rest is counted and dropped up to the next newline.
"""

from __future__ import annotations

import msgspec

DEFAULT_LIMIT = 16 * 1024 * 1024
HEAD = 4096  # bytes of an oversized message kept to find its id


class Oversized(msgspec.Struct, frozen=True):
    """A message that exceeded the limit: its first :data:`HEAD` bytes and its size."""

    head: bytes
    size: int


Frame = bytes | Oversized


class LineSplitter:
    """Bytes in, complete lines out (without the newline), each at most ``limit`` bytes."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("the line limit must be positive")
        self.limit = limit
        self._buf = bytearray()
        self._over_head: bytes | None = None  # set while skipping an oversized line
        self._over_size = 0

    def feed(self, chunk: bytes) -> list[Frame]:
        out: list[Frame] = []
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                self._take(chunk[start:])
                return out
            self._take(chunk[start:nl])
            out.append(self._end())
            start = nl + 1

    def finish(self) -> list[Frame]:
        """At end of input: the last line if it had no newline."""
        if self._over_head is None and not self._buf:
            return []
        return [self._end()]

    def _take(self, piece: bytes) -> None:
        if not piece:
            return
        if self._over_head is not None:
            self._over_size += len(piece)
        elif len(self._buf) + len(piece) > self.limit:
            self._over_head = bytes((self._buf + piece[:HEAD])[:HEAD])
            self._over_size = len(self._buf) + len(piece)
            self._buf.clear()
        else:
            self._buf += piece

    def _end(self) -> Frame:
        if self._over_head is not None:
            frame: Frame = Oversized(self._over_head, self._over_size)
            self._over_head, self._over_size = None, 0
            return frame
        line = bytes(self._buf)
        self._buf.clear()
        return line
