"""One contract suite for every Store backend (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sentrail.evidence.chain import GENESIS, EventLeaf
from sentrail.evidence.checkpoint import log_verifiers, verify_checkpoint
from sentrail.evidence.merkle import MerkleTree, leaf_hash
from sentrail.evidence.note import Signer
from sentrail.store.base import NewEvent, StoreError
from sentrail.store.core import LogStore
from sentrail.store.log_verify import verify_log
from tests.store.conftest import SIGNER, Backend, SqlTamper

ORIGIN_T1 = f"{SIGNER.name}/t1"  # each tenant's log has its own origin


def ev(i: int, run: str = "run-1", tenant: str = "t1", eid: str | None = None) -> NewEvent:
    payload = b'{"type":"step","run_id":"%s","i":%d}' % (run.encode(), i)
    return NewEvent(tenant, "default", run, eid or f"{run}/e{i}", "step", payload)


def fill(store: LogStore, n: int, tenant: str = "t1") -> None:
    for start in range(0, n, 7):
        store.append(
            [ev(i, run=f"run-{i % 3}", tenant=tenant) for i in range(start, min(n, start + 7))]
        )


def test_seqs_are_consecutive_and_runs_chain(backend: Backend) -> None:
    store = backend.open()
    acks = store.append([ev(0), ev(1, "run-2"), ev(2), ev(3, "run-2"), ev(4)])
    assert [a.seq for a in acks] == [0, 1, 2, 3, 4]
    assert not any(a.duplicate for a in acks)
    run1 = store.run_events("t1", "default", "run-1")
    assert [e.seq for e in run1] == [0, 2, 4]
    prev = GENESIS
    for e in run1:
        assert e.prev_hash == prev
        assert e.payload is not None
        assert e.payload_sha256 == hashlib.sha256(e.payload).digest()
        assert (e.app_id, e.leaf_version, e.sealed) == ("default", 2, True)
        leaf = EventLeaf(
            "t1",
            e.seq,
            e.run_id,
            e.event_id,
            e.kind,
            e.payload_sha256,
            prev,
            "default",
            e.received_at,
            True,
            2,
        )
        assert e.chain_hash == leaf.chain_hash()
        assert e.leaf_hash == leaf_hash(leaf.leaf_data())
        prev = e.chain_hash
    assert run1[1].payload == ev(2).payload
    assert [e.seq for e in store.events("t1", 1, 4)] == [1, 2, 3]
    assert len(store.leaf_hashes("t1")) == 5


def test_appends_are_idempotent_by_event_id(backend: Backend) -> None:
    store = backend.open()
    store.append([ev(0), ev(1)])
    acks = store.append([ev(1), ev(2), ev(2), ev(0, eid="run-1/e0")])
    assert [(a.seq, a.duplicate) for a in acks] == [(1, True), (2, False), (2, True), (0, True)]
    assert [e.seq for e in store.events("t1")] == [0, 1, 2]
    assert [e.event_id for e in store.run_events("t1", "default", "run-1")] == [
        "run-1/e0",
        "run-1/e1",
        "run-1/e2",
    ]


def test_tenants_have_separate_logs(backend: Backend) -> None:
    store = backend.open()
    acks = store.append([ev(0, tenant="a"), ev(0, tenant="b"), ev(1, tenant="a")])
    assert [a.seq for a in acks] == [0, 0, 1]
    assert store.tenants() == ["a", "b"]
    assert [e.event_id for e in store.events("b")] == ["run-1/e0"]


def test_a_bad_batch_stores_nothing(backend: Backend) -> None:
    store = backend.open()
    with pytest.raises(StoreError):
        store.append([ev(0), NewEvent("t1", "default", "run-1", "", "step", b"{}")])
    assert list(store.events("t1")) == []
    assert store.append([ev(0)])[0].seq == 0


def test_checkpoints_are_signed_every_n_events_and_on_request(backend: Backend) -> None:
    store = backend.open(checkpoint_every=10)
    fill(store, 25)
    sizes = [c.size for c in store.checkpoints("t1")]
    assert sizes and all(s >= 10 for s in sizes)
    assert all(b - a >= 10 for a, b in zip([0, *sizes], sizes, strict=False))
    tree = MerkleTree(store.leaf_hashes("t1"))
    latest = store.checkpoint("t1")
    assert latest is not None and latest.size == 25
    assert store.latest_checkpoint("t1") == latest
    for c in store.checkpoints("t1"):
        head = verify_checkpoint(c.note, log_verifiers([SIGNER.verifier], "t1"), origin=ORIGIN_T1)
        assert head.size == c.size and head.root_hash == tree.root(c.size)
    assert store.checkpoint("t1") == latest  # nothing new: the same checkpoint


def test_results_round_trip(backend: Backend) -> None:
    store = backend.open()
    assert store.get_result("t1", "default", "run-1") is None
    store.put_result("t1", "default", "run-1", b'{"verdict":"allowed"}')
    store.put_result("t1", "default", "run-1", b'{"verdict":"suspicious"}')
    assert store.get_result("t1", "default", "run-1") == b'{"verdict":"suspicious"}'


def test_migrate_is_idempotent(backend: Backend) -> None:
    store = backend.open()
    assert store.migrate() == store.migrate() >= 1


def test_store_survives_reopen(durable_backend: Backend) -> None:
    backend = durable_backend
    store = backend.open(checkpoint_every=5)
    fill(store, 12)
    store.close()
    again = backend.open(checkpoint_every=5)
    assert [e.seq for e in again.events("t1")] == list(range(12))
    ack = again.append([ev(100, run="run-0")])
    assert ack[0].seq == 12
    assert again.append([ev(3, run="run-0")])[0].duplicate
    assert verify_log(again, "t1", [SIGNER.verifier_key()]).problem is None


def test_log_verify_passes_on_a_good_store(backend: Backend) -> None:
    store = backend.open(checkpoint_every=8)
    fill(store, 30)
    store.checkpoint("t1")
    report = verify_log(store, "t1", [SIGNER.verifier_key()])
    assert report.problem is None and report.size == 30 and report.checkpoints >= 3


def test_log_verify_needs_the_trusted_key(backend: Backend) -> None:
    store = backend.open(checkpoint_every=8)
    fill(store, 10)
    other = Signer(SIGNER.name, Ed25519PrivateKey.from_private_bytes(bytes(32)))
    report = verify_log(store, "t1", [other.verifier_key()])
    assert (
        report.problem is not None
        and "checkpoint at size 10: note: no signature" in report.problem.reason
    )


@pytest.mark.parametrize(
    ("tamper", "seq", "reason"),
    [
        ("edit", 11, "leaf hash"),
        ("delete", 11, "missing"),
        ("swap", 11, "leaf hash"),
        ("insert", 11, "leaf hash"),
    ],
)
def test_log_verify_names_the_first_bad_entry(
    backend: Backend, tamper: str, seq: int, reason: str
) -> None:
    store = backend.open(checkpoint_every=8)
    fill(store, 20)
    t = SqlTamper(backend, store)
    if tamper == "edit":
        t.edit_digest("t1", 11)
    elif tamper == "delete":
        t.delete("t1", 11)
    elif tamper == "swap":
        t.swap("t1", 11, 15)
    else:
        t.insert("t1", 11)
    problem = verify_log(store, "t1", [SIGNER.verifier_key()]).problem
    assert problem is not None
    assert (problem.seq, reason in problem.reason) == (seq, True), str(problem)
