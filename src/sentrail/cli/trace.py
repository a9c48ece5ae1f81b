"""``sentrail trace analyze``."""

from __future__ import annotations

import datetime as dt
import enum
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from sentrail.cli.common import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_USAGE,
    colour_for,
    fail,
    progress_bar,
)
from sentrail.engine.config import EngineConfig
from sentrail.errors import SentrailError
from sentrail.model.finding import RunResult, Severity
from sentrail.model.judgement import JudgeAnswer
from sentrail.report.escape import safe_text
from sentrail.report.json_report import JsonReportWriter
from sentrail.report.text import render_judgement, render_not_asked, render_run
from sentrail.runtime.batch import Analysis, run_batch
from sentrail.runtime.judge import DEFAULT_API_KEY_ENV, JudgeTally, OpenAIChatJudge
from sentrail.runtime.sources import EVENT_SUFFIXES, STDIN, TRACE_SUFFIXES, iter_trace_paths

app = typer.Typer(help="Analyse run traces.", no_args_is_help=True)


class Format(enum.StrEnum):
    text = "text"
    json = "json"


class FailOn(enum.StrEnum):
    info = "info"
    warning = "warning"
    critical = "critical"
    never = "never"


@app.command()
def analyze(
    path: Annotated[
        str, typer.Argument(help="Trace file, directory, NDJSON stream, or - for stdin")
    ],
    batch: Annotated[
        bool,
        typer.Option(
            "--batch",
            help="Print the batch summary instead of each run's report, even for one file "
            "(a directory, or a stream of several runs, always gets the summary)",
        ),
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the JSON report here")
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output on stdout")] = Format.text,
    policy: Annotated[
        Path | None, typer.Option("--policy", "-p", help="Policy bundle YAML")
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option("--baseline", "-b", help="Baselines from `baseline learn`")
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Worker processes")] = 1,
    fail_on: Annotated[
        FailOn, typer.Option("--fail-on", help="Exit 1 when a finding is at or above this")
    ] = FailOn.critical,
    explain: Annotated[
        bool, typer.Option("--explain", help="Under each finding, its full chain of facts")
    ] = False,
    judge_url: Annotated[
        str | None,
        typer.Option(
            "--judge",
            help="Ask a model (an OpenAI-compatible chat endpoint, e.g. "
            "http://127.0.0.1:8000/v1) about the runs the rules leave ambiguous; its opinion "
            "is reported apart and never changes the verdict. Off by default",
        ),
    ] = None,
    judge_model: Annotated[
        str | None, typer.Option("--judge-model", help="The model the judge asks")
    ] = None,
    judge_budget: Annotated[
        int, typer.Option("--judge-budget", min=0, help="At most this many calls to the model")
    ] = 50,
    judge_cache: Annotated[
        Path | None,
        typer.Option("--judge-cache", help="Keep the model's answers in this JSON file"),
    ] = None,
    judge_key_env: Annotated[
        str,
        typer.Option("--judge-api-key-env", help="The environment variable holding the API key"),
    ] = DEFAULT_API_KEY_ENV,
    judge_timeout: Annotated[
        float, typer.Option("--judge-timeout", min=0.1, help="Seconds per call to the model")
    ] = 30.0,
) -> None:
    """Judge one trace or thousands; an invalid file is reported and the rest go on."""
    judge: OpenAIChatJudge | None = None
    if judge_url is not None:
        if not judge_model:
            fail("--judge needs --judge-model (the model to ask)")
        try:
            judge = OpenAIChatJudge(
                judge_url,
                judge_model,
                api_key_env=judge_key_env,
                timeout=judge_timeout,
                max_calls=judge_budget,
                cache_path=str(judge_cache) if judge_cache else None,
            )
        except SentrailError as exc:
            fail(str(exc))
    elif judge_model is not None:
        fail("--judge-model needs --judge (the endpoint to ask)")
    config = EngineConfig(
        policy_path=str(policy) if policy else None,
        baseline_path=str(baseline) if baseline else None,
        today=dt.date.today(),
    )
    try:
        engine = config.build()  # validates policy and baselines before any work
        paths = list(iter_trace_paths(path))
    except SentrailError as exc:
        fail(str(exc))
    is_dir = path != STDIN and os.path.isdir(path)
    if is_dir and not paths:  # a wrong folder must not pass as "nothing found"
        kinds = ", ".join("*" + s for s in TRACE_SUFFIXES + EVENT_SUFFIXES)
        fail(f"no trace files in {path} (looked for {kinds}, in subfolders too)")
    batch = batch or is_dir or len(paths) != 1
    policy_info = {"path": engine.policy.path, "sha256": engine.policy.sha256}
    threshold = None if fail_on is FailOn.never else Severity(fail_on.value)

    with JsonReportWriter(policy_info) as report:
        if judge is not None:
            report.judge = judge.tally
        tripped = False
        results_for_text: list[tuple[str, RunResult, JudgeAnswer | None]] = []
        outcomes = run_batch(paths, config, jobs=jobs, questions=judge is not None)
        if batch and fmt is Format.text:
            typer.echo(f"Analysing {len(paths)} trace file{'s' * (len(paths) != 1)}...")
        progress = progress_bar() if batch and _interactive() else None
        task = progress.add_task("analysing", total=len(paths)) if progress else None
        if progress:
            progress.start()
        try:
            seen_paths: set[str] = set()
            for outcome in outcomes:
                if progress is not None and outcome.path not in seen_paths:
                    seen_paths.add(outcome.path)
                    progress.advance(task)
                answer = None
                if judge is not None and outcome.question is not None:
                    answer = judge.ask(outcome.question)
                tripped |= _record(report, outcome, threshold, answer)
                if not batch and outcome.result is not None:
                    results_for_text.append((outcome.path, outcome.result, answer))
        finally:
            if progress:
                progress.stop()
            if judge is not None:
                _close_judge(judge)
        if output is not None:
            try:
                report.write_file(str(output))
            except OSError as exc:
                fail(f"cannot write report {output}: {exc.strerror}")
        if fmt is Format.json:
            report.write_to(sys.stdout.buffer)
            sys.stdout.buffer.flush()
        elif batch:
            _print_batch_summary(report, output)
        else:
            colour = colour_for(sys.stdout)
            for _, result, answer in results_for_text:
                typer.echo(
                    render_run(
                        result,
                        colour=colour,
                        policy_path=engine.policy.path,
                        policy_sha256=engine.policy.sha256,
                        chains=explain,
                    ),
                    nl=False,
                )
                if answer is not None:
                    typer.echo(render_judgement(result, answer), nl=False)
                elif judge is not None:
                    typer.echo(render_not_asked(result), nl=False)
        for err in report.errors:
            typer.echo(f"invalid: {safe_text(err.path)}: {safe_text(err.error)}", err=True)
        if output is not None and fmt is Format.text and not batch:
            typer.echo(f"Report written to: {safe_text(output)}")
        # An input error wins over findings: a result with unread inputs is incomplete.
        if report.summary.invalid:
            raise typer.Exit(EXIT_USAGE)
        if tripped:
            raise typer.Exit(EXIT_FINDINGS)
        raise typer.Exit(EXIT_OK)


def _interactive() -> bool:
    from sentrail.cli.common import stderr_interactive

    return stderr_interactive()


def _close_judge(judge: OpenAIChatJudge) -> None:
    try:
        judge.close()
    except OSError as exc:
        typer.echo(f"warning: cannot write the judge cache: {safe_text(exc.strerror)}", err=True)


def _record(
    report: JsonReportWriter,
    outcome: Analysis,
    threshold: Severity | None,
    answer: JudgeAnswer | None = None,
) -> bool:
    """Record one outcome; True when it trips ``--fail-on``. The rules' findings alone
    decide that: a model's opinion is never on the enforcement path."""
    if outcome.result is None:
        report.add_error(outcome.path, outcome.error or "unknown error")
        return False
    report.add(outcome.path, outcome.result, answer)
    worst = outcome.result.worst
    return threshold is not None and worst is not None and worst.rank >= threshold.rank


def _print_batch_summary(report: JsonReportWriter, output: Path | None) -> None:
    s = report.summary
    typer.echo(f"Runs analysed: {s.runs}")  # each run counted once, by its worst finding
    typer.echo(f"  worst finding critical: {s.critical}")
    typer.echo(f"  worst finding warning:  {s.warnings}")
    typer.echo(f"  clean (info at most):   {s.clean}")
    typer.echo(f"Invalid inputs: {s.invalid}")
    if isinstance(report.judge, JudgeTally):
        j = report.judge
        typer.echo(
            f"Model opinions (not findings; {safe_text(j.model, limit=80)}): asked {j.asked}, "
            f"cached {j.cached}, over budget {j.over_budget}, errors {j.errors}"
        )
    if output is not None:
        typer.echo(f"Report written to: {safe_text(output)}")
