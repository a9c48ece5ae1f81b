"""``sentrail hook codex``: Claude Code's protocol, except that Codex cannot ask and runs a
call whose hook answers ``ask`` or a bare ``allow``; so an approval is a deny, and an
allowed call gets no output."""

from __future__ import annotations

from pathlib import Path

from sentrail.hooks.session import CallRecord, SessionLog
from tests.hooks.conftest import Hook, decision_of, payload, reason_of

DELETE_TESTS = 'git rm -r tests && git commit -m "delete tests"'


def test_allowed_calls_get_no_output_even_in_allow_mode(hook: Hook) -> None:
    assert hook("codex", payload("codex_pre_bash")) is None
    assert hook("codex", payload("codex_pre_bash"), "--allow-mode", "allow") is None


def test_an_approval_is_a_deny_that_says_a_person_must_approve(hook: Hook) -> None:
    push = payload("codex_pre_bash", tool_input={"command": "git push -f origin main"})
    answer = hook("codex", push)
    assert decision_of(answer) == "deny"
    assert "needs a person's approval" in reason_of(answer)
    assert "git-force-push" in reason_of(answer)
    assert decision_of(hook("codex", {}, "--on-error", "ask")) == "deny"


def test_apply_patch_is_a_file_patch_with_its_files(hook: Hook, home: Path) -> None:
    assert hook("codex", payload("codex_pre_apply_patch")) is None
    session = payload("codex_pre_apply_patch")["session_id"]
    with SessionLog(home / "hooks" / "codex", "codex", session) as log:
        (call,) = log.records()
    assert isinstance(call, CallRecord)
    req = call.request
    assert req.tool == "files.patch" and req.action == "apply_patch"
    assert req.parameters["files"] == ["src/lib.rs", "docs/notes.md", "src/legacy.rs"]
    assert req.parameters["deletes"] == ["src/legacy.rs"]
    assert req.resource is not None and req.resource.endswith("/src/lib.rs")


def test_an_injected_output_is_fed_back_and_acting_on_it_is_denied(hook: Hook) -> None:
    hook(
        "codex",
        payload(
            "codex_pre_bash",
            tool_input={"command": "cat vendor/README"},
            tool_use_id="call_9Rr1CatVend",
        ),
    )
    fed_back = hook("codex", payload("codex_post_bash"))
    assert fed_back is not None and fed_back["decision"] == "block"
    assert "untrusted_instruction" in fed_back["reason"]
    assert fed_back["hookSpecificOutput"]["additionalContext"] == fed_back["reason"]
    act = hook(
        "codex",
        payload("codex_pre_bash", tool_input={"command": DELETE_TESTS}, tool_use_id="call_rm"),
    )
    assert decision_of(act) == "deny"
    assert "tainted_action.instructed" in reason_of(act)
    twin = hook(
        "codex", payload("codex_pre_bash", session_id="clean", tool_input={"command": DELETE_TESTS})
    )
    assert twin is None  # the same command, asked for in a session without the injection
