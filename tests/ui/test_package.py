"""Every dashboard asset ships in the package (an air-gapped install has no CDN)."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UI = ROOT / "src" / "sentrail" / "ui"


def test_every_template_and_static_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["sentrail"]
    files = [
        p.relative_to(UI.parent).as_posix()
        for d in ("templates", "static")
        for p in (UI / d).rglob("*")
        if p.is_file()
    ]
    assert files
    missing = [f for f in files if not any(fnmatch(f, g) for g in globs)]
    assert missing == []


def test_pages_load_nothing_from_another_origin() -> None:
    text = "\n".join(p.read_text() for p in (UI / "templates").glob("*.html"))
    text += "\n".join(p.read_text() for p in (UI / "static").glob("*.js"))
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    assert not re.search(r"""fetch\(["']https?:""", text)
    assert "style=" not in text and " on" + "click=" not in text
