"""The optional compiled build: the per-step hot path compiled to C by mypyc.

``SENTRAIL_COMPILE=1`` (the Makefile sets it) compiles the modules of NATIVE with mypyc and
writes ``src/sentrail/_native.json``: the SHA-256 of every compiled module's source, which
:mod:`sentrail._native` checks at import (a module edited after the build runs from its
source, with a warning). Without it the package is pure Python, and any compiled files an
earlier build left in ``src`` are removed so they cannot shadow the sources.

The Python sources stay the reference: ``SENTRAIL_PURE=1`` runs them even where a build
exists, and tests/test_native.py compares both on generated traces.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from setuptools import setup

SRC = Path(__file__).resolve().parent / "src"
MANIFEST = SRC / "sentrail" / "_native.json"

# Every step of every run passes through these: the detectors, the fold, the policy rules
# and matching, scoring, the decision point and decoding. Package __init__ files stay
# Python (docstrings only).
NATIVE = sorted(
    [
        *(
            str(p.relative_to(SRC))
            for p in (SRC / "sentrail" / "detect").glob("*.py")
            if p.name != "__init__.py"
        ),
        "sentrail/engine/fold.py",
        "sentrail/engine/scoring.py",
        "sentrail/policy/compiled.py",
        "sentrail/policy/dangerous.py",
        "sentrail/policy/match.py",
        "sentrail/policy/risk.py",
        "sentrail/policy/rules.py",
        "sentrail/enforce/pdp.py",
        "sentrail/model/decode.py",
        "sentrail/model/timestamps.py",
    ]
)


def _module(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def _remove_builds() -> None:
    """Compiled files of an earlier build (in ``src`` after an editable install): a module
    no longer compiled, or a pure install, must not find them before its source."""
    MANIFEST.unlink(missing_ok=True)
    for built in [*SRC.glob("*__mypyc.*.so"), *(SRC / "sentrail").rglob("*.cpython-*.so")]:
        built.unlink()


def _ext_modules() -> list[object]:
    if os.environ.get("SENTRAIL_COMPILE", "0") != "1":
        _remove_builds()
        return []
    try:  # the dev extra's mypy, which the Makefile installs first
        from mypyc.build import mypycify
    except ImportError:
        raise SystemExit(
            "SENTRAIL_COMPILE=1 needs mypyc (mypy) where setup.py runs: install the locked "
            "set first and pass --no-build-isolation (the Makefile does both)"
        ) from None
    _remove_builds()

    # Paths under src/ (no __init__.py there): mypy names the modules sentrail.*.
    modules = mypycify([f"src/{p}" for p in NATIVE], opt_level="3", group_name="sentrail")
    digests = {_module(p): hashlib.sha256((SRC / p).read_bytes()).hexdigest() for p in NATIVE}
    MANIFEST.write_text(json.dumps({"compiler": "mypyc", "modules": digests}, indent=1) + "\n")
    return modules


setup(ext_modules=_ext_modules())
