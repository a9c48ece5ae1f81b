"""Witnesses: the C2SP formats, and every signed checkpoint pushed to a file and to a
tlog-witness on 127.0.0.1 (from the append path, the timer and on request)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from sentrail.evidence.checkpoint import log_signer
from sentrail.evidence.errors import EvidenceError
from sentrail.evidence.witness import (
    Cosigner,
    add_checkpoint_body,
    cosign,
    parse_add_checkpoint,
    verify_cosignatures,
)
from sentrail.store.base import NewEvent
from sentrail.store.checkpoint_timer import CheckpointTimer
from sentrail.store.log_verify import Outside, verify_log
from sentrail.store.witness import (
    FileWitness,
    HttpWitness,
    WitnessError,
    WitnessPublisher,
    attach,
    fetch_note,
)
from tests.store.conftest import SIGNER, Backend
from tests.store.witness_stub import StubWitness, serve_witness

KEYS = [SIGNER.verifier_key()]


def ev(i: int, tenant: str = "t1") -> NewEvent:
    return NewEvent(tenant, "app", f"run-{i % 3}", f"e{i}", "step", b'{"i":%d}' % i)


@pytest.fixture
def witness() -> Iterator[StubWitness]:
    logs = {log_signer(SIGNER, t).name: log_signer(SIGNER, t).verifier for t in ("t1", "t2")}
    with serve_witness(StubWitness(logs)) as w:
        yield w


# -- formats --------------------------------------------------------------------------------
@given(st.integers(0, 2**40), st.lists(st.binary(min_size=32, max_size=32), max_size=63))
def test_an_add_checkpoint_body_reads_back(old: int, proof: list[bytes]) -> None:
    note = "example.com/log\n5\n" + base64.b64encode(bytes(32)).decode() + "\n\n— k AAAA\n"
    assert parse_add_checkpoint(add_checkpoint_body(old, proof, note)) == (old, proof, note)


def test_cosignatures_verify_and_a_forged_one_is_refused() -> None:
    note = log_signer(SIGNER, "t1").name + "\n1\n" + base64.b64encode(bytes(32)).decode() + "\n"
    signed = note + "\n— x " + base64.b64encode(b"\x00" * 68).decode() + "\n"
    key = Ed25519PrivateKey.generate()
    line = cosign(signed, "w.example/1", key, 1_700_000_000)
    known = Cosigner("w.example/1", key.public_key())
    assert Cosigner.parse(known.vkey()) == known
    assert verify_cosignatures(signed, line, [known]) == [("w.example/1", 1_700_000_000)]
    stranger = Cosigner("w.example/2", Ed25519PrivateKey.generate().public_key())
    assert verify_cosignatures(signed, line, [stranger]) == []  # unknown keys are ignored
    other = cosign(signed.replace("\n1\n", "\n2\n"), "w.example/1", key, 1_700_000_000)
    with pytest.raises(EvidenceError, match="bad cosignature"):
        verify_cosignatures(signed, other, [known])


# -- pushing --------------------------------------------------------------------------------
def test_every_checkpoint_goes_to_the_file_and_the_witness(
    backend: Backend, witness: StubWitness, tmp_path: Path
) -> None:
    store = backend.open(checkpoint_every=4)
    file = tmp_path / "other-volume" / "witness.log"
    file.parent.mkdir()
    attach(store, [str(file), witness.url], [witness.cosigner])
    for start in range(0, 12, 3):  # the append path signs every 4 events
        store.append([ev(i) for i in range(start, start + 3)])
    store.append([ev(12), ev(100, "t2")])  # both tenants now past their latest checkpoint
    timer = CheckpointTimer(store)
    assert timer.tick() == 2  # the timer signs both grown tenants (no touch needed)
    signed = store.checkpoints("t1")
    store.close()  # flushes the publisher
    again = backend.open()
    pushed = FileWitness(file).notes("t1")  # the newest of each moment: none skipped at the end
    assert pushed[-1] == signed[-1].note and set(pushed) <= {c.note for c in signed}
    assert witness.latest[log_signer(SIGNER, "t1").name][0] == signed[-1].size == 13
    assert witness.latest[log_signer(SIGNER, "t2").name][0] == 1
    held = [Outside(n, "file") for n in FileWitness(file).notes("t1")]
    assert verify_log(again, "t1", KEYS, outside=held).problem is None


def test_a_witness_that_holds_a_state_is_asked_for_it_first(
    backend: Backend, witness: StubWitness
) -> None:
    store = backend.open()
    store.append([ev(i) for i in range(5)])
    first = store.checkpoint("t1")
    assert first is not None
    HttpWitness(witness.url).submit(store, first)
    store.append([ev(i) for i in range(5, 9)])
    later = store.checkpoint("t1")
    assert later is not None
    fresh = HttpWitness(witness.url, [witness.cosigner])  # knows nothing: old 0, then 409
    before = witness.requests
    assert [name for name, _ in fresh.submit(store, later)] == ["witness.test/w1"]
    assert witness.requests - before == 2
    assert witness.latest[log_signer(SIGNER, "t1").name][0] == 9


def test_a_witness_refuses_an_unknown_origin_and_a_rollback(
    backend: Backend, witness: StubWitness
) -> None:
    store = backend.open()
    store.append([ev(i, "t3") for i in range(3)])
    cp = store.checkpoint("t3")
    assert cp is not None
    with pytest.raises(WitnessError, match="does not know this log"):
        HttpWitness(witness.url).submit(store, cp)
    store.append([ev(i) for i in range(6)])
    big = store.checkpoint("t1")
    assert big is not None
    HttpWitness(witness.url).submit(store, big)
    small = type(big)("t1", 3, big.note)  # what a store cut back to 3 events would show
    with pytest.raises(WitnessError):
        HttpWitness(witness.url).submit(store, small)


def test_a_failing_witness_never_fails_the_log(backend: Backend, tmp_path: Path) -> None:
    store = backend.open(checkpoint_every=2)
    publisher = WitnessPublisher(store, [HttpWitness("http://127.0.0.1:9")])
    store.append([ev(i) for i in range(4)])  # signs in the append path; the push fails
    assert publisher.flush()
    publisher.close()
    assert publisher.failures >= 1 and len(store.checkpoints("t1")) >= 1


def test_a_checkpoint_is_read_from_a_file_or_the_apis_json(tmp_path: Path) -> None:
    note = "o\n1\n" + base64.b64encode(bytes(32)).decode() + "\n\n— o AAAAAAA=\n"
    (tmp_path / "cp.txt").write_text(note)
    (tmp_path / "cp.json").write_text(json.dumps({"note": note, "tree_size": 1}))
    assert fetch_note(str(tmp_path / "cp.txt")) == note
    assert fetch_note(f"file:{tmp_path / 'cp.json'}") == note
    (tmp_path / "bad.json").write_text('{"note": 5}')
    with pytest.raises(WitnessError, match="'note' string"):
        fetch_note(str(tmp_path / "bad.json"))
    with pytest.raises(WitnessError, match="cannot read"):
        fetch_note(str(tmp_path / "missing.txt"))


def test_a_store_that_signs_automatically_leaves_nothing_uncovered(backend: Backend) -> None:
    """A writer without a timer of its own (a gateway recording decisions) still has
    every event covered: within the delay, and when it closes."""
    store = backend.open()
    store.sign_automatically(0.01)
    store.append([ev(0)])
    deadline = time.monotonic() + 30
    while store.behind() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.behind() == [] and store.latest_checkpoint("t1") is not None
    store.append([ev(1), ev(2)])
    store.close()  # signs what is left
    again = backend.open()
    latest = again.latest_checkpoint("t1")
    assert latest is not None and latest.size == 3
    assert verify_log(again, "t1", KEYS, max_unsigned_age=0).problem is None
