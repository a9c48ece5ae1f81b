"""One exit-code rule for every command (issue 10, item 13; README "Exit codes").

0 ok; 1 the check the command exists for failed; 2 usage or input error, which wins over
1. Every command of the app is in these tables, so a new command cannot be added without
saying how it fails: a usage error, and a bad input (a missing or invalid file, an
unusable store) where it has one; a failed check where it has one.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import typer.main

from sentrail.cli.app import app
from tests.cli.conftest import POLICY, TRACES, TRIAGE, Cli

Args = Callable[[Path], list[str]]
STORE = ["--database", "bogus://nowhere"]
WHO = ["--tenant", "t", "--by", "soc", "--reason", "r"]


def leaf_commands() -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        subs = getattr(command, "commands", None)
        if subs is None:
            found.append(path)
            return
        for name, sub in sorted(subs.items()):
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def _bad_trace(d: Path) -> Path:
    p = d / "bad.json"
    p.write_text('{"run_id": "r", "agent_id": "a", "steps": [')
    return p


def _bad_yaml(d: Path) -> Path:
    p = d / "bad.yaml"
    p.write_text("agents: [\n")
    return p


def _bad_json(d: Path) -> Path:
    p = d / "bad-config.json"
    p.write_text("{ not json")
    return p


# A bad input for each command that has one: a missing or invalid file, an unusable store.
BAD_INPUT: dict[tuple[str, ...], Args] = {
    ("apikey", "create"): lambda d: ["--tenant", "t", "--app", "a", *STORE],
    ("apikey", "list"): lambda d: STORE,
    ("apikey", "revoke"): lambda d: ["0123456789abcdef", *STORE],
    ("approvals", "approve"): lambda d: ["apr_x", "--tenant", "t", "--by", "b", *STORE],
    ("approvals", "deny"): lambda d: ["apr_x", "--tenant", "t", "--by", "b", *STORE],
    ("approvals", "list"): lambda d: STORE,
    ("baseline", "learn"): lambda d: [str(_bad_trace(d)), "--output", str(d / "b.json")],
    ("contain", "disable-tool"): lambda d: ["x.*", *WHO, *STORE],
    ("contain", "enable-tool"): lambda d: ["x.*", *WHO, *STORE],
    ("contain", "freeze-run"): lambda d: ["run-1", *WHO, *STORE],
    ("contain", "list"): lambda d: STORE,
    ("contain", "quarantine"): lambda d: ["bot", *WHO, *STORE],
    ("contain", "release"): lambda d: [
        "bot",
        *WHO,
        "--attestation",
        str(d / "missing.json"),
        "--policy-version",
        "v",
        "--canary",
        str(TRIAGE),
    ],
    ("contain", "revoke-grant"): lambda d: ["bot", "p:*", *WHO, *STORE],
    ("db", "upgrade"): lambda d: STORE,
    ("emit",): lambda d: [str(d / "missing.json")],
    ("evidence", "export"): lambda d: ["--run", "r", "--output", str(d / "x.zip"), *STORE],
    ("evidence", "key"): lambda d: [],  # this home has no signing key yet
    ("evidence", "verify"): lambda d: [str(d / "missing.zip")],
    ("export",): lambda d: [str(_bad_trace(d)), "--format", "ocsf"],
    ("findings", "list"): lambda d: ["--tenant", "t", *STORE],
    ("findings", "reopen"): lambda d: ["f-1", "--tenant", "t", "--by", "b", *STORE],
    ("findings", "resolve"): lambda d: ["f-1", "--tenant", "t", "--by", "b", *STORE],
    ("graph",): lambda d: ["--run", "r", "--tenant", "t", *STORE],
    ("hook", "install"): lambda d: ["--client", "codex", "--settings", str(_bad_json(d))],
    ("hook", "uninstall"): lambda d: ["--client", "codex", "--settings", str(_bad_json(d))],
    ("ingest",): lambda d: [str(_bad_trace(d))],
    ("log", "checkpoint"): lambda d: ["--tenant", "t", *STORE],
    ("log", "verify"): lambda d: STORE,
    ("mcp", "install"): lambda d: ["--client", "cursor", "--config", str(_bad_json(d))],
    ("mcp", "uninstall"): lambda d: ["--client", "cursor", "--config", str(_bad_json(d))],
    ("mcp-proxy",): lambda d: ["--policy", str(_bad_yaml(d)), "--", "true"],
    ("policy", "test"): lambda d: [str(_bad_yaml(d))],
    ("policy", "validate"): lambda d: [str(d / "missing.yaml")],
    ("redact",): lambda d: ["--run", "r", *WHO, *STORE],
    ("replay",): lambda d: ["--run", "r", "--tenant", "t", *STORE],
    ("retention", "apply"): lambda d: STORE,
    ("runs", "list"): lambda d: ["--tenant", "t", *STORE],
    ("runs", "show"): lambda d: ["r", "--tenant", "t", *STORE],
    ("retention", "set"): lambda d: ["--tenant", "t", "--days", "7", *STORE],
    ("serve",): lambda d: ["--policy", str(_bad_yaml(d))],  # refused before it binds
    ("trace", "analyze"): lambda d: [str(_bad_trace(d))],
    ("trace", "watch"): lambda d: ["--source", f"file:{d / 'missing.ndjson'}"],
    ("worker",): lambda d: [
        "--bus",
        "nats://127.0.0.1:4222",
        "--tenant",
        "t",
        "--policy",
        str(_bad_yaml(d)),
    ],
}
# Commands with no input to get wrong, or that answer every input by design (documented).
NO_BAD_INPUT = {
    ("hook", "default-policy"): "prints the built-in policy; reads nothing",
    ("hook", "claude-code"): "answers any payload, exit 0 (docs/hooks.md)",
    ("hook", "codex"): "answers any payload, exit 0 (docs/hooks.md)",
    ("hook", "cursor"): "answers any payload, exit 0 (docs/hooks.md)",
}


def test_every_command_is_in_the_tables() -> None:
    assert set(leaf_commands()) == set(BAD_INPUT) | set(NO_BAD_INPUT)


@pytest.mark.parametrize("command", leaf_commands(), ids=" ".join)
def test_a_usage_error_exits_2(cli: Cli, command: tuple[str, ...]) -> None:
    r = cli(*command, "--no-such-option")
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("command", sorted(BAD_INPUT), ids=" ".join)
def test_a_bad_input_exits_2_with_a_message(
    cli: Cli, tmp_path: Path, command: tuple[str, ...]
) -> None:
    r = cli(*command, *BAD_INPUT[command](tmp_path))
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and r.output.strip()


@pytest.mark.parametrize("client", ["claude-code", "codex", "cursor"])
def test_a_hook_answers_a_bad_payload_and_exits_0(cli: Cli, client: str) -> None:
    r = cli("hook", client, input=b"\xff not json")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip()  # the answer (fail closed) is on stdout


# -- a failed check: 1 -----------------------------------------------------------------
def test_a_finding_at_or_above_fail_on_exits_1(cli: Cli) -> None:
    assert cli("trace", "analyze", TRIAGE, "--fail-on", "warning").exit_code == 1
    assert cli("trace", "analyze", TRIAGE, "--fail-on", "critical").exit_code == 0


def _bundle_with_a_failing_example(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    shutil.copytree(TRACES, bundle / "traces")
    text = POLICY.read_text().replace(
        "must_not_fire: [traces/triage-restart.json]", "must_not_fire: [traces/prod-delete.json]"
    )
    assert text != POLICY.read_text()
    (bundle / "policy.yaml").write_text(text)
    return bundle / "policy.yaml"


def test_a_failing_rule_example_exits_1(cli: Cli, tmp_path: Path) -> None:
    r = cli("policy", "test", _bundle_with_a_failing_example(tmp_path))
    assert r.exit_code == 1, r.output
    assert "[FAIL]" in r.output


def test_a_tampered_log_exits_1_for_log_verify_and_evidence_export(
    cli: Cli, home: Path, tmp_path: Path
) -> None:
    assert cli("ingest", TRIAGE).exit_code == 0
    assert cli("log", "verify").exit_code == 0
    with sqlite3.connect(home / "sentrail.db") as db:
        db.execute("UPDATE events SET chain_hash = zeroblob(32)")
    assert cli("log", "verify").exit_code == 1
    run_id = "run-a4f8c312-9e7b"
    r = cli("evidence", "export", "--run", run_id, "--output", tmp_path / "b.zip")
    assert r.exit_code == 1, r.output


def _exported(cli: Cli, tmp_path: Path) -> Path:
    assert cli("ingest", TRIAGE).exit_code == 0
    out = tmp_path / "bundle.zip"
    r = cli("evidence", "export", "--run", "run-a4f8c312-9e7b", "--output", out)
    assert r.exit_code == 0, r.output
    return out


def test_evidence_verify_exits_1_for_a_bundle_that_does_not_verify_2_for_a_bad_key(
    cli: Cli, tmp_path: Path
) -> None:
    bundle = _exported(cli, tmp_path)
    key = cli("evidence", "key").stdout.strip()
    assert cli("evidence", "verify", bundle, "--key", key).exit_code == 0
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "findings.json":
                data = b"[]"
            dst.writestr(item, data)
    assert cli("evidence", "verify", tampered, "--key", key).exit_code == 1
    other = Cli(tmp_path / "another-home")
    assert other("ingest", TRIAGE).exit_code == 0
    stranger = other("evidence", "key").stdout.strip()
    assert cli("evidence", "verify", bundle, "--key", stranger).exit_code == 1
    # A malformed key is a usage error, even on a bundle that would fail: 2 wins.
    for bad in ("not-a-key", key[:-4] + "AAAA", "sentrail.local/log+zz+AAAA"):
        r = cli("evidence", "verify", tampered, "--key", bad)
        assert r.exit_code == 2, (bad, r.output)
        assert "--key" in r.output
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    assert cli("evidence", "verify", bundle, "--key", empty).exit_code == 2
    keyfile = tmp_path / "verifier.key"
    keyfile.write_text(cli("evidence", "key", "--all").stdout)
    assert cli("evidence", "verify", bundle, "--key", keyfile).exit_code == 0


def test_a_refused_release_exits_1(cli: Cli, tmp_path: Path) -> None:
    q = cli("contain", "quarantine", "prod-triage-au-east", *WHO)
    assert q.exit_code == 0, q.output
    attestation = tmp_path / "att.json"
    attestation.write_text(json.dumps({}))  # no image digest, no model id
    r = cli(
        "contain", "release", "prod-triage-au-east", *WHO, "--attestation", attestation,
        "--policy-version", "v0", "--canary", TRIAGE,
    )  # fmt: skip
    assert r.exit_code == 1, r.output
    assert "FAIL" in r.output


# -- both: 2 wins ----------------------------------------------------------------------
def test_an_invalid_file_wins_over_a_critical_finding_in_a_batch(cli: Cli) -> None:
    """examples/traces holds critical findings and one truncated file."""
    r = cli("trace", "analyze", TRACES, "--fail-on", "critical")
    assert "worst finding critical: 0" not in r.output
    assert "Invalid inputs: 1" in r.output
    assert r.exit_code == 2
    json_out = cli("trace", "analyze", TRACES, "--format", "json")
    assert json_out.exit_code == 2


def test_an_unreadable_example_wins_over_a_failing_one(cli: Cli, tmp_path: Path) -> None:
    policy = _bundle_with_a_failing_example(tmp_path)
    (policy.parent / "traces" / "retry-outage.json").unlink()
    r = cli("policy", "test", policy)
    assert "[FAIL]" in r.output and "[ERROR]" in r.output
    assert r.exit_code == 2


def test_an_invalid_file_in_baseline_learn_exits_2_and_the_rest_are_learned(
    cli: Cli, tmp_path: Path
) -> None:
    out = tmp_path / "b.json"
    r = cli("baseline", "learn", TRACES, "--output", out)
    assert r.exit_code == 2 and "1 invalid" in r.output
    assert json.loads(out.read_bytes())["agents"]


def test_a_closed_output_pipe_is_not_a_failed_check(tmp_path: Path) -> None:
    """``sentrail … | head -1``: the reader stops reading. click would exit 1 ("the check
    failed"); the command exits as Unix tools do, 141 (128 + SIGPIPE). The report is
    several times the size of a pipe's buffer, so the write certainly fails."""
    import subprocess
    import sys

    for n in range(4):
        for trace in TRACES.glob("*.json"):
            if trace.name != "truncated.json":
                shutil.copy(trace, tmp_path / f"{n}-{trace.name}")
    sentrail = Path(sys.executable).with_name("sentrail")
    cmd = [str(sentrail), "trace", "analyze", str(tmp_path), "--format", "json"]
    proc = subprocess.Popen(
        [*cmd, "--fail-on", "never"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    assert proc.stdout.read(1)
    proc.stdout.close()
    assert proc.wait(timeout=120) == 141


def test_an_argument_that_is_not_utf8_is_an_input_error(tmp_path: Path) -> None:
    """Raw bytes Python cannot decode reach the store as lone surrogates: a clear error and
    exit 2, not a traceback and exit 1."""
    import os
    import subprocess
    import sys

    sentrail = Path(sys.executable).with_name("sentrail")
    env = {**os.environ, "SENTRAIL_HOME": str(tmp_path / "home")}
    env.pop("SENTRAIL_DATABASE", None)
    done = subprocess.run(
        [os.fsencode(sentrail), b"runs", b"list", b"--tenant", b"t\xff"],
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert b"error: not valid UTF-8: t\\udcff" in done.stderr
    assert b"Traceback" not in done.stderr
