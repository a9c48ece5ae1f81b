"""``sentrail export``: findings and tool calls as OCSF, Splunk HEC, CEF or ECS (docs/siem.md)."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated

import typer

from sentrail.cli.common import EXIT_OK, EXIT_USAGE, fail
from sentrail.engine.config import EngineConfig
from sentrail.engine.engine import Engine
from sentrail.engine.fold import Fold, OutOfOrder
from sentrail.errors import InputError, SentrailError
from sentrail.model.decode import decode_run
from sentrail.model.finding import RunResult
from sentrail.model.trace import Run
from sentrail.report.escape import safe_text
from sentrail.runtime.sources import (
    STDIN,
    is_event_stream_name,
    iter_events,
    iter_trace_paths,
    looks_like_event_stream,
    read_document,
)
from sentrail.siem.formats import ExportFormat
from sentrail.siem.forward import BatchSink, Forwarder, StreamSink
from sentrail.siem.records import (
    FindingRecord,
    Record,
    parse_time_ms,
    records_from_report,
    records_from_run,
)

_REPORT_START = re.compile(rb'^\s*\{\s*"format"\s*:\s*"sentrail\.report/1"')
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class What(enum.StrEnum):
    all = "all"
    findings = "findings"
    tool_calls = "tool-calls"


def parse_since(text: str, now: float) -> int:
    """Milliseconds since the epoch from an ISO 8601 time or a duration back from ``now``."""
    m = _DURATION.match(text.strip().lower())
    if m:
        return int((now - int(m.group(1)) * _UNIT[m.group(2)]) * 1000)
    ms = parse_time_ms(text)
    if ms is None:
        raise ValueError(
            f"--since: {text!r} is not an ISO 8601 time or a duration (30m, 24h, 7d, 2w)"
        )
    return ms


def export(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Trace files, directories, NDJSON streams, - for stdin, "
            "or JSON reports from `trace analyze --output`"
        ),
    ],
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="Output format")],
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only events at or after: ISO 8601 time, or 30m, 24h, 7d"),
    ] = None,
    what: Annotated[What, typer.Option("--what", help="Which records")] = What.all,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout")
    ] = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", "-p", help="Policy bundle YAML")
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option("--baseline", "-b", help="Baselines from `baseline learn`")
    ] = None,
    hec_url: Annotated[
        str | None,
        typer.Option("--hec-url", help="Send to this Splunk HEC endpoint (splunk-hec format)"),
    ] = None,
    hec_token_env: Annotated[
        str, typer.Option("--hec-token-env", help="Environment variable holding the HEC token")
    ] = "SENTRAIL_HEC_TOKEN",  # noqa: S107 - the variable's name, not a token
    host: Annotated[str | None, typer.Option("--host", help="HEC host field")] = None,
    index: Annotated[str | None, typer.Option("--index", help="HEC index field")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Records a batch")] = 500,
) -> None:
    """Export findings and tool calls (with their policy verdict) for a SIEM.

    Exit 0 ok, 2 usage or input error (bad files are reported and the rest exported)."""
    now = time.time()
    try:
        since_ms = parse_since(since, now) if since is not None else None
    except ValueError as exc:
        fail(str(exc))
    config = EngineConfig(
        policy_path=str(policy) if policy else None,
        baseline_path=str(baseline) if baseline else None,
        today=dt.date.today(),
    )
    try:
        engine = config.build()
    except SentrailError as exc:
        fail(str(exc))
    sink, out = _open_sink(fmt, output, hec_url, hec_token_env)
    forwarder = Forwarder(fmt, sink, batch_size=batch_size, host=host, index=index)
    errors: list[str] = []
    try:
        for arg in paths:
            for record in _records(arg, engine, now, since_ms is not None, errors):
                if _wanted(record, what, since_ms):
                    forwarder.send(record)
        forwarder.close()
    except SentrailError as exc:  # a delivery that gave up
        fail(f"export stopped after {forwarder.sent} records: {exc}")
    except OSError as exc:
        fail(f"cannot write: {exc.strerror or exc}")
    finally:
        if out is not None:
            out.close()
    for err in errors:
        typer.echo(f"invalid: {safe_text(err, limit=2000)}", err=True)
    if output is not None or hec_url is not None:
        typer.echo(f"Exported {forwarder.sent} records", err=True)
    raise typer.Exit(EXIT_USAGE if errors else EXIT_OK)


def _open_sink(
    fmt: ExportFormat, output: Path | None, hec_url: str | None, token_env: str
) -> tuple[BatchSink, IO[bytes] | None]:
    if hec_url is not None:
        if fmt is not ExportFormat.splunk_hec:
            fail("--hec-url needs --format splunk-hec")
        if output is not None:
            fail("give --output or --hec-url, not both")
        if not hec_url.startswith(("http://", "https://")):
            fail("--hec-url must start with http:// or https://")
        token = os.environ.get(token_env, "")
        if not token:
            fail(f"the HEC token variable {token_env} is not set")
        try:
            from sentrail.siem.forward import HecSink

            return HecSink(hec_url, token), None
        except ImportError:
            fail("--hec-url needs httpx: pip install 'sentrail[alerts]'")
    if output is not None:
        try:
            out = output.open("wb")
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror}")
        return StreamSink(out), out
    return StreamSink(sys.stdout.buffer), None


def _wanted(record: Record, what: What, since_ms: int | None) -> bool:
    if since_ms is not None and record.time_ms < since_ms:
        return False
    if what is What.findings:
        return isinstance(record, FindingRecord)
    if what is What.tool_calls:
        return not isinstance(record, FindingRecord)
    return True


def _is_report(path: str) -> bool:
    if path == STDIN or not os.path.isfile(path) or not path.endswith(".json"):
        return False
    try:
        with open(path, "rb") as fh:
            return _REPORT_START.match(fh.read(256)) is not None
    except OSError:
        return False


def _records(
    arg: str, engine: Engine, now: float, since: bool, errors: list[str]
) -> Iterator[Record]:
    if _is_report(arg):
        if since:
            fail(f"{arg}: a JSON report keeps no event times; export the traces for --since")
        try:
            data = Path(arg).read_bytes()
            mtime_ms = int(os.path.getmtime(arg) * 1000)
            yield from records_from_report(data, time_ms=mtime_ms)
        except (OSError, ValueError) as exc:  # msgspec errors are ValueErrors
            errors.append(f"{arg}: not a readable sentrail report: {exc}")
        return
    try:
        trace_paths = list(iter_trace_paths(arg))
    except SentrailError as exc:
        fail(str(exc))
    for path in trace_paths:
        try:
            data = read_document(path)
        except SentrailError as exc:
            errors.append(f"{path}: {exc.message}")
            continue
        stream = is_event_stream_name(path) or looks_like_event_stream(data)
        trace_hash = None if stream else hashlib.sha256(data).hexdigest()
        for item in _runs(engine, data, path, stream):
            if isinstance(item, InputError):
                errors.append(str(item))
                continue
            run, result = item
            yield from records_from_run(
                run, result, fallback_ms=int(now * 1000), trace_hash=trace_hash
            )


def _runs(
    engine: Engine, data: bytes, where: str, stream: bool
) -> Iterator[tuple[Run, RunResult] | InputError]:
    """Each run of a trace or an event stream with its judgement (the one fold)."""
    if not stream:
        try:
            run = decode_run(data)
        except SentrailError as exc:
            yield InputError(exc.message, f"{where}: {exc.location}" if exc.location else where)
            return
        yield run, engine.analyze(run)
        return
    fold = Fold(engine)
    runs: dict[str, Run] = {}
    for item in iter_events(data, where):
        if isinstance(item, InputError):
            yield item
            continue
        try:
            step = fold.feed(item)
        except OutOfOrder as exc:
            yield exc.at(where)
            continue
        if step.kind == "started":
            runs[item.run_id] = fold.runs[item.run_id].run
        if step.result is not None:
            yield runs.pop(item.run_id), step.result
    for step in fold.close_all():
        assert step.result is not None
        yield runs.pop(step.run_id), step.result
