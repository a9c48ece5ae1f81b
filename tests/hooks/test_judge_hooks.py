"""The coding-agent hooks with a profile that asks for the semantic judge: each hook
invocation rebuilds the session's run by deciding its recorded calls again; those are
not asked about again (their recorded answer stands and counts to the run's budget)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_judge import FakeModel, chat
from tests.hooks.conftest import Hook, decision_of, payload, reason_of


@pytest.fixture
def model() -> Iterator[FakeModel]:
    fake = FakeModel()
    yield fake
    fake.close()


def _policy(tmp_path: Path, url: str, **judge: object) -> Path:
    cfg = {"endpoint": url, "model": "tiny-judge", "timeout_s": 5, "ask_when": "writes", **judge}
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\n"
        "default_profile:\n"
        "  id: '*'\n"
        "  approved_tools: [shell.exec, files.read]\n"
        f"  enforcement: {{judge: {json.dumps(cfg)}}}\n"
        "tools:\n"
        "  - {name: shell.exec, risk: sensitive_write}\n"
    )
    return policy


def test_replayed_calls_are_not_asked_again(hook: Hook, model: FakeModel, tmp_path: Path) -> None:
    model.reply = chat("unauthorized", "the user\nasked\x1b[31m for none of it")
    policy = str(_policy(tmp_path, model.url))
    first = hook("claude-code", payload("claude_pre_bash"), "--policy", policy)
    assert decision_of(first) == "deny"
    reason = reason_of(first)
    assert "judge tiny-judge says unauthorized" in reason and "\\x1b" in reason
    assert "\x1b" not in reason and "\n" not in reason
    assert len(model.requests) == 1
    second = hook("claude-code", payload("claude_pre_bash"), "--policy", policy)
    assert decision_of(second) == "deny"
    assert len(model.requests) == 2  # the first call was replayed, not asked about again


def test_the_run_budget_holds_across_hook_invocations(
    hook: Hook, model: FakeModel, tmp_path: Path
) -> None:
    model.reply = chat("allowed", "fine")
    policy = str(_policy(tmp_path, model.url, calls_per_run=1, on_failure="deny"))
    hook("claude-code", payload("claude_pre_bash"), "--policy", policy, "--allow-mode", "allow")
    assert len(model.requests) == 1
    spent = hook("claude-code", payload("claude_pre_bash"), "--policy", policy)
    assert decision_of(spent) == "deny" and "calls per run is spent" in reason_of(spent)
    assert len(model.requests) == 1
