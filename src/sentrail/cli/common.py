"""Shared CLI plumbing: exit codes, error printing, terminal detection."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import typer

from sentrail.report.escape import safe_text

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    typer.echo(f"error: {safe_text(message, limit=2000)}", err=True)
    raise typer.Exit(code)


def colour_for(stream: object) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def stderr_interactive() -> bool:
    return colour_for(sys.stderr) and not os.environ.get("CI")
