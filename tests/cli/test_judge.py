"""The optional semantic judge (issue 13, item 9): asked only about ambiguous runs, through a
fake OpenAI-compatible server on loopback; its answer is evidence, never a finding."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentrail.engine.engine import Engine
from sentrail.model.decode import decode_run
from sentrail.model.finding import Category, Finding, RunResult, Severity, Verdict
from sentrail.model.judgement import JudgeAnswer, JudgeVerdict, is_ambiguous, judged_verdict
from sentrail.runtime.batch import analyze_bytes
from sentrail.runtime.judge import OpenAIChatJudge, parse_reply, question_for
from tests.cli.conftest import TRACES, TRIAGE, Cli

AMBIGUOUS = {"retry-outage.json", "telemetry-gaps.json", "triage-restart.json"}
KEY = "sk-test-0123456789abcdefSECRET"

Reply = Callable[[dict[str, Any]], tuple[int, bytes]]


def chat(verdict: str = "suspicious", rationale: str = "the agent retried a lot") -> Reply:
    content = json.dumps({"verdict": verdict, "rationale": rationale})
    body = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})
    return lambda _req: (200, body.encode())


class FakeModel:
    """An OpenAI-compatible ``/v1/chat/completions`` on 127.0.0.1 with a canned reply."""

    def __init__(self) -> None:
        self.reply: Reply = chat()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = json.loads(body)
                fake.requests.append(request)
                fake.headers.append(dict(self.headers))
                assert self.path == "/v1/chat/completions"
                status, out = fake.reply(request)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def model() -> Iterator[FakeModel]:
    fake = FakeModel()
    yield fake
    fake.close()


def _judge_args(model: FakeModel, *more: str) -> list[str]:
    return ["--judge", model.url, "--judge-model", "tiny-judge", *more]


def _report(cli: Cli, *args: str | Path) -> dict[str, Any]:
    r = cli("trace", "analyze", *args, "--format", "json", "--fail-on", "never")
    assert r.exit_code in (0, 2), r.output
    report: dict[str, Any] = json.loads(r.stdout)
    return report


def _name(run: dict[str, Any]) -> str:
    return Path(run["path"]).name


def test_asked_only_about_ambiguous_runs_and_apart_from_the_findings(
    cli: Cli, model: FakeModel
) -> None:
    plain = _report(cli, TRACES)
    judged = _report(cli, TRACES, *_judge_args(model))
    assert len(model.requests) == len(AMBIGUOUS)
    with_answer = {_name(r) for r in judged["runs"] if "judgement" in r}
    assert with_answer == AMBIGUOUS
    for run in judged["runs"]:
        assert (run["verdict"] in ("suspicious", "allowed")) or "judgement" not in run
        if "judgement" in run:
            j = run["judgement"]
            assert j["verdict"] == "suspicious" and j["model"] == "tiny-judge"
            assert len(j["prompt_sha256"]) == 64
            assert run["judged_verdict"] == "suspicious"
    # The rules' result is byte-identical with and without the judge.
    stripped = [
        {k: v for k, v in r.items() if k not in ("judgement", "judged_verdict")}
        for r in judged["runs"]
    ]
    dumps = [json.dumps(r, sort_keys=True) for r in stripped]
    assert dumps == [json.dumps(r, sort_keys=True) for r in plain["runs"]]
    assert "judge" not in plain and plain["summary"] == judged["summary"]
    assert judged["judge"] == {
        "model": "tiny-judge",
        "endpoint": model.url + "/chat/completions",
        "budget": 50,
        "asked": 3,
        "cached": 0,
        "over_budget": 0,
        "errors": 0,
    }
    # What was sent: the fixed system prompt, then the run's summary as JSON.
    sent = model.requests[0]
    assert sent["model"] == "tiny-judge" and sent["messages"][0]["role"] == "system"
    question = json.loads(sent["messages"][1]["content"])
    assert question["verdict"] in ("suspicious", "allowed") and question["findings"]


def test_the_same_run_twice_is_asked_once(cli: Cli, model: FakeModel, tmp_path: Path) -> None:
    d = tmp_path / "twice"
    d.mkdir()
    shutil.copy(TRIAGE, d / "a.json")
    shutil.copy(TRIAGE, d / "b.json")
    report = _report(cli, d, *_judge_args(model))
    assert len(model.requests) == 1
    a, b = report["runs"]
    assert "cached" not in a["judgement"] and b["judgement"]["cached"] is True
    assert a["judgement"]["prompt_sha256"] == b["judgement"]["prompt_sha256"]
    assert report["judge"]["cached"] == 1


def test_the_cache_file_answers_the_next_batch(cli: Cli, model: FakeModel, tmp_path: Path) -> None:
    cache = tmp_path / "judge-cache.json"
    _report(cli, TRACES, *_judge_args(model, "--judge-cache", str(cache)))
    assert len(model.requests) == 3 and cache.exists()
    again = _report(cli, TRACES, *_judge_args(model, "--judge-cache", str(cache)))
    assert len(model.requests) == 3
    assert again["judge"]["cached"] == 3 and again["judge"]["asked"] == 0


def test_the_budget_is_respected_and_counted(cli: Cli, model: FakeModel) -> None:
    report = _report(cli, TRACES, *_judge_args(model, "--judge-budget", "1"))
    assert len(model.requests) == 1
    assert report["judge"]["asked"] == 1 and report["judge"]["over_budget"] == 2
    answers = [r["judgement"] for r in report["runs"] if "judgement" in r]
    skipped = [a for a in answers if a.get("asked") is False]
    assert len(skipped) == 2
    assert all(a["verdict"] == "unsure" and "budget" in a["error"] for a in skipped)


@pytest.mark.parametrize(
    "reply",
    [
        lambda _r: (200, b"not json at all"),
        lambda _r: (200, json.dumps({"choices": []}).encode()),
        chat(verdict="definitely-bad"),
        lambda _r: (
            200,
            json.dumps({"choices": [{"message": {"content": "I think it is fine."}}]}).encode(),
        ),
        lambda _r: (500, b'{"error": "overloaded"}'),
        lambda _r: (401, b'{"error": "bad key"}'),
        lambda _r: (200, b" " * (2 << 20)),
    ],
    ids=["not-json", "no-choices", "unknown-verdict", "prose", "http-500", "http-401", "huge"],
)
def test_a_bad_answer_is_unsure_and_the_analysis_goes_on(
    cli: Cli, model: FakeModel, reply: Reply
) -> None:
    model.reply = reply
    report = _report(cli, TRACES, *_judge_args(model))
    answers = [r["judgement"] for r in report["runs"] if "judgement" in r]
    assert len(answers) == 3
    assert all(a["verdict"] == "unsure" and a["error"] for a in answers)
    assert report["judge"]["errors"] == 3
    assert all(r["judged_verdict"] == r["verdict"] for r in report["runs"] if "judgement" in r)


def test_an_unreachable_endpoint_is_unsure(cli: Cli, model: FakeModel) -> None:
    url = model.url
    model.close()
    r = cli("trace", "analyze", TRIAGE, "--judge", url, "--judge-model", "m", "--fail-on", "never")
    assert r.exit_code == 0, r.output
    assert (
        "Model opinion (not a finding" in r.stdout
        and "unsure (connection refused or host unreachable" in r.stdout
    )


def test_a_timeout_is_unsure(cli: Cli, model: FakeModel) -> None:
    def slow(_req: dict[str, Any]) -> tuple[int, bytes]:
        time.sleep(1.0)
        return chat()(_req)

    model.reply = slow
    r = cli("trace", "analyze", TRIAGE, *_judge_args(model, "--judge-timeout", "0.1"))
    assert "unsure (no reply within the timeout calling" in r.stdout, r.output


def test_a_hostile_rationale_is_escaped_in_text(cli: Cli, model: FakeModel) -> None:
    hostile = "\x1b[2J\x1b]0;owned\x07 <script>alert(1)</script>\nVerdict: allowed\u202e"
    model.reply = chat(verdict="unauthorized", rationale=hostile)
    r = cli("trace", "analyze", TRIAGE, *_judge_args(model), "--fail-on", "never")
    assert r.exit_code == 0, r.output
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout and "\u202e" not in r.stdout
    lines = r.stdout.splitlines()
    assert "Verdict: suspicious (risk score" in r.stdout  # the rules' verdict, unchanged
    assert sum(line.startswith("Verdict:") for line in lines) == 1
    opinion = [line for line in lines if line.startswith("Model opinion")]
    assert len(opinion) == 1 and "\\x1b[2J" in opinion[0] and "\\nVerdict" in opinion[0]
    assert "not a finding" in opinion[0] and "would raise the verdict to unauthorized" in opinion[0]
    # JSON: the same text, with no raw control or bidi character on the wire
    r = cli("trace", "analyze", TRIAGE, *_judge_args(model), "-f", "json", "--fail-on", "never")
    assert "\x1b" not in r.stdout and "\u202e" not in r.stdout
    assert json.loads(r.stdout)["runs"][0]["judgement"]["rationale"] == hostile


def test_a_models_opinion_never_trips_fail_on(cli: Cli, model: FakeModel) -> None:
    model.reply = chat(verdict="unauthorized")
    r = cli("trace", "analyze", TRIAGE, *_judge_args(model), "--fail-on", "critical")
    assert r.exit_code == 0, r.output


def test_the_api_key_is_sent_and_never_shown(
    cli: Cli, model: FakeModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTRAIL_JUDGE_API_KEY", KEY)
    out = tmp_path / "report.json"
    for reply in (chat(), lambda _r: (401, KEY.encode())):
        model.reply = reply
        for fmt in ("text", "json"):
            r = cli("trace", "analyze", TRACES, *_judge_args(model), "-o", out, "-f", fmt)
            assert KEY not in r.stdout + r.stderr and KEY not in out.read_text()
        r = cli("trace", "analyze", TRIAGE, *_judge_args(model), "--fail-on", "never")
        assert KEY not in r.stdout + r.stderr
    assert model.headers and all(h["Authorization"] == f"Bearer {KEY}" for h in model.headers)


def test_batch_text_counts_the_judge(cli: Cli, model: FakeModel) -> None:
    r = cli("trace", "analyze", TRACES, *_judge_args(model, "--judge-budget", "2"))
    assert (
        "Model opinions (not findings; tiny-judge): asked 2, cached 0, over budget 1, errors 0"
        in r.stdout
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--judge", "ftp://example.invalid/v1", "--judge-model", "m"],
        ["--judge", "not a url", "--judge-model", "m"],
        ["--judge", "http://127.0.0.1:9/v1"],
        ["--judge-model", "m"],
        ["--judge", "http://127.0.0.1:9/v1", "--judge-model", "m", "--judge-budget", "-1"],
    ],
)
def test_bad_judge_options_exit_2(cli: Cli, args: list[str]) -> None:
    r = cli("trace", "analyze", TRIAGE, *args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and r.output.strip()


def test_bad_judge_cache_exits_2(cli: Cli, tmp_path: Path) -> None:
    cache = tmp_path / "cache.json"
    cache.write_text("{ not json")
    r = cli(
        "trace", "analyze", TRIAGE, "--judge", "http://127.0.0.1:9/v1", "--judge-model", "m",
        "--judge-cache", cache,
    )  # fmt: skip
    assert r.exit_code == 2 and "not a judge cache file" in r.output


def test_with_jobs_the_questions_come_from_the_workers(cli: Cli, model: FakeModel) -> None:
    report = _report(cli, TRACES, *_judge_args(model), "--jobs", "2")
    assert len(model.requests) == 3
    assert {_name(r) for r in report["runs"] if "judgement" in r} == AMBIGUOUS


# -- units -----------------------------------------------------------------------------
def _finding(severity: Severity) -> Finding:
    return Finding("f", "r", Category.UNUSUAL_SEQUENCE, severity, 0, "m")


@pytest.mark.parametrize(
    ("verdict", "severities", "asked"),
    [
        (Verdict.ALLOWED, [], False),
        (Verdict.ALLOWED, [Severity.INFO], False),
        (Verdict.ALLOWED, [Severity.WARNING], True),
        (Verdict.SUSPICIOUS, [Severity.WARNING], True),
        (Verdict.UNAUTHORIZED, [Severity.CRITICAL], False),
    ],
)
def test_the_ambiguity_rule(verdict: Verdict, severities: list[Severity], asked: bool) -> None:
    result = RunResult("r", "a", verdict, 0, [_finding(s) for s in severities])
    assert is_ambiguous(result) is asked


@given(
    st.sampled_from(list(Verdict)),
    st.sampled_from(list(JudgeVerdict)),
    st.none() | st.just("timeout"),
)
def test_a_judge_never_lowers_a_verdict(v: Verdict, j: JudgeVerdict, error: str | None) -> None:
    answer = JudgeAnswer(j, "", "m", "0" * 64, error=error)
    rank = [Verdict.ALLOWED, Verdict.SUSPICIOUS, Verdict.UNAUTHORIZED]
    raised = judged_verdict(v, answer)
    assert rank.index(raised) >= rank.index(v)
    if j is JudgeVerdict.UNSURE or error is not None:
        assert raised is v


def test_the_question_is_masked_and_bounded() -> None:
    doc = json.loads(TRIAGE.read_text())
    secret = "AKIAIOSFODNN7EXAMPLE"
    doc["trigger"] = f"restart it, key {secret} " + "x" * 5000
    step = doc["steps"][0]
    step.setdefault("tool_call", {"tool": "t"})["parameters"] = {"password": "hunter2", "q": "y"}
    step["result"] = {"status": "success", "data": "z" * 10_000}
    doc["steps"] = doc["steps"] + [
        {**doc["steps"][-1], "step_index": 100 + i, "result": None} for i in range(60)
    ]
    run = decode_run(json.dumps(doc).encode())
    q = question_for(run, Engine().analyze(run))
    text = json.dumps([q.trigger, [s.parameters for s in q.steps]])
    assert secret not in text and "hunter2" not in text and "[masked]" in text
    assert q.trigger is not None and len(q.trigger) <= 1000
    assert len(q.steps) == 40 and q.steps_omitted == len(run.steps) - 40
    assert all(len(s.result or "") < 400 for s in q.steps)


def test_parse_reply_is_strict() -> None:
    ok = {"choices": [{"message": {"content": '{"verdict":"allowed","rationale":"fine"}'}}]}
    assert parse_reply(json.dumps(ok).encode()) == (JudgeVerdict.ALLOWED, "fine")
    extra = {"choices": [{"message": {"content": '{"verdict":"allowed","rationale":"","x":1}'}}]}
    with pytest.raises(ValueError, match="not the JSON asked for"):
        parse_reply(json.dumps(extra).encode())


def test_the_adapter_never_raises(model: FakeModel) -> None:
    model.reply = lambda _r: (200, b"\xff\xfe")
    judge = OpenAIChatJudge(model.url, "m", max_calls=5)
    run = decode_run(TRIAGE.read_bytes())
    answer = judge.ask(question_for(run, Engine().analyze(run)))
    assert answer.verdict is JudgeVerdict.UNSURE and answer.error
    judge.close()


def test_a_stream_and_a_document_ask_the_same_question() -> None:
    doc = json.loads(TRIAGE.read_text())
    steps = doc.pop("steps")
    lines = [{"type": "run_started", **doc}]
    lines += [{"type": "step", "run_id": doc["run_id"], "step": s} for s in steps]
    stream = "\n".join(json.dumps(x) for x in lines).encode()  # left open: closed at the end
    engine = Engine()
    [from_doc] = analyze_bytes(engine, "t.json", TRIAGE.read_bytes(), questions=True)
    [from_stream] = analyze_bytes(engine, "t.ndjson", stream, questions=True)
    assert from_doc.question is not None and from_doc.question == from_stream.question
    [unasked] = analyze_bytes(engine, "t.json", TRIAGE.read_bytes())
    assert unasked.question is None


def test_a_run_the_judge_is_not_asked_about_says_so(cli: Cli, model: FakeModel) -> None:
    """--judge on one unambiguous run prints why no opinion follows (no silent nothing)."""
    r = cli("trace", "analyze", TRACES / "prod-delete.json", *_judge_args(model))
    assert (
        "Model opinion: not asked (the rules already judged it unauthorized; the judge is "
        "asked only about suspicious runs and allowed ones with a warning)" in r.stdout
    )
    r = cli("trace", "analyze", TRACES / "clean-support-lookup.json", *_judge_args(model))
    assert "Model opinion: not asked (no warning or critical finding;" in r.stdout
    assert model.requests == []
    r = cli("trace", "analyze", TRACES / "clean-support-lookup.json")
    assert "Model opinion" not in r.stdout


def test_a_reply_trickled_byte_by_byte_is_cut_at_the_timeout(cli: Cli) -> None:
    # Each byte comes well within the per-phase timeout, so only a deadline on the whole
    # call stops a server that keeps a batch waiting (1 MiB at that pace: for ever).
    body = chat("allowed", "fine")({})[1]

    class Trickle(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                for i in range(len(body)):
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass  # the client gave up

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        args = ["--judge", url, "--judge-model", "m", "--judge-timeout", "0.5"]
        r = cli("trace", "analyze", TRIAGE, *args)
        assert "unsure (no complete reply within 0.5 s" in r.stdout, r.output
    finally:
        server.shutdown()
        server.server_close()
