"""Compiled or pure: which form of the hot path runs, and a guard against stale builds.

An optional build (``setup.py``, ``SENTRAIL_COMPILE=1``; ``make`` does it) compiles the
per-step modules with mypyc next to their sources and records each source's SHA-256 in
``_native.json``. Python imports a compiled module before its source, so a source edited
after the build would silently not run. :func:`install` (called by ``sentrail/__init__``)
therefore checks the record and, if any compiled module's source changed, or
``SENTRAIL_PURE=1`` is set, makes every compiled module load from its source instead: all
of them, because compiled modules call each other directly and cannot be mixed with
sources. A stale build also says so on stderr once.

``sentrail --version`` names the form that runs; :func:`main` with ``--check`` exits 1 when
the install does not match ``SENTRAIL_COMPILE``: a build asked for (``1``) but missing or
stale, or one there but not asked for. ``make`` reinstalls then.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

_PACKAGE = Path(__file__).resolve().parent
MANIFEST = _PACKAGE / "_native.json"

# What install() found: "compiled", "pure" (no build), "pure: SENTRAIL_PURE=1" or
# "pure: stale build (...)".
state = "pure"
modules: tuple[str, ...] = ()


def _source(name: str) -> Path:
    return _PACKAGE.parent.joinpath(*name.split(".")).with_suffix(".py")


def _read_manifest() -> dict[str, str]:
    try:
        data = json.loads(MANIFEST.read_text())
        recorded = data["modules"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    if not isinstance(recorded, dict):
        return {}
    return {str(k): str(v) for k, v in recorded.items() if str(k).startswith("sentrail.")}


def _built(name: str) -> bool:
    path = _source(name)
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    return any(path.with_suffix(s).exists() for s in suffixes)


def stale(recorded: dict[str, str]) -> list[str]:
    """The compiled modules whose source changed since the build (or whose build is gone)."""
    out = []
    for name, digest in recorded.items():
        try:
            data = _source(name).read_bytes()
        except OSError:
            continue  # no source to run instead: the compiled module is all there is
        if hashlib.sha256(data).hexdigest() != digest or not _built(name):
            out.append(name)
    return out


class _FromSource(importlib.abc.MetaPathFinder):
    """Loads the named modules from their ``.py`` files, never a compiled file."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        return importlib.util.spec_from_file_location(fullname, _source(fullname))


def install() -> None:
    """Decide once per process which form runs (see the module's docstring)."""
    global state, modules
    recorded = _read_manifest()
    if not recorded:
        return
    modules = tuple(sorted(recorded))
    changed = stale(recorded)
    if os.environ.get("SENTRAIL_PURE") == "1":
        state = "pure: SENTRAIL_PURE=1"
    elif changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        shown = ", ".join(changed[:3]) + more
        state = f"pure: stale build ({shown} changed)"
        print(
            f"sentrail: the compiled build is older than its sources ({shown}); running the "
            "Python sources. Rebuild with `make` (or SENTRAIL_COMPILE=1 pip install -e .).",
            file=sys.stderr,
        )
    else:
        state = "compiled"
        return
    sys.meta_path.insert(0, _FromSource(modules))


def running() -> str:
    """What runs now: ``compiled by mypyc: N modules`` or ``pure Python: why``."""
    if state == "compiled":
        return f"compiled by mypyc: {len(modules)} modules"
    why = state.removeprefix("pure").removeprefix(": ")
    return f"pure Python: {why or 'no compiled build'}"


def main(argv: Sequence[str]) -> int:
    print(running())
    if "--check" not in argv:
        return 0
    recorded = _read_manifest()
    if os.environ.get("SENTRAIL_COMPILE") == "1":
        return 0 if recorded and not stale(recorded) else 1
    return 1 if recorded else 0  # a build is there that was not asked for
