"""The watcher: framing of lines into documents, the same findings as `trace analyze`,
and partial traces."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sentrail.cli.app import app as sentrail_app
from sentrail.engine.engine import Engine
from sentrail.errors import InputError
from sentrail.model.decode import decode_run
from sentrail.model.events import events_of
from sentrail.policy.compiled import Policy
from sentrail.policy.load import load_policy
from sentrail.runtime.framing import DocumentFramer, bounded_lines
from sentrail.runtime.watch import Watcher, partial_name, save_partial
from sentrail.runtime.watch_records import RunClosed, StepSeen, WatchProblem, WatchRecord
from tests.strategies import traces
from tests.watch.conftest import EXAMPLES, TRACES, TRIAGE_EVENTS, invoke

EXAMPLE_TRACES = [p for p in sorted(TRACES.glob("*.json")) if p.name != "truncated.json"]


# -- framing -------------------------------------------------------------------------------
def frame(data: bytes, limit: int = 1 << 20) -> list[bytes | InputError]:
    framer = DocumentFramer(limit)
    out: list[bytes | InputError] = []
    for line in data.splitlines(keepends=True):
        done = framer.feed(line)
        if done is not None:
            out.append(done[1])
    end = framer.end()
    if end is not None:
        out.append(end[1])
    return out


nasty_text = st.text(alphabet=st.sampled_from('ab{}[]"\\\n\t/:,é\u202e'), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | nasty_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(nasty_text, inner, max_size=3),
    max_leaves=12,
)


@given(st.lists(st.tuples(st.dictionaries(nasty_text, json_values, max_size=4), st.booleans())))
@settings(max_examples=300, deadline=None)
def test_framer_returns_each_document_whether_compact_or_pretty(docs: Any) -> None:
    data = b"".join(
        json.dumps(d, indent=2 if pretty else None).encode() + b"\n" for d, pretty in docs
    )
    got = frame(data)
    assert [json.loads(g) for g in got if isinstance(g, bytes)] == [d for d, _ in docs]
    assert not [g for g in got if isinstance(g, InputError)]


def test_framer_errors_resynchronise_on_the_next_line() -> None:
    got = frame(b'hello\n{"a": 1}\n\n   \n{"b":\n "}"}\n{"c": [1,\n')
    assert isinstance(got[0], InputError) and "expected a JSON object" in got[0].message
    assert got[1] == b'{"a": 1}\n' and got[2] == b'{"b":\n "}"}\n'
    assert isinstance(got[3], InputError) and "truncated" in got[3].message
    # larger than the limit: an error, then the next line is read normally
    got = frame(b'{"big": "' + b"x" * 100 + b'"}\n{"ok": true}\n', limit=50)
    assert isinstance(got[0], InputError) and "larger than 50" in got[0].message
    assert got[1] == b'{"ok": true}\n'
    # a byte-order mark on the first line is skipped
    assert frame(b'\xef\xbb\xbf{"a": 1}\n') == [b'{"a": 1}\n']


def test_bounded_lines_cut_a_huge_line_and_skip_its_rest() -> None:
    import io

    data = io.BytesIO(b"short\n" + b"y" * 5000 + b"\nnext\nlast-no-newline")
    lines = list(bounded_lines(data.readline, 100))
    assert lines[0] == b"short\n" and len(lines[1]) == 101 and not lines[1].endswith(b"\n")
    assert lines[2:] == [b"next\n", b"last-no-newline"]


# -- the same findings as trace analyze -------------------------------------------------------
def watched_ids(watcher_engine: Engine, data: bytes, lines: bool) -> tuple[set[str], list[Any]]:
    seen: list[WatchRecord] = []
    w = Watcher(watcher_engine, seen.append)
    if lines:
        for line in data.splitlines(keepends=True):
            w.feed_line(line, "t")
        w.end_of_input("t")
    else:
        w.feed_document(data, "t")
    assert not [r for r in seen if isinstance(r, WatchProblem)], seen
    ids: set[str] = set()
    for r in seen:
        if isinstance(r, StepSeen | RunClosed):
            ids |= {f.id for f in r.findings}
    return ids, [r for r in seen if isinstance(r, RunClosed)]


@pytest.mark.parametrize("path", EXAMPLE_TRACES, ids=lambda p: p.name)
@pytest.mark.parametrize("with_policy", [False, True])
def test_every_example_watched_gives_the_findings_of_analyze(path: Path, with_policy: bool) -> None:
    policy = Policy(load_policy(str(EXAMPLES / "policy.yaml"))) if with_policy else Policy()
    engine = Engine(policy)
    data = path.read_bytes()
    run = decode_run(data)
    expected = {f.id for f in engine.analyze(run).findings}
    events = b"".join(msgspec.json.encode(e) + b"\n" for e in events_of(run))
    for doc, as_lines in ((data, True), (data, False), (events, True)):
        ids, closed = watched_ids(engine, doc, as_lines)
        assert ids == expected
        assert len(closed) == 1 and closed[0].completed


@given(traces())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_traces_watched_give_the_findings_of_analyze(doc: dict[str, Any]) -> None:
    data = json.dumps(doc).encode()
    engine = Engine()
    expected = {f.id for f in engine.analyze(decode_run(data)).findings}
    assert watched_ids(engine, data, True)[0] == expected


# -- partial traces --------------------------------------------------------------------------
def test_end_of_input_saves_open_runs_and_they_analyse_to_what_was_shown(
    _home: Path,
) -> None:
    head = b"".join(TRIAGE_EVENTS.read_bytes().splitlines(keepends=True)[:5])
    r = invoke("watch", "--format", "json", input=head)
    assert r.exit_code == 0, r.output
    objs = [json.loads(x) for x in r.stdout.splitlines()]
    saved = [o for o in objs if o["type"] == "partial_trace"]
    assert len(saved) == 1 and "End of input. Partial trace saved to:" in r.stderr
    path = Path(saved[0]["path"])
    assert path.parent == _home / "traces"
    doc = json.loads(path.read_bytes())
    assert doc["status"] == "partial" and len(doc["steps"]) == 4
    assert "completed_at" not in doc and "type" not in doc and "event_id" not in doc
    ended = next(o for o in objs if o.get("phase") == "ended")
    shown = {o["id"] for o in objs if o["type"] == "finding"}
    rules = {o["rule"] for o in objs if o["type"] == "finding"}
    assert "missing_telemetry.run_incomplete" in rules
    result = Engine().analyze(decode_run(path.read_bytes()))
    assert {f.id for f in result.findings} == shown
    assert result.verdict.value == ended["verdict"]
    a = CliRunner().invoke(sentrail_app, ["trace", "analyze", str(path)])
    assert a.exit_code in (0, 1), a.output
    # a run that completed is never saved
    full = invoke("watch", input=TRIAGE_EVENTS.read_bytes())
    assert "Partial trace" not in full.output
    assert len(list((_home / "traces").iterdir())) == 1


def test_partial_keeps_unknown_fields_and_the_steps_as_sent(tmp_path: Path) -> None:
    started = {"type": "run_started", "run_id": "r1", "agent_id": "a", "x-vendor": {"k": 1}}
    step = {
        "type": "step",
        "run_id": "r1",
        "step": {"step_index": 0, "action": "look", "span_id": "abc", "model_latency_ms": 12},
        "event_id": "e1",
    }
    seen: list[WatchRecord] = []
    w = Watcher(Engine(), seen.append)
    for obj in (started, step):
        w.feed_line(json.dumps(obj).encode() + b"\n", "t")
    (live,) = w.runs.values()
    when = dt.datetime(2026, 3, 5, 14, 22, 1, tzinfo=dt.UTC)
    path = save_partial(live, tmp_path / "traces", when)
    assert path.name == "r1-partial-20260305T142201Z.json"
    doc = json.loads(path.read_bytes())
    assert doc["x-vendor"] == {"k": 1} and doc["status"] == "partial"
    assert doc["steps"] == [step["step"]]


def test_partial_file_names_are_safe_private_and_never_overwrite(tmp_path: Path) -> None:
    hostile = "../../etc/passwd\x1b[31m\u202e/" + "z" * 300
    w = Watcher(Engine(), lambda r: None)
    w.feed_line(
        json.dumps({"type": "run_started", "run_id": hostile, "agent_id": "a"}).encode(), "t"
    )
    (live,) = w.runs.values()
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    target = tmp_path / "home" / "traces"
    first = save_partial(live, target, when)
    second = save_partial(live, target, when)
    assert first.parent == target and second.parent == target
    assert first != second and second.name.endswith("-2.json")
    assert "/" not in first.name and not first.name.startswith(".")
    assert first.name == partial_name(hostile, when) + ".json"
    assert re.fullmatch(r"[A-Za-z0-9._-]+", first.name)
    for d in (tmp_path / "home", target):
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(first).st_mode) == 0o600
    assert [p.name for p in target.iterdir() if p.name.startswith(".")] == []
    assert decode_run(first.read_bytes()).run_id == hostile


def test_an_internal_error_on_one_event_is_reported_and_the_watch_goes_on() -> None:
    from sentrail.detect.base import Detector, StepFacts
    from sentrail.detect.registry import DETECTORS

    class Flaky(Detector):
        name = "flaky"

        def on_step(self, facts: StepFacts) -> None:
            if facts.index == 1:
                raise KeyError("detector bug")

    seen: list[WatchRecord] = []
    w = Watcher(Engine(detectors=[*DETECTORS.values(), Flaky]), seen.append)
    for line in TRIAGE_EVENTS.read_bytes().splitlines(keepends=True):
        w.feed_line(line, "stdin")
    problems = [r for r in seen if isinstance(r, WatchProblem)]
    assert [p.where for p in problems] == ["stdin:line 3"]
    assert "internal error: KeyError" in problems[0].message
    assert [r.completed for r in seen if isinstance(r, RunClosed)] == [True]
