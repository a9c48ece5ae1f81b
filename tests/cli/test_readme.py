"""The README's sample output is the real output (issue 10, item 16).

Every ``$ sentrail ...`` line in a ``console`` block of README.md is run, from a directory
where ``examples/`` is this checkout's, and what it prints (stdout and stderr as a
terminal shows them) must be the lines that follow it in the README, exactly. A change to
the report, the examples or the policy that is not carried into the README fails here.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.conftest import EXAMPLES, ROOT

README = ROOT / "README.md"
_BLOCK = re.compile(r"^```console\n(.*?)^```", re.M | re.S)


def console_examples() -> list[tuple[str, str]]:
    """(command, expected output) of every ``$ sentrail`` line in the README."""
    examples: list[tuple[str, str]] = []
    for block in _BLOCK.findall(README.read_text(encoding="utf-8")):
        command: str | None = None
        lines: list[str] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                if command is not None:
                    examples.append((command, "\n".join(lines).strip("\n") + "\n"))
                command, lines = line[2:], []
            else:
                lines.append(line)
        if command is not None:
            examples.append((command, "\n".join(lines).strip("\n") + "\n"))
    return [(c, out) for c, out in examples if c.startswith("sentrail ")]


def test_the_readme_shows_the_single_trace_example() -> None:
    commands = [c for c, _ in console_examples()]
    assert any(c.startswith("sentrail trace analyze examples/traces/") for c in commands)
    assert any(c.startswith("sentrail trace analyze examples/traces ") for c in commands)


@pytest.mark.parametrize(("command", "expected"), console_examples(), ids=lambda x: x[:60])
def test_a_readme_command_prints_what_the_readme_shows(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, expected: str
) -> None:
    (tmp_path / "examples").symlink_to(EXAMPLES, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    result = cli(*shlex.split(command)[1:])
    assert result.output == expected
