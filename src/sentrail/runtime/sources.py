"""Where traces come from: a file, a directory tree, standard input, an NDJSON event stream.

Reads are bounded: a document larger than the limit (after gzip decompression too) is
refused with a clear error instead of being read into memory.
"""

from __future__ import annotations

import gzip
import os
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from sentrail.errors import InputError, SentrailError, UsageError
from sentrail.model.decode import MAX_DOCUMENT_BYTES, decode_event
from sentrail.model.events import Event

TRACE_SUFFIXES = (".json", ".json.gz")
EVENT_SUFFIXES = (".ndjson", ".jsonl", ".ndjson.gz", ".jsonl.gz")
STDIN = "-"


def is_event_stream_name(name: str) -> bool:
    return name.endswith(EVENT_SUFFIXES)


def iter_trace_paths(root: str) -> Iterator[str]:
    """Trace files under ``root`` (recursive, sorted), or ``root`` itself if it is a file."""
    if root == STDIN:
        yield STDIN
        return
    p = Path(root)
    if p.is_file():
        yield str(p)
        return
    if not p.is_dir():
        raise UsageError(f"no such file or directory: {root}")
    for dirpath, dirnames, filenames in os.walk(p):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(TRACE_SUFFIXES + EVENT_SUFFIXES) and not name.startswith("."):
                yield os.path.join(dirpath, name)


def _read_bounded(fh: IO[bytes] | gzip.GzipFile, limit: int, what: str) -> bytes:
    data = fh.read(limit + 1)
    if len(data) > limit:
        raise InputError(f"{what} is larger than the {limit}-byte limit")
    return data


def read_document(path: str, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    """The bytes of one document (gunzipped when the name ends in .gz), bounded."""
    try:
        if path == STDIN:
            return _read_bounded(sys.stdin.buffer, limit, "standard input")
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as gz:
                return _read_bounded(gz, limit, "decompressed document")
        with open(path, "rb") as fh:
            return _read_bounded(fh, limit, "document")
    except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise InputError(f"not a valid gzip file: {exc}") from None
    except IsADirectoryError:
        raise InputError("is a directory (use --batch for a directory)") from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}") from None


def looks_like_event_stream(data: bytes) -> bool:
    """NDJSON events start with a one-line object whose ``type`` is a known event type."""
    first = data.lstrip()[:1]
    if first != b"{":
        return False
    line = data.lstrip().split(b"\n", 1)[0]
    try:
        decode_event(line)
    except SentrailError:
        return False
    return True


def iter_events(data: bytes, where: str) -> Iterator[Event | InputError]:
    """Decode NDJSON lines; a bad line yields a located error and the stream goes on."""
    for lineno, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            yield decode_event(line)
        except SentrailError as exc:
            yield InputError(
                exc.message,
                f"{where}:line {lineno}" + (f": {exc.location}" if exc.location else ""),
            )
