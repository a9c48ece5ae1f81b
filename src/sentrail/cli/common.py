"""Shared CLI plumbing: exit codes, error printing, tables, terminal detection."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer

from sentrail.report.escape import safe_text

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    typer.echo(f"error: {safe_text(message, limit=2000)}", err=True)
    raise typer.Exit(code)


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[str]], empty: str) -> None:
    """Rows under a header line, in aligned columns; ``empty`` alone when there are none.
    Cells must already be escaped (``safe_text``): widths are counted on what is printed."""
    if not rows:
        typer.echo(empty)
        return
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers) - 1)]
    for row in [headers, *rows]:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[-1]]))


def colour_for(stream: object) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress_bar() -> Any:
    """A rich progress bar on stderr (count, bar, time left) that leaves no trace."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def stderr_interactive() -> bool:
    return colour_for(sys.stderr) and not os.environ.get("CI")
