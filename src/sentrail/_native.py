"""Compiled or pure: which form of the hot path runs, and a guard against stale builds.

An optional build (``setup.py``, ``SENTRAIL_COMPILE=1``; ``make`` does it) compiles the
per-step modules with mypyc next to their sources, with one shared library beside the
package (``sentrail__mypyc``), and records each source's SHA-256 in ``_native.json``.
Python imports a compiled module before its source, so a source edited after the build
would silently not run. :func:`install` (called by ``sentrail/__init__``) therefore finds
the compiled modules from the files present (not from the record, which may be missing or
damaged) and, unless every one of them has its record, its source unchanged and the shared
library beside it, or when ``SENTRAIL_PURE`` is set, makes every one of them load from its
source: all of them, because compiled modules call each other directly and cannot be mixed
with sources. A stale build also says so on stderr once.

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
SHARED_LIBRARY = "sentrail__mypyc"
_SKIP_DIRS = frozenset({"__pycache__", "static", "templates"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})

# What install() found: "compiled", "pure" (no build), "pure: SENTRAIL_PURE=1" or
# "pure: stale build (...)".
state = "pure"
modules: tuple[str, ...] = ()


def compiled_modules() -> dict[str, Path]:
    """Every compiled module in the package (name -> its source), from the files present."""
    found: dict[str, Path] = {}
    for root, dirs, files in os.walk(_PACKAGE):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]
        for file in files:
            stem = _extension_stem(file)
            if stem is None or not stem.isidentifier():
                continue
            rel = Path(root, stem).relative_to(_PACKAGE.parent)
            found[".".join(rel.parts)] = Path(root, stem + ".py")
    return found


def _extension_stem(file: str) -> str | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if file.endswith(suffix):
            return file[: -len(suffix)]
    return None


def _shared_library_present() -> bool:
    return any(
        (_PACKAGE.parent / (SHARED_LIBRARY + s)).exists()
        for s in importlib.machinery.EXTENSION_SUFFIXES
    )


def _read_manifest() -> dict[str, str]:
    try:
        recorded = json.loads(MANIFEST.read_text())["modules"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    if not isinstance(recorded, dict):
        return {}
    return {k: v for k, v in recorded.items() if isinstance(k, str) and isinstance(v, str)}


def stale(found: dict[str, Path], recorded: dict[str, str]) -> list[str]:
    """Why the compiled modules must not run, by module: one with no record or whose
    source changed or is missing, one recorded but no longer built, or no shared library
    beside the package (every module then)."""
    if found and not _shared_library_present():
        return sorted(found)
    out = []
    for name, source in sorted(found.items()):
        try:
            digest = hashlib.sha256(source.read_bytes()).hexdigest()
        except OSError:
            digest = None
        if digest is None or recorded.get(name) != digest:
            out.append(name)
    out += sorted(n for n in recorded if n not in found and _module_name(n))
    return out


def _why(changed: list[str], recorded: dict[str, str]) -> str:
    if not _shared_library_present():
        return f"the shared library {SHARED_LIBRARY} is missing"
    if not recorded:
        return f"no readable build record {MANIFEST.name}"
    more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
    return ", ".join(changed[:3]) + more + " changed since the build"


def _module_name(name: str) -> bool:
    parts = name.split(".")
    return len(parts) > 1 and parts[0] == "sentrail" and all(p.isidentifier() for p in parts)


def _flag(name: str) -> bool:
    """An environment switch: 1/true/yes/on, or 0/false/no/off/unset; anything else is
    refused on stderr and read as unset."""
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value not in _FALSE:
        print(f"sentrail: {name}={value!r} is neither 1 nor 0; read as 0", file=sys.stderr)
    return False


class _FromSource(importlib.abc.MetaPathFinder):
    """Loads the named modules from their ``.py`` files, never a compiled file."""

    def __init__(self, sources: dict[str, Path]) -> None:
        self.sources = dict(sources)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        source = self.sources.get(fullname)
        if source is None:
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def install() -> None:
    """Decide once per process which form runs (see the module's docstring)."""
    global state, modules
    found = compiled_modules()
    if not found:
        return
    modules = tuple(sorted(found))
    recorded = _read_manifest()
    changed = stale(found, recorded)
    if _flag("SENTRAIL_PURE"):
        state = "pure: SENTRAIL_PURE=1"
    elif changed:
        why = _why(changed, recorded)
        state = f"pure: stale build ({why})"
        print(
            f"sentrail: the compiled build does not match its sources ({why}); running the "
            "Python sources. Rebuild with `make native` (or `SENTRAIL_COMPILE=1 pip install "
            "--no-build-isolation -e .`).",
            file=sys.stderr,
        )
    else:
        state = "compiled"
        return
    sys.meta_path.insert(0, _FromSource({k: v for k, v in found.items() if v.exists()}))


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
    found = compiled_modules()
    if os.environ.get("SENTRAIL_COMPILE") == "1":
        return 0 if found and not stale(found, _read_manifest()) else 1
    return 1 if found or MANIFEST.exists() else 0  # a build is there that was not asked for
