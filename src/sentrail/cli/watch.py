"""``sentrail trace watch`` (live analysis of step events) and ``sentrail emit`` (replay
traces as live events, to demo and test the watch end to end).

Until both are registered in :mod:`sentrail.cli.app`, ``python -m sentrail.cli.watch
watch|emit ...`` runs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from sentrail.cli.common import EXIT_OK, EXIT_USAGE, colour_for, fail, stderr_interactive
from sentrail.engine.config import EngineConfig
from sentrail.errors import SentrailError
from sentrail.model.finding import Finding, Severity
from sentrail.model.timestamps import parse_time
from sentrail.model.trace import Step
from sentrail.report.escape import safe_text
from sentrail.report.text import summary_line
from sentrail.runtime.emit import EventReader, emit_until_signal, sink_for
from sentrail.runtime.watch import WatchedRun, Watcher, save_partial
from sentrail.runtime.watch_loop import StopFlag, handle_signals, pump
from sentrail.runtime.watch_records import RunClosed, RunOpened, StepSeen, WatchProblem, WatchRecord
from sentrail.runtime.watch_sources import open_source

_LABEL = {Severity.CRITICAL: "CRIT", Severity.WARNING: "WARN", Severity.INFO: "INFO"}
_COLOUR = {"CRIT": "31;1", "WARN": "33", "INFO": "36", "ESCALATED": "35;1", "OK": "32"}


class WatchFormat(enum.StrEnum):
    compact = "compact"
    json = "json"


class MinSeverity(enum.StrEnum):
    info = "info"
    warning = "warning"
    critical = "critical"


# -- output ------------------------------------------------------------------------------
def _say(stream: TextIO, text: str) -> None:
    stream.write(text + "\n")
    stream.flush()


def _clock(timestamp: str | None) -> str:
    t = parse_time(timestamp)
    return t.astimezone(dt.UTC).strftime("%H:%M:%S") if t is not None else "--:--:--"


def _status(step: Step) -> str:
    if step.result is None:
        return "-"
    status = (step.result.status or "?").strip()
    return "OK" if status.lower() == "success" else safe_text(status.upper(), limit=20)


class CompactView:
    """One line per step, findings under it as they fire (DESIGN.md's compact format)."""

    def __init__(self, out: TextIO, err: TextIO, colour: bool) -> None:
        self.out, self.err, self.colour = out, err, colour
        self.current: str | None = None

    def _paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour else text

    def _badge(self, label: str) -> str:
        return self._paint(f"[{label}]", _COLOUR[label])

    def _finding(self, f: Finding) -> str:
        where = f"Step {f.step_index}" if f.step_index is not None else "Run"
        return (
            f"  {self._badge(_LABEL[f.severity])} {where}: {safe_text(f.message)} "
            f"({safe_text(f.rule, limit=120)})"
        )

    def _switch(self, run_id: str, agent_id: str) -> None:
        if self.current != run_id:
            self.current = run_id
            _say(self.out, f"== {safe_text(run_id, limit=200)} ({safe_text(agent_id, limit=200)})")

    def __call__(self, rec: WatchRecord) -> None:
        if isinstance(rec, WatchProblem):
            prefix = "note" if rec.kind == "orphan" else "invalid"
            _say(self.err, f"{prefix}: {safe_text(rec.where)}: {safe_text(rec.message)}")
        elif isinstance(rec, RunOpened):
            self.current = rec.run_id
            _say(
                self.out,
                f"Watching agent: {safe_text(rec.agent_id, limit=200)} "
                f"({safe_text(rec.run_id, limit=200)})",
            )
        elif isinstance(rec, StepSeen):
            self._switch(rec.run_id, rec.agent_id)
            self._step(rec)
        else:
            self._switch(rec.run_id, rec.agent_id)
            for f in rec.findings:
                _say(self.out, self._finding(f))
            r = rec.result
            how = "Run completed" if rec.completed else "Run ended without run_completed"
            _say(
                self.out,
                f"{how}: {safe_text(r.run_id, limit=200)} — verdict {r.verdict.value} "
                f"(risk {r.risk_score}/100). {summary_line(r)}",
            )

    def _step(self, rec: StepSeen) -> None:
        s = rec.step
        action = safe_text(s.action or "-", limit=40)
        tool = safe_text(s.tool_call.tool if s.tool_call else "-", limit=60)
        status = _status(s)
        if status == "OK":
            status = self._paint(status, _COLOUR["OK"])
        perms = [safe_text(p, limit=80) for p in s.permissions_used[:8]]
        if len(s.permissions_used) > 8:
            perms.append(f"+{len(s.permissions_used) - 8}")
        line = (
            f"{_clock(s.timestamp)} [step {s.step_index}] {action:<16} {tool:<15} {status} "
            f"{','.join(perms) or '-'}"
        )
        if rec.escalated:
            line += " " + self._badge("ESCALATED")
        for sev in sorted({f.severity for f in rec.findings}, key=lambda v: -v.rank):
            line += " " + self._badge(_LABEL[sev])
        _say(self.out, line)
        for f in rec.findings:
            _say(self.out, self._finding(f))


def _json_line(obj: dict[str, Any]) -> str:
    # ASCII only: every control, bidi or other non-ASCII character is a \u escape.
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":"), default=str)


def finding_object(run_id: str, agent_id: str, f: Finding) -> dict[str, Any]:
    return {
        "type": "finding",
        "run_id": run_id,
        "agent_id": agent_id,
        "step_index": f.step_index,
        "id": f.id,
        "rule": f.rule,
        "category": f.category.value,
        "severity": f.severity.value,
        "message": f.message,
        "evidence": f.evidence,
        "tags": f.tags,
    }


class JsonView:
    """One JSON object per line: ``run``, ``step`` and ``finding`` (a ``type`` field each)."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out, self.err = out, err

    def __call__(self, rec: WatchRecord) -> None:
        if isinstance(rec, WatchProblem):
            prefix = "note" if rec.kind == "orphan" else "invalid"
            _say(self.err, f"{prefix}: {safe_text(rec.where)}: {safe_text(rec.message)}")
            return
        if isinstance(rec, RunOpened):
            obj: dict[str, Any] = {"type": "run", "phase": "started", "run_id": rec.run_id}
            obj |= {"agent_id": rec.agent_id, "trigger": rec.header.trigger}
            _say(self.out, _json_line(obj))
            return
        if isinstance(rec, StepSeen):
            s = rec.step
            step = {
                "type": "step",
                "run_id": rec.run_id,
                "agent_id": rec.agent_id,
                "step_index": s.step_index,
                "timestamp": s.timestamp,
                "action": s.action,
                "tool": s.tool_call.tool if s.tool_call else None,
                "status": s.result.status if s.result else None,
                "permissions": s.permissions_used,
                "escalated": rec.escalated,
                "findings": [f.id for f in rec.findings],
            }
            _say(self.out, _json_line(step))
        for f in rec.findings:
            _say(self.out, _json_line(finding_object(rec.run_id, rec.agent_id, f)))
        if isinstance(rec, RunClosed):
            r = rec.result
            counts = {s.value: sum(f.severity is s for f in r.findings) for s in Severity}
            end: dict[str, Any] = {"type": "run"}
            end["phase"] = "completed" if rec.completed else "ended"
            end |= {"run_id": r.run_id, "agent_id": r.agent_id, "status": r.status}
            end |= {"verdict": r.verdict.value, "risk_score": r.risk_score, "steps": r.steps}
            _say(self.out, _json_line(end | {"findings": counts}))


def _quiet_client_logs() -> None:
    """nats-py logs each failed reconnect with a traceback; errors that matter reach us as
    exceptions, so its log records are dropped instead of spraying the watch output."""
    logging.getLogger("nats").addHandler(logging.NullHandler())
    logging.getLogger("nats").propagate = False


def traces_dir() -> Path:
    try:
        from sentrail.evidence.keys import default_home
    except ImportError:  # the evidence extra is not installed: the same rule
        env = os.environ.get("SENTRAIL_HOME")
        return (Path(env) if env else Path.home() / ".sentrail") / "traces"
    return default_home() / "traces"


# -- commands ------------------------------------------------------------------------------
def watch(
    agent: Annotated[str | None, typer.Option("--agent", help="Glob on agent_id")] = None,
    run: Annotated[str | None, typer.Option("--run", help="Only this run id")] = None,
    fmt: Annotated[
        WatchFormat, typer.Option("--format", "-f", help="compact lines or JSON objects")
    ] = WatchFormat.compact,
    source: Annotated[
        str, typer.Option("--source", help="stdin | file:PATH | nats://HOST:PORT | http(s)://URL")
    ] = "stdin",
    follow: Annotated[bool, typer.Option("--follow", help="file: keep reading")] = False,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="nats: the whole stream, not only new events")
    ] = False,
    min_severity: Annotated[
        MinSeverity, typer.Option("--min-severity", help="Findings shown from this severity")
    ] = MinSeverity.info,
    tenant: Annotated[str, typer.Option("--tenant", help="nats: tenant stream")] = "default",
    policy: Annotated[Path | None, typer.Option("--policy", "-p", help="Policy YAML")] = None,
    baseline: Annotated[Path | None, typer.Option("--baseline", "-b", help="Baselines")] = None,
    key: Annotated[
        str | None, typer.Option("--key", envvar="SENTRAIL_API_KEY", help="http: Bearer key")
    ] = None,
    max_runs: Annotated[
        int | None, typer.Option("--max-runs", min=1, help="Stop after N completed runs")
    ] = None,
) -> None:
    """Analyse live step events as they arrive. Ctrl-C saves unfinished runs as partial
    traces. Exit 0 at the end of input (2 if some input was invalid), 130 on SIGINT,
    143 on SIGTERM."""
    _quiet_client_logs()
    if follow and not source.startswith("file:"):
        fail("--follow needs --source file:PATH")
    if from_start and not source.startswith(("nats://", "tls://")):
        fail("--from-start needs a nats:// source")
    try:
        engine = EngineConfig(
            policy_path=str(policy) if policy else None,
            baseline_path=str(baseline) if baseline else None,
            today=dt.date.today(),
        ).build()
        src = open_source(source, follow=follow, tenant=tenant, from_start=from_start, key=key)
    except SentrailError as exc:
        fail(str(exc))
    out, err = sys.stdout, sys.stderr
    json_out = fmt is WatchFormat.json
    view = JsonView(out, err) if json_out else CompactView(out, err, colour_for(out))
    watcher = Watcher(
        engine, view, agent=agent, run_id=run, min_severity=Severity(min_severity.value)
    )
    flag = StopFlag()
    if stderr_interactive():
        _say(err, f"Watching {safe_text(src.name)} (Ctrl-C to stop)...")
    error: str | None = None
    with handle_signals(flag):
        try:
            reason = pump(src, watcher, flag, max_runs)
        except SentrailError as exc:
            reason, error = "error", str(exc)
        except BrokenPipeError:
            reason = "closed"
        if reason == "eof":
            watcher.end_of_input(src.name)
            left = watcher.close_open_runs()
        else:
            left = list(watcher.runs.values())
        code = _finish(left, reason, error, flag, json_out, watcher)
    raise typer.Exit(code)


def _finish(
    left: list[WatchedRun],
    reason: str,
    error: str | None,
    flag: StopFlag,
    json_out: bool,
    watcher: Watcher,
) -> int:
    if reason == "closed":  # stdout went away (e.g. `| head`): say nothing more on it
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    out = sys.stderr if json_out or reason == "closed" else sys.stdout
    code = EXIT_OK
    if error is not None:
        _say(sys.stderr, f"error: {safe_text(error, limit=2000)}")
        code = EXIT_USAGE
    lead = {
        "eof": "End of input.",
        "max_runs": f"Stopped after {watcher.stats.runs_completed} runs.",
    }.get(reason, "Disconnected.")
    now = dt.datetime.now(dt.UTC)
    saved = 0
    for live in left:
        try:
            path = save_partial(live, traces_dir(), now)
        except (OSError, SentrailError) as exc:
            _say(sys.stderr, f"error: cannot save run {safe_text(live.run_id)}: {safe_text(exc)}")
            code = EXIT_USAGE
            continue
        saved += 1
        _say(out, f"{lead} Partial trace saved to: {safe_text(path, limit=2000)}")
        if json_out and reason != "closed":
            obj = {"type": "partial_trace", "run_id": live.run_id, "path": str(path)}
            _say(sys.stdout, _json_line(obj))
    if not saved and reason == "signal":
        _say(out, lead)
    if reason == "signal" and flag.signum is not None and code == EXIT_OK:
        return 128 + flag.signum
    if code == EXIT_OK and watcher.stats.invalid and reason in ("eof", "max_runs"):
        return EXIT_USAGE
    return code


def emit_command(
    path: Annotated[str, typer.Argument(help="Trace file, directory, NDJSON file, or -")],
    rate: Annotated[
        float, typer.Option("--rate", min=0.0, help="Events per second (0: as fast as possible)")
    ] = 0.0,
    to: Annotated[
        str, typer.Option("--to", help="stdout | nats://HOST:PORT | http(s)://SERVICE")
    ] = "stdout",
    key: Annotated[
        str | None, typer.Option("--key", envvar="SENTRAIL_API_KEY", help="http: API key")
    ] = None,
    app_id: Annotated[str | None, typer.Option("--app", help="http: app id")] = None,
    tenant: Annotated[str, typer.Option("--tenant", help="nats: tenant stream")] = "default",
    loop: Annotated[bool, typer.Option("--loop", help="Replay forever (runs renamed)")] = False,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Events per send")] = 100,
) -> None:
    """Publish traces as live events (run_started, steps, run_completed) at a chosen rate."""
    _quiet_client_logs()
    if path != "-" and not os.path.exists(path):
        fail(f"no such file or directory: {path}")
    reader = EventReader(path, lambda m: _say(sys.stderr, f"invalid: {safe_text(m)}"))
    try:
        name, open_sink = sink_for(to, key=key, app=app_id, tenant=tenant)
        stats = asyncio.run(
            emit_until_signal(reader, open_sink, rate=rate, repeat=loop, batch=batch)
        )
    except SentrailError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        _say(sys.stderr, "Interrupted.")
        raise typer.Exit(130) from None
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(EXIT_OK) from None
    if stats.stopped_by is not None:
        _say(sys.stderr, f"Interrupted after {stats.events} events.")
        raise typer.Exit(128 + stats.stopped_by)
    if to not in ("stdout", "-"):
        dup = f" ({stats.duplicates} duplicates)" if stats.duplicates else ""
        _say(sys.stderr, f"Emitted {stats.events} events{dup} to {safe_text(name)}")
    raise typer.Exit(EXIT_USAGE if reader.invalid else EXIT_OK)


standalone = typer.Typer(
    name="sentrail-watch",
    help="trace watch and emit (until they are registered in sentrail.cli.app).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
standalone.command("watch")(watch)
standalone.command("emit")(emit_command)

if __name__ == "__main__":
    standalone()
