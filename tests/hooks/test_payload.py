"""Hook payloads are hostile input: bounded, one UTF-8 JSON object, typed fields."""

from __future__ import annotations

import codecs
import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentrail.hooks.dispatch import respond
from sentrail.hooks.payload import HookInputError, get_object, get_str, read_payload
from sentrail.hooks.runner import HookOptions


def test_the_size_is_capped_before_parsing() -> None:
    with pytest.raises(HookInputError, match="larger than 64 bytes"):
        read_payload(io.BytesIO(b'{"a": "' + b"x" * 100 + b'"}'), limit=64)
    assert read_payload(io.BytesIO(b'{"a": 1}'), limit=64) == {"a": 1}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty hook payload"),
        (b"  \n", "empty hook payload"),
        (b"{", "not JSON"),
        (b"[]", "must be a JSON object, got list"),
        (b'"text"', "must be a JSON object, got str"),
        (b'{"a": "\xff"}', "not valid UTF-8"),
        (b"[" * 3000 + b"]" * 3000, "nesting too deep"),
        (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
    ],
)
def test_bad_payloads_are_refused_with_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(HookInputError, match=message) as info:
        read_payload(io.BytesIO(data))
    assert str(info.value).startswith("stdin: ")


def test_byte_order_marks_are_understood() -> None:
    doc = '{"session_id": "s"}'
    assert read_payload(io.BytesIO(codecs.BOM_UTF8 + doc.encode())) == {"session_id": "s"}
    utf16 = codecs.BOM_UTF16_LE + doc.encode("utf-16-le")
    assert read_payload(io.BytesIO(utf16)) == {"session_id": "s"}


def test_typed_accessors_name_the_field() -> None:
    p = {"s": "x", "n": 3, "o": {"k": 1}, "l": [1], "z": None}
    assert get_str(p, "s") == "x"
    assert get_str(p, "z", required=False) == ""
    assert get_object(p, "o") == {"k": 1} and get_object(p, "missing") == {}
    with pytest.raises(HookInputError, match="n: must be a string, got a number"):
        get_str(p, "n")
    with pytest.raises(HookInputError, match="missing: missing"):
        get_str(p, "missing")
    with pytest.raises(HookInputError, match="l: must be an object, got an array"):
        get_object(p, "l")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
EVENTS = st.sampled_from(
    ["PreToolUse", "PostToolUse", "PostToolUseFailure", "UserPromptSubmit", "Stop", "", "x"]
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "hook_event_name": EVENTS | JSON,
        "session_id": st.sampled_from(["fuzz", "../../etc/passwd", ""]) | JSON,
        "tool_name": st.sampled_from(["Bash", "Write", "mcp__a__b", "Edit", ""]) | JSON,
        "tool_input": JSON,
        "tool_response": JSON,
        "tool_use_id": JSON,
        "cwd": st.sampled_from(["/tmp", "relative", ""]) | JSON,
        "prompt": JSON,
        "error": JSON,
    },
)


@settings(max_examples=150, deadline=None)
@given(event=FIELDS | JSON, raw=st.binary(max_size=64))
def test_any_payload_gets_an_answer_never_a_traceback(
    tmp_path_factory: pytest.TempPathFactory, event: object, raw: bytes
) -> None:
    home = tmp_path_factory.mktemp("fuzz")
    for client in ("claude-code", "codex", "cursor"):
        options = HookOptions(client=client, agent_id=client, home=str(home))
        for data in (json.dumps(event).encode(), raw):
            reply = respond(io.BytesIO(data), options)
            if reply.stdout:
                answer = json.loads(reply.stdout)
                assert isinstance(answer, dict)
            pre = isinstance(event, dict) and event.get("hook_event_name") == "PreToolUse"
            if reply.failed and (data is raw or pre) and client != "cursor":
                decision = answer["hookSpecificOutput"]["permissionDecision"]
                assert decision == "deny"
            if reply.failed:
                assert "Traceback" not in reply.stderr
                assert "internal error" not in reply.stderr, reply.stderr
