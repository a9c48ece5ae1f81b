"""``sentrail policy validate`` and ``sentrail policy test``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sentrail.cli.common import EXIT_FINDINGS, EXIT_USAGE, colour_for, fail
from sentrail.engine.engine import Engine
from sentrail.errors import SentrailError
from sentrail.model.decode import decode_run
from sentrail.policy.bundle import PolicyBundle
from sentrail.policy.compiled import Policy
from sentrail.policy.load import LoadedBundle, load_policy
from sentrail.report.escape import safe_text
from sentrail.runtime.sources import read_document

app = typer.Typer(help="Validate and test policy bundles.", no_args_is_help=True)


def _load(file: Path) -> LoadedBundle:
    try:
        return load_policy(file)
    except SentrailError as exc:
        fail(str(exc))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@app.command()
def validate(file: Annotated[Path, typer.Argument(help="Policy bundle YAML")]) -> None:
    """Check a policy bundle; errors name the line and the YAML path."""
    loaded = _load(file)
    b = loaded.bundle
    parts = [
        _count(len(b.agents), "agent profile")
        + (" and a default profile" if b.default_profile is not None else ""),
        _count(len(b.tools), "registered tool"),
        _count(len(b.rules), "rule"),
        _count(len(b.exceptions), "exception"),
    ]
    if b.dangerous_actions:  # changes to the built-in rule pack
        parts.append(_count(len(b.dangerous_actions), "dangerous-action change"))
    counts = ", ".join(parts)
    typer.echo(f"OK: {safe_text(file)} — policy {safe_text(b.name)!s}: {counts}")
    typer.echo(f"sha256 {loaded.sha256}")
    if b == PolicyBundle():  # valid, but most likely not the file that was meant
        typer.echo(
            "WARNING: the file sets nothing (empty, or only comments): the built-in defaults apply",
            err=True,
        )


@app.command("test")
def test_(file: Annotated[Path, typer.Argument(help="Policy bundle YAML")]) -> None:
    """Run each rule's examples: traces that must fire the rule and traces that must not.

    Example paths are relative to the bundle file's directory."""
    loaded = _load(file)
    engine = Engine(Policy(loaded))
    base = file.parent
    colour = colour_for(typer.get_text_stream("stdout"))
    failed = passed = unreadable = 0
    untested: list[str] = []
    for rule in loaded.bundle.rules:
        ex = rule.examples
        if ex is None or not (ex.must_fire or ex.must_not_fire):
            untested.append(rule.id)
            continue
        for rel, should in [(p, True) for p in ex.must_fire] + [
            (p, False) for p in ex.must_not_fire
        ]:
            path = base / rel
            try:
                result = engine.analyze(decode_run(read_document(str(path))))
            except SentrailError as exc:
                typer.echo(
                    f"  [ERROR] {safe_text(rule.id)}: {safe_text(rel)}: cannot analyse "
                    f"{safe_text(path.absolute())}: {safe_text(str(exc))}"
                )
                unreadable += 1
                continue
            fired = any(f.rule == f"policy.rule.{rule.id}" for f in result.findings)
            ok = fired == should
            label = "PASS" if ok else "FAIL"
            badge = f"\x1b[{'32' if ok else '31;1'}m[{label}]\x1b[0m" if colour else f"[{label}]"
            verb = "fires" if fired else "does not fire"
            typer.echo(f"  {badge} {safe_text(rule.id)}: {safe_text(rel)} {verb}")
            passed += ok
            failed += not ok
    for rule_id in untested:
        typer.echo(f"  [NOTE] {rule_id}: no examples")
    errors = f", {unreadable} could not be analysed" if unreadable else ""
    typer.echo(f"{passed} passed, {failed} failed{errors}")
    if unreadable:
        typer.echo(
            "Example paths are relative to the bundle's directory "
            f"({safe_text(base.absolute())}): copy the examples along with the bundle."
        )
    if unreadable:  # an input error wins over a failed example: the test is incomplete
        raise typer.Exit(EXIT_USAGE)
    if failed:
        raise typer.Exit(EXIT_FINDINGS)
