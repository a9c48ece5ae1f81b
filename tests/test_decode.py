from __future__ import annotations

import codecs
import contextlib
import gzip
import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentrail.errors import InputError
from sentrail.model.decode import decode_event, decode_run
from sentrail.model.events import RunStarted, StepEvent
from sentrail.model.trace import Run
from sentrail.runtime.sources import read_document
from tests.strategies import json_values, traces

GOOD = {"run_id": "r1", "agent_id": "a", "steps": [{"step_index": 0, "tool_call": None}]}


def enc(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def error_of(data: bytes) -> str:
    with pytest.raises(InputError) as exc:
        decode_run(data)
    return str(exc.value)


def test_wrong_type_names_json_path() -> None:
    doc = {
        "run_id": "r",
        "agent_id": "a",
        "steps": [{"step_index": 0}] * 3 + [{"step_index": 3, "tool_call": {"tool": 7}}],
    }
    assert error_of(enc(doc)) == "steps[3].tool_call.tool: expected str, got int"


def test_missing_required_field() -> None:
    assert "run_id" in error_of(b'{"agent_id": "a"}')


def test_unknown_fields_are_accepted() -> None:
    run = decode_run(enc({**GOOD, "vendor_extension": {"x": [1, 2]}, "inputs": []}))
    assert run.run_id == "r1"


def test_truncated_and_malformed() -> None:
    data = enc(GOOD)
    assert "truncated" in error_of(data[:-5])
    assert "line 1 column" in error_of(b'{"run_id": "r", "agent_id": x}')


def test_duplicate_keys_refused() -> None:
    assert "duplicate key 'tool'" in error_of(
        b'{"run_id":"r","agent_id":"a","steps":[{"step_index":0,'
        b'"tool_call":{"tool":"metrics.query","tool":"db.drop_table"}}]}'
    )


def test_deep_nesting_refused_without_recursion() -> None:
    deep = b'{"run_id":"r","agent_id":"a","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert "nesting too deep" in error_of(deep)
    nested = "[" * 500 + "]" * 500
    ok = '{"run_id":"r","agent_id":"a","x":' + nested + "}"
    assert decode_run(ok.encode()).run_id == "r"  # deep but within the limit is fine


def test_encodings() -> None:
    text = json.dumps(GOOD)
    for codec, bom in (("utf-16-le", codecs.BOM_UTF16_LE), ("utf-32-be", codecs.BOM_UTF32_BE)):
        assert decode_run(bom + text.encode(codec)).run_id == "r1"
    assert decode_run(codecs.BOM_UTF8 + text.encode()).run_id == "r1"
    assert "not valid UTF-8" in error_of(b'{"run_id":"r","agent_id":"\xff\xfe"}')


@pytest.mark.parametrize(
    "decode",
    [decode_run, lambda data: decode_run(data, checked=True), decode_event],
    ids=["run", "run-checked", "event"],
)
def test_invalid_utf8_is_named_by_sentrail_not_by_the_parser(decode: Any) -> None:
    """The message (and the byte it names) is ours, whatever the JSON library's version says."""
    data = b'{"type":"run_started","run_id":"r","agent_id":"a\xc3\x28"}'
    with pytest.raises(InputError) as exc:
        decode(data)
    assert str(exc.value) == "not valid UTF-8 text (byte 48 is 0xc3)"


def test_huge_string_is_decoded_and_bounded_in_memory() -> None:
    doc = {
        **GOOD,
        "steps": [
            {
                "step_index": 0,
                "tool_call": {"tool": "web.fetch", "parameters": {}},
                "result": {"status": "success", "data": "A" * 50_000_000},
            }
        ],
    }
    run = decode_run(enc(doc))
    assert run.steps[0].result is not None


def test_events() -> None:
    assert isinstance(
        decode_event(b'{"type":"run_started","run_id":"r","agent_id":"a"}'), RunStarted
    )
    ev = decode_event(b'{"type":"step","run_id":"r","step":{"step_index":2}}')
    assert isinstance(ev, StepEvent) and ev.step.step_index == 2
    with pytest.raises(InputError):
        decode_event(b'{"type":"bogus","run_id":"r"}')


def test_gzip_and_size_limit(tmp_path: Any) -> None:
    p = tmp_path / "t.json.gz"
    p.write_bytes(gzip.compress(enc(GOOD)))
    assert decode_run(read_document(str(p))).run_id == "r1"
    bomb = tmp_path / "bomb.json.gz"
    bomb.write_bytes(gzip.compress(b" " * 5000))
    with pytest.raises(InputError, match="limit"):
        read_document(str(bomb), limit=1000)
    bad = tmp_path / "bad.json.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(InputError, match="gzip"):
        read_document(str(bad))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    with contextlib.suppress(InputError):
        decode_run(data)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_arbitrary_json_never_crashes(value: Any) -> None:
    with contextlib.suppress(InputError):
        decode_run(enc(value))


@settings(max_examples=50, deadline=None)
@given(traces(), st.data())
def test_every_truncation_is_a_clean_error(doc: dict[str, Any], data: st.DataObject) -> None:
    raw = enc(doc)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(InputError):
        decode_run(raw[:cut])


# -- the duplicate-key check's fast path against the exact parse -----------------------
_KEYS = st.sampled_from(["a", "b", "k:", ":", "\\u003a", "\\u003A", "\\\\u003a", '\\"', "é"])


@st.composite
def json_texts(draw: st.DrawFn, depth: int = 0) -> str:
    """JSON text, written by hand so that an object may repeat a key and colons may be
    spelled raw or escaped, inside keys and values, with arbitrary spacing."""
    sp = draw(st.sampled_from(["", " ", "\n"]))
    if depth >= 3:
        kind = draw(st.sampled_from(["str", "num"]))
    else:
        kind = draw(st.sampled_from(["obj", "obj", "arr", "str", "num"]))
    if kind == "num":
        return str(draw(st.integers(-(10**20), 10**20) | st.floats(allow_nan=False)))
    if kind == "str":
        return '"' + "".join(draw(st.lists(_KEYS, max_size=4))) + '"'
    if kind == "arr":
        items = draw(st.lists(json_texts(depth + 1), max_size=3))
        return "[" + f",{sp}".join(items) + "]"
    keys = draw(st.lists(_KEYS, max_size=4))
    items = [f'"{k}"{sp}:{sp}{draw(json_texts(depth + 1))}' for k in keys]
    return "{" + f",{sp}".join(items) + "}"


def _exact_unique(data: bytes) -> bool:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in pairs}) != len(pairs):
            raise KeyError("duplicate")
        return dict(pairs)

    try:
        json.loads(data, object_pairs_hook=hook)
    except KeyError:
        return False
    return True


@settings(max_examples=400)
@given(json_texts())
def test_fast_duplicate_check_never_passes_a_duplicate(text: str) -> None:
    from sentrail.model.decode import _NOT_DECODED, _surely_unique_keys

    data = text.encode()
    try:
        json.loads(data)
    except ValueError:
        return  # not JSON: the exact check and msgspec report it
    if _surely_unique_keys(data) is not _NOT_DECODED:
        assert _exact_unique(data)
    elif "\\\\u003a" not in text and _exact_unique(data):
        # Without a literal backslash before an escape, a unique document is seen as such.
        pytest.fail(text)


# What a field of a trace can be replaced with: its own type or another (an error then).
_WRONG = st.sampled_from([None, "x", 7, 1.5, True, [], {}, [1, "a"], {"k": "v"}, 2**70])


@settings(max_examples=300)
@given(
    doc=traces(),
    where=st.integers(0, 50),
    value=_WRONG,
    key=st.sampled_from(
        [
            "step_index",
            "action",
            "tool_call",
            "parameters",
            "result",
            "status",
            "data",
            "permissions_used",
            "timestamp",
            "environment",
            "approval_id",
            "run_id",
            "steps",
            "permissions_summary",
            "granted",
            "duration_ms",
        ]
    ),
)
def test_decoding_types_the_checked_values_as_the_parser_would(
    doc: dict[str, Any], where: int, value: Any, key: str
) -> None:
    """decode_run types the values the duplicate check decoded (msgspec.convert) instead of
    parsing again: the same Run, or the same error, as the typed parser gives."""
    objects = [doc, *doc["steps"], *(s["tool_call"] for s in doc["steps"] if s["tool_call"])]
    if where % 2:  # half the documents have one field replaced
        target = objects[where % len(objects)]
        target[key] = value
    data = json.dumps(doc).encode()
    from sentrail.model.decode import _located

    try:
        expected: Any = msgspec.json.Decoder(Run).decode(data)
        if not expected.run_id:
            expected = "run_id: must be a non-empty string"  # decode_run's own check
    except msgspec.ValidationError as exc:
        expected = str(_located(exc, data))
    try:
        got: Any = decode_run(data)
    except InputError as exc:
        got = str(exc)
    assert got == expected


def test_a_duplicate_key_beside_a_number_too_long_for_int_is_refused() -> None:
    """Python's int() refuses more than 4,300 digits; the exact check must not stop there
    (found by an outsider: the run was judged as its last "tool" key)."""
    doc = (
        b'{"run_id":"r","agent_id":"a","padding":' + b"1" * 4301 + b',"steps":[{"step_index":0,'
        b'"tool_call":{"tool":"web.fetch","tool":"bank.transfer","parameters":{}}}]}'
    )
    with pytest.raises(InputError, match="duplicate key 'tool'"):
        decode_run(doc)
    unique = doc.replace(b'"tool":"web.fetch",', b"")
    assert decode_run(unique).steps[0].tool_call.tool == "bank.transfer"  # type: ignore[union-attr]
