"""``sentrail baseline learn``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from sentrail.cli.common import EXIT_OK, EXIT_USAGE, fail
from sentrail.engine.baseline_learn import learn
from sentrail.errors import SentrailError
from sentrail.model.decode import decode_run
from sentrail.model.trace import Run
from sentrail.report.escape import safe_text
from sentrail.runtime.sources import iter_trace_paths, read_document

app = typer.Typer(help="Learn per-agent behavioural baselines.", no_args_is_help=True)


@app.command("learn")
def learn_(
    path: Annotated[str, typer.Argument(help="Directory (or file) of past run traces")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write baselines")],
) -> None:
    """Learn tools, transitions and permissions per agent from past runs; an invalid file
    is reported (exit 2) and the rest are learned."""
    errors: list[str] = []
    counted = 0

    def runs() -> Iterator[Run]:
        nonlocal counted
        for p in iter_trace_paths(path):
            try:
                run = decode_run(read_document(p))
            except SentrailError as exc:
                errors.append(f"{p}: {exc}")
                continue
            counted += 1
            yield run

    try:
        baselines = learn(runs())
    except SentrailError as exc:
        fail(str(exc))
    try:
        output.write_bytes(msgspec.json.format(msgspec.json.encode(baselines), indent=2))
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}")
    for e in errors:
        typer.echo(f"invalid: {safe_text(e)}", err=True)
    typer.echo(
        f"Learned baselines for {len(baselines.agents)} agents from {counted} runs"
        f" ({len(errors)} invalid file{'' if len(errors) == 1 else 's'}); written to "
        f"{safe_text(output)}"
    )
    raise typer.Exit(EXIT_USAGE if errors else EXIT_OK)  # the rest were learned, as in a batch
