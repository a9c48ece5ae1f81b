"""The ``@guard`` example of docs/sdk.md runs as written, from the repository's root, and
does what its comments say (a new user's first try of the SDK)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sentrail.enforce.model import Outcome

ROOT = Path(__file__).resolve().parents[2]


def _python_blocks(doc: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", doc, re.S)


def test_the_guard_example_denies_the_injected_transfer_and_makes_the_asked_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SENTRAIL_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(ROOT)
    decision_point, guarded = _python_blocks((ROOT / "docs" / "sdk.md").read_text())[:2]
    scope: dict[str, object] = {}
    exec(decision_point, scope)
    # The example's last call must be allowed: a ToolDenied from it would fail the test.
    exec(guarded, scope)
    printed = capsys.readouterr().out
    assert printed.startswith(f"{Outcome.DENY!s} ") and "tainted_action" in printed, printed
