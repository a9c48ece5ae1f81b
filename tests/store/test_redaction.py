"""Redaction by key erasure: what goes, what stays, and that verification still holds."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentrail.evidence import bundle as bundle_mod
from sentrail.evidence.bundle import VIEWS
from sentrail.evidence.errors import EvidenceError
from sentrail.evidence.redaction import REDACTED, parse_record
from sentrail.evidence.verify import read_members, verify_bundle
from sentrail.store.base import StoreError
from sentrail.store.log_verify import verify_log
from sentrail.store.redact import parse_fields, redact_value
from tests.evidence.test_bundle import rewrite
from tests.store.conftest import SIGNER, Backend
from tests.store.redaction_helpers import (
    EMAIL,
    SECRET,
    export,
    fill_run,
    raw_rows,
    step,
    write_rows,
)
from tests.strategies import json_values

KEYS = [SIGNER.verifier_key()]
NOW = 1_760_000_000.0


def problem_of(store: Any) -> tuple[int, str] | None:
    p = verify_log(store, "t1", KEYS).problem
    return None if p is None else (p.seq, p.reason)


def test_whole_run_redaction(backend: Backend, tmp_path: Path) -> None:
    store = backend.open(clock=lambda: NOW)
    fill_run(store, "run-1")
    kept = fill_run(store, "run-2", 2)
    done = store.redact("t1", "default", "run-1", by="alice", reason="GDPR erasure request 42")
    assert (done.by, done.reason, done.fields, done.views) == (
        "alice",
        "GDPR erasure request 42",
        (),
        {},
    )
    assert done.erased_seqs == (0, 1, 2, 3) and done.seq == 6 and done.redacted_at == NOW

    events = store.run_events("t1", "default", "run-1")
    assert [e.payload for e in events[:4]] == [None] * 4
    assert all(e.view is None and e.seal_error is None for e in events)
    record = events[4]
    assert (record.seq, record.kind, record.sealed) == (6, "redaction", False)
    assert record.payload is not None
    parsed = parse_record(record.payload)
    assert (parsed.by, parsed.reason, parsed.erased_seqs, parsed.views) == (
        "alice",
        "GDPR erasure request 42",
        [0, 1, 2, 3],
        {},
    )
    assert parsed.redacted_at == "2025-10-09T08:53:20.000Z"
    assert record.payload == msgspec.json.encode(parsed, order="sorted")  # canonical
    assert [e.payload for e in store.run_events("t1", "default", "run-2")] == [
        e.payload for e in kept
    ]

    key = raw_rows(store, "SELECT dek, erased_at, erased_by FROM run_keys WHERE run_id = 'run-1'")
    assert key == [(None, NOW, "alice")]
    assert problem_of(store) is None

    report = verify_bundle(export(store, "t1", "run-1", tmp_path / "b.zip"), KEYS)
    assert report.redacted_seqs == (0, 1, 2, 3) and report.view_seqs == ()
    (info,) = report.redactions
    assert (info.seq, info.by, info.reason, info.fields, info.erased_seqs) == (
        6,
        "alice",
        "GDPR erasure request 42",
        (),
        (0, 1, 2, 3),
    )
    assert info.redacted_at == "2025-10-09T08:53:20.000Z"


def test_field_redaction_keeps_a_vouched_view(backend: Backend, tmp_path: Path) -> None:
    store = backend.open()
    originals = fill_run(store, "run-1", 3)
    fields = ["step.tool_call.parameters.password", "email"]
    done = store.redact(
        "t1", "default", "run-1", by="dpo", reason="secrets in a trace", fields=fields
    )
    assert done.fields == tuple(fields) and done.erased_seqs == (0, 1, 2)
    events = store.run_events("t1", "default", "run-1")
    for e, original in zip(events, originals, strict=False):
        assert e.payload is None and e.view is not None
        view, before = json.loads(e.view), json.loads(original.payload)
        assert SECRET not in e.view.decode() and EMAIL not in e.view.decode()
        assert view["step"]["tool_call"]["parameters"]["password"] == REDACTED
        assert view["step"]["result"]["data"]["email"] == REDACTED
        before["step"]["tool_call"]["parameters"]["password"] = REDACTED
        before["step"]["result"]["data"]["email"] = REDACTED
        assert view == before  # everything else intact
        assert done.views[e.seq] == hashlib.sha256(e.view).hexdigest()
    assert problem_of(store) is None

    path = export(store, "t1", "run-1", tmp_path / "b.zip")
    report = verify_bundle(path, KEYS)
    assert report.view_seqs == (0, 1, 2) and report.redacted_seqs == (0, 1, 2)
    assert report.redactions[0].fields == tuple(fields)
    assert report.redactions[0].view_seqs == (0, 1, 2)

    # a view edited in the bundle (and the manifest re-signed) is rejected
    views = read_members(path)[VIEWS]
    rewrite(path, {VIEWS: views.replace(b"[REDACTED]", b"[redacted]", 1)}, resign=True)
    with pytest.raises(EvidenceError, match=r"seq 0: view does not match the SHA-256 recorded"):
        verify_bundle(path, KEYS)

    # a view edited in the database fails log verification at its seq
    write_rows(
        store,
        "UPDATE events SET view = ? WHERE tenant_id = ? AND seq = ?",
        (b'{"step":"nothing to see"}', "t1", 1),
    )
    assert problem_of(store) == (
        1,
        "view does not match the SHA-256 recorded by the redaction at seq 3",
    )


def test_a_bundle_without_the_redaction_event_is_rejected(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = backend.open()
    fill_run(store, "run-1", 2)
    store.redact("t1", "default", "run-1", by="dpo", reason="r", fields=["password"])
    with pytest.raises(EvidenceError, match="not vouched for"):  # the exporter refuses ...
        export_without_redaction(store, tmp_path)
    # ... and a compromised exporter that leaves the redaction event out is caught
    monkeypatch.setattr(bundle_mod, "check_views", lambda *a, **k: ([], []))
    path = export_without_redaction(store, tmp_path)
    with pytest.raises(EvidenceError, match=r"seq 0: view is not vouched for by a redaction"):
        verify_bundle(path, KEYS)


def export_without_redaction(store: Any, tmp_path: Path) -> Path:
    from sentrail.evidence.bundle import build_bundle
    from sentrail.evidence.merkle import MerkleTree

    events = store.run_events("t1", "default", "run-1")[:-1]
    checkpoint = store.checkpoint("t1")
    path = tmp_path / "no-redaction.zip"
    build_bundle(
        path,
        tenant="t1",
        run_id="run-1",
        events=[e.record() for e in events],
        tree=MerkleTree(store.leaf_hashes("t1")),
        checkpoint_note=checkpoint.note,
        signer=SIGNER,
        tree_size=events[-1].seq + 1,
    )
    return path


@pytest.mark.parametrize(
    ("tamper", "value", "seq", "reason"),
    [
        (
            "UPDATE events SET view = ? WHERE seq = 0",
            None,
            0,
            "by the redaction at seq 2 is missing",
        ),
        ("UPDATE events SET view = ? WHERE seq = 3", b"{}", 3, "not vouched for"),
        ("UPDATE events SET payload = ? WHERE seq = 3", None, 3, "without a redaction record"),
        ("UPDATE events SET payload = ? WHERE seq = 2", b"{}", 2, "digest"),
    ],
)
def test_log_verify_catches_redaction_tampering(
    backend: Backend, tamper: str, value: bytes | None, seq: int, reason: str
) -> None:
    store = backend.open()
    fill_run(store, "run-1", 2)  # seqs 0, 1; the redaction is seq 2
    store.redact("t1", "default", "run-1", by="dpo", reason="r", fields=["password"])
    store.append([step("run-2", 0)])  # seq 3, not redacted
    assert backend.sql is not None
    backend.sql(tamper, (value,))
    problem = problem_of(store)
    assert problem is not None and problem[0] == seq and reason in problem[1], problem


def test_append_after_erasure_is_refused(backend: Backend) -> None:
    store = backend.open()
    events = fill_run(store, "run-1", 2)
    assert not store.is_erased("t1", "default", "run-1")
    store.redact("t1", "default", "run-1", by="dpo", reason="r")
    assert store.is_erased("t1", "default", "run-1") and not store.is_erased(
        "t1", "default", "run-2"
    )
    with pytest.raises(StoreError, match="was redacted"):
        store.append([step("run-2", 0), step("run-1", 5)])
    assert store.run_events("t1", "default", "run-2") == []  # the whole batch was refused
    assert store.append(events)[0].duplicate  # retries of stored events are still answered
    assert store.append([step("run-2", 0)])[0].seq == 3


def test_unsealed_payloads_are_dropped(backend: Backend) -> None:
    store = backend.open(seal_payloads=False)
    fill_run(store, "run-1", 2)
    store.redact("t1", "default", "run-1", by="dpo", reason="r", fields=["email"])
    payloads = raw_rows(store, "SELECT seq, payload FROM events ORDER BY seq")
    assert [(s, p) for s, p in payloads[:2]] == [(0, None), (1, None)]
    assert all(e.view is not None for e in store.run_events("t1", "default", "run-1")[:2])
    assert problem_of(store) is None


def test_redacting_again_records_but_erases_nothing_new(backend: Backend) -> None:
    store = backend.open()
    fill_run(store, "run-1", 2)
    first = store.redact("t1", "default", "run-1", by="a", reason="first")
    again = store.redact("t1", "default", "run-1", by="b", reason="again", fields=["password"])
    assert first.erased_seqs == (0, 1) and again.erased_seqs == () and again.views == {}
    assert again.seq == first.seq + 1
    assert [e.kind for e in store.run_events("t1", "default", "run-1")] == ["step"] * 2 + [
        "redaction"
    ] * 2
    key = raw_rows(store, "SELECT erased_by FROM run_keys WHERE run_id = 'run-1'")
    assert key == [("a",)]  # the first erasure is the one on record
    assert problem_of(store) is None


def test_findings_and_results_are_scrubbed(backend: Backend) -> None:
    store = backend.open()
    fill_run(store, "run-1", 2)
    fill_run(store, "run-2", 1)
    finding = {
        "id": "f1",
        "rule": "taint",
        "category": "tainted_action",
        "severity": "critical",
        "step_index": 1,
        "message": f"email.send parameter to = {EMAIL!r} comes from step 0",
        "evidence": {"parameter": "to", "value": EMAIL, "password": SECRET, "step": 0},
        "tags": ["OWASP-ASI01"],
    }
    for run, fid in (("run-1", "f1"), ("run-2", "f2")):
        write_rows(
            store,
            "INSERT INTO findings (tenant_id, finding_id, app_id, run_id, category, severity, "
            "severity_rank, rule_id, step, resolved, created_at, body) "
            "VALUES (?, ?, 'default', ?, 'tainted_action', 'critical', 3, 'taint', 1, 0, 0, ?)",
            ("t1", fid, run, json.dumps({**finding, "id": fid}).encode()),
        )
    result = {"run_id": "run-1", "verdict": "unauthorized", "findings": [finding]}
    store.put_result("t1", "default", "run-1", json.dumps(result).encode())

    store.redact(
        "t1",
        "default",
        "run-1",
        by="dpo",
        reason="r",
        fields=["password", "step.result.data.email"],
    )

    def body(fid: str) -> dict[str, Any]:
        rows = raw_rows(store, "SELECT body FROM findings WHERE finding_id = ?", (fid,))
        return dict(json.loads(bytes(rows[0][0])))

    scrubbed = body("f1")
    assert scrubbed["evidence"] == {
        "parameter": "to",
        "value": REDACTED,  # the redacted email value, found where it was copied
        "password": REDACTED,  # the field spec itself
        "step": 0,
    }
    assert scrubbed["message"] == REDACTED
    assert (scrubbed["rule"], scrubbed["severity"], scrubbed["tags"]) == (
        "taint",
        "critical",
        ["OWASP-ASI01"],
    )
    assert body("f2") == {**finding, "id": "f2"}  # another run's finding is untouched
    stored = store.get_result("t1", "default", "run-1")
    assert stored is not None
    assert SECRET not in stored.decode() and EMAIL not in stored.decode()
    assert json.loads(stored)["verdict"] == "unauthorized"

    store.redact("t1", "default", "run-2", by="dpo", reason="whole")
    whole = body("f2")
    assert whole["evidence"] == dict.fromkeys(finding["evidence"], REDACTED)  # type: ignore[arg-type]
    assert whole["message"] == REDACTED and whole["category"] == "tainted_action"


def test_malformed_rows_are_replaced_not_kept(backend: Backend) -> None:
    store = backend.open()
    fill_run(store, "run-1", 1)
    write_rows(
        store,
        "INSERT INTO findings (tenant_id, finding_id, app_id, run_id, category, severity, "
        "severity_rank, rule_id, step, resolved, created_at, body) "
        "VALUES ('t1', 'f1', 'default', 'run-1', 'c', 's', 1, 'r', NULL, 0, 0, ?)",
        (f"not json {SECRET}".encode(),),
    )
    store.put_result("t1", "default", "run-1", b"[1, 2]")
    store.redact("t1", "default", "run-1", by="dpo", reason="r")
    assert bytes(raw_rows(store, "SELECT body FROM findings")[0][0]) == b'"[REDACTED]"'
    assert store.get_result("t1", "default", "run-1") == b'"[REDACTED]"'


def test_bad_requests_are_refused(backend: Backend) -> None:
    store = backend.open()
    fill_run(store, "run-1", 1)
    with pytest.raises(StoreError, match="no events of run"):
        store.redact("t1", "default", "nope", by="a", reason="r")
    with pytest.raises(StoreError, match="by must be"):
        store.redact("t1", "default", "run-1", by=" ", reason="r")
    with pytest.raises(StoreError, match="empty component"):
        store.redact("t1", "default", "run-1", by="a", reason="r", fields=["a..b"])
    with pytest.raises(StoreError, match="not one string"):
        store.redact("t1", "default", "run-1", by="a", reason="r", fields="password")
    assert store.run_events("t1", "default", "run-1")[0].payload is not None  # nothing happened
    assert problem_of(store) is None


def test_non_json_payloads_get_no_view(backend: Backend) -> None:
    store = backend.open()
    from sentrail.store.base import NewEvent

    store.append([NewEvent("t1", "default", "run-1", "e0", "blob", b"\xff\x00 password=x")])
    fill_run(store, "run-1", 1)
    done = store.redact("t1", "default", "run-1", by="a", reason="r", fields=["password"])
    assert done.erased_seqs == (0, 1) and sorted(done.views) == [1]
    assert [e.view is None for e in store.run_events("t1", "default", "run-1")] == [
        True,
        False,
        True,
    ]
    assert problem_of(store) is None


# -- the field-redaction property ----------------------------------------------------------
keys = st.sampled_from(["a", "b", "password", "email", "0", "1", "x.y"])
documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=25,
)
specs = st.lists(
    st.lists(
        st.sampled_from(["a", "b", "password", "email", "0", "1", "*"]), min_size=1, max_size=4
    ).map(".".join),
    max_size=3,
)


def _paths(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """Every (path, value) of a document, the root included."""
    out = [(at, node)]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*at, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*at, i))
    return out


def _matched(spec: tuple[str, ...], path: tuple[Any, ...], node_is_key: list[bool]) -> bool:
    """Does ``spec`` name the value at ``path`` (an independent statement of the rules)?"""
    if len(spec) == 1:  # the key at any depth (object members only)
        return bool(path) and node_is_key[-1] and spec[0] in ("*", str(path[-1]))
    return len(path) == len(spec) and all(
        c in ("*", str(p)) for c, p in zip(spec, path, strict=True)
    )


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        node = node[p]
    return node


@settings(max_examples=300, deadline=None)
@given(documents | json_values, specs)
def test_a_view_hides_every_redacted_path_and_keeps_the_rest(doc: Any, fields: list[str]) -> None:
    parsed = parse_fields(fields)
    before = copy.deepcopy(doc)
    view = redact_value(doc, parsed)
    assert doc == before  # the input is not modified
    redacted: list[tuple[Any, ...]] = []
    for path, value in _paths(doc):
        node_is_key = [isinstance(_get(doc, path[:i]), dict) for i in range(len(path))]
        if any(r == path[: len(r)] for r in redacted):
            continue  # inside a redacted value: gone with it
        if any(_matched(s, path, node_is_key) for s in parsed):
            redacted.append(path)
            assert _get(view, path) == REDACTED
        elif not isinstance(value, dict | list):
            assert _get(view, path) == value  # every other leaf is intact
    if not redacted:
        assert view == doc


# -- hostile bundles with views (the store only builds them; no backend needed) ------------
def _bundle_with_views(tmp_path: Path) -> Path:
    from sentrail.store.sqlite import SqliteStore

    store = SqliteStore(":memory:", SIGNER)
    store.migrate()
    fill_run(store, "run-1", 2)
    store.redact("t1", "default", "run-1", by="dpo", reason="r", fields=["password"])
    return export(store, "t1", "run-1", tmp_path / "views.zip")


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ("offset", "view offset/length is not the next slice"),
        ("length", "view offset/length is not the next slice"),
        ("extra", "view bytes not claimed by any event"),
        ("drop", r"1 view\(s\), but the signed manifest says 2"),
    ],
)
def test_hostile_view_layouts_are_rejected(tmp_path: Path, edit: str, reason: str) -> None:
    path = _bundle_with_views(tmp_path)
    assert verify_bundle(path, KEYS).view_seqs == (0, 1)
    members = read_members(path)
    doc = json.loads(members[bundle_mod.INDEX])
    change: dict[str, bytes | None] = {}
    if edit == "offset":
        doc["events"][1]["view_offset"] += 1
    elif edit == "length":
        doc["events"][1]["view_length"] += 10_000
    elif edit == "extra":
        change[VIEWS] = members[VIEWS] + b"{}"
    else:  # the second view's bytes and entry go, the manifest count is re-signed as is
        first = doc["events"][0]["view_length"]
        doc["events"][1].pop("view_length")
        doc["events"][1].pop("view_offset")
        change[VIEWS] = members[VIEWS][:first]
    change[bundle_mod.INDEX] = json.dumps(doc).encode()
    rewrite(path, change, resign=True)
    with pytest.raises(EvidenceError, match=reason):
        verify_bundle(path, KEYS)
