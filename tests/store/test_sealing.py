"""Payloads are sealed at rest under a per-run data key; the log commits to the plaintext."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentrail.evidence.chain import EventLeaf
from sentrail.store import leafdata
from sentrail.store.base import NewEvent, StoreError
from sentrail.store.log_verify import verify_log
from sentrail.store.seal import NONCE_BYTES, TAG_BYTES
from tests.store.conftest import SIGNER, Backend
from tests.store.redaction_helpers import SECRET, fill_run, raw_rows, write_rows

KEYS = [SIGNER.verifier_key()]


def test_payloads_are_sealed_at_rest_and_read_back_in_plaintext(backend: Backend) -> None:
    store = backend.open()
    events = fill_run(store, "run-1") + fill_run(store, "run-2", 2)
    rows = raw_rows(store, "SELECT seq, payload, sealed, payload_sha256 FROM events ORDER BY seq")
    assert len(rows) == len(events)
    for (_seq, raw, sealed, digest), e in zip(rows, events, strict=True):
        raw = bytes(raw)
        assert sealed == 1
        assert raw != e.payload and SECRET.encode() not in raw
        assert len(raw) == NONCE_BYTES + len(e.payload) + TAG_BYTES
        assert bytes(digest) == hashlib.sha256(e.payload).digest()  # over the plaintext
    keys = raw_rows(store, "SELECT run_id, dek, erased_at FROM run_keys ORDER BY run_id")
    assert [(r, len(bytes(k)), at) for r, k, at in keys] == [
        ("run-1", 32, None),
        ("run-2", 32, None),
    ]
    assert bytes(keys[0][1]) != bytes(keys[1][1])  # one key per run
    stored = store.run_events("t1", "default", "run-1")
    assert [s.payload for s in stored] == [e.payload for e in events[:4]]
    assert all(s.sealed and s.view is None and s.seal_error is None for s in stored)
    assert [s.payload for s in store.events("t1")] == [e.payload for e in events]
    assert verify_log(store, "t1", KEYS).problem is None


def test_nonces_differ_and_duplicates_store_nothing(backend: Backend) -> None:
    store = backend.open()
    same = [NewEvent("t1", "default", "run-1", f"e{i}", "step", b"{}") for i in range(3)]
    store.append(same)
    assert store.append(same[:1])[0].duplicate
    raws = [bytes(r[0]) for r in raw_rows(store, "SELECT payload FROM events ORDER BY seq")]
    assert len(raws) == 3 and len(set(raws)) == 3  # same plaintext, fresh nonces


def test_unsealed_store_keeps_plaintext(backend: Backend) -> None:
    store = backend.open(seal_payloads=False)
    events = fill_run(store, "run-1", 2)
    rows = raw_rows(store, "SELECT payload, sealed FROM events ORDER BY seq")
    assert [(bytes(p), s) for p, s in rows] == [(e.payload, 0) for e in events]
    assert raw_rows(store, "SELECT run_id FROM run_keys") == []
    assert [e.sealed for e in store.run_events("t1", "default", "run-1")] == [False, False]


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        # the ciphertext of seq 0 in the row of seq 1 (same run, same key): the AAD binds
        # each ciphertext to its event
        (
            "UPDATE events SET payload = (SELECT payload FROM events WHERE seq = 0) WHERE seq = 1",
            "does not authenticate",
        ),
        ("UPDATE events SET sealed = 0 WHERE seq = 1", "stored unsealed (plaintext at rest)"),
    ],
)
def test_moved_or_unflagged_ciphertext_fails_verification(
    backend: Backend, tamper: str, reason: str
) -> None:
    store = backend.open()
    fill_run(store, "run-1", 3)
    assert backend.sql is not None
    backend.sql(tamper, ())
    problem = verify_log(store, "t1", KEYS).problem
    assert problem is not None and problem.seq == 1 and reason in problem.reason, problem


def test_a_key_removed_behind_the_stores_back_is_a_deletion(backend: Backend) -> None:
    store = backend.open()
    fill_run(store, "run-1", 2)
    write_rows(store, "UPDATE run_keys SET dek = NULL WHERE run_id = ?", ("run-1",))
    assert [e.payload for e in store.run_events("t1", "default", "run-1")] == [None, None]
    problem = verify_log(store, "t1", KEYS).problem
    assert problem is not None and problem.seq == 0
    assert "payload erased without a redaction record" in problem.reason


def test_malformed_key_rows_are_refused(backend: Backend) -> None:
    store = backend.open()
    fill_run(store, "run-1", 1)
    write_rows(store, "UPDATE run_keys SET dek = ? WHERE run_id = ?", (b"short", "run-1"))
    with pytest.raises(StoreError, match="malformed run data key"):
        store.run_events("t1", "default", "run-1")
    with pytest.raises(StoreError, match="malformed run data key"):
        store.append([NewEvent("t1", "default", "run-1", "next", "step", b"{}")])


def test_the_redaction_kind_is_reserved(backend: Backend) -> None:
    store = backend.open()
    with pytest.raises(StoreError, match="the store's own"):
        store.append([NewEvent("t1", "default", "run-1", "e0", "redaction", b"{}")])


ids = st.text(min_size=1, max_size=20)


@given(
    ids,
    ids,
    ids,
    ids,
    ids,
    st.integers(0, 2**64 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
    st.binary(min_size=32, max_size=32),
)
def test_the_fast_leaf_encoding_is_the_evidence_cores(
    tenant: str,
    app: str,
    run: str,
    event_id: str,
    kind: str,
    seq: int,
    at: float,
    sealed: bool,
    prev: bytes,
) -> None:
    digest = hashlib.sha256(prev).digest()
    leaf = EventLeaf(tenant, seq, run, event_id, kind, digest, prev, app, at, sealed, 2)
    prefix = leafdata.run_prefix(tenant, app, run)
    data = leafdata.leaf_data(prefix, seq, event_id, kind, at, sealed, digest, prev)
    assert data == leaf.leaf_data()
    assert leafdata.link(prev, data) == leaf.chain_hash()
