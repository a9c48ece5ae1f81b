"""Rewriting another program's config file safely (``mcp install``, ``hook install``).

``backup`` keeps the old bytes as ``<file>.sentrail-backup-<UTC time>[-n]`` (never
overwriting one); ``replace`` writes the new bytes to a temporary file beside it, fsyncs
and renames it over the original, so a crash leaves the old or the new file, never half of
one. Both keep the file's mode and refuse to follow a link at the name they create.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from sentrail.errors import InputError


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def _create(target: Path, data: bytes, mode: int) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        _write_all(fd, data)
    finally:
        os.close(fd)


def backup(path: Path, data: bytes, mode: int) -> Path:
    """Keep ``data`` (the file's current bytes) next to ``path``; the backup's path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for n in range(1000):
        target = path.with_name(f"{path.name}.sentrail-backup-{stamp}" + (f"-{n}" if n else ""))
        try:
            _create(target, data, mode)
        except FileExistsError:
            continue
        return target
    raise InputError("cannot find a free backup name", str(path))


def replace(path: Path, data: bytes, mode: int) -> None:
    """Atomically replace the file at ``path`` with ``data`` (mode ``mode``)."""
    tmp = path.with_name(f".{path.name}.sentrail-{os.getpid()}.tmp")
    _create(tmp, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
