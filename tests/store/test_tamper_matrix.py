"""The tamper matrix: every kind of edit a database writer can make, on both backends,
and which check detects it.

The world: a tenant with runs of two apps (whole traces and a stream), index rows, one
finding resolved through a logged triage event, checkpoints every 4 events, all received
an hour ago. Its latest checkpoint was saved outside (as ``log checkpoint`` prints it)
and cosigned by a tlog-witness on 127.0.0.1. Then one tampering, then four checks, each
on a freshly opened store:

- ``verify``: ``log verify`` (rows, chains, leaves, stored checkpoints, unsigned tail
  older than 300 s);
- ``deep``: ``log verify --deep`` (the index re-derived from the logged events);
- ``checkpoint``: the log against the checkpoint held outside (``--checkpoint``);
- ``witness``: the store's latest checkpoint shown to the witness (``--witness URL``).

Each kind lists the checks that must catch it; the kinds only an outside record can
catch also assert that ``verify`` does not (that is the limit of a log alone).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from sentrail.engine.engine import Engine
from sentrail.evidence.checkpoint import log_signer
from sentrail.runtime.deep_verify import EnginePicker, deep_verify
from sentrail.runtime.ingest import Ingestor
from sentrail.runtime.store_writer import StoreWriter
from sentrail.store.base import StoreError
from sentrail.store.core import LogStore
from sentrail.store.log_verify import Outside, outside_problem, verify_log
from sentrail.store.records import records
from sentrail.store.seal import aad, cipher, seal
from sentrail.store.triage import triage_finding
from sentrail.store.witness import HttpWitness, WitnessError
from tests.conftest import EXAMPLES
from tests.store.attacker import Attacker, Plain, edited
from tests.store.conftest import SIGNER, Backend
from tests.store.redaction_helpers import raw_rows
from tests.store.witness_stub import StubWitness, serve_witness

T = "t"
KEYS = [SIGNER.verifier_key()]
T0 = time.time() - 3600  # everything was received an hour ago
PAY_RUN = "run-e4b70d19-8c2f"  # prod-delete.json: unauthorized


@dataclass
class World:
    backend: Backend
    store: LogStore
    held: str  # the latest checkpoint, kept outside
    witness: StubWitness
    attacker: Attacker
    size: int

    def fresh(self) -> LogStore:
        return self.backend.open()


def build(backend: Backend, witness: StubWitness) -> World:
    store = backend.open(checkpoint_every=4, clock=lambda: T0)
    ingestor = Ingestor(store, Engine(), writer=StoreWriter(store, clock=lambda: T0))
    traces = EXAMPLES / "traces"
    done = ingestor.ingest_trace(T, "pay", (traces / "prod-delete.json").read_bytes())
    ingestor.ingest_trace(T, "pay", (traces / "exfil-base64.json").read_bytes())
    ingestor.ingest_trace(T, "web", (traces / "triage-restart.json").read_bytes())
    stream = (EXAMPLES / "events" / "triage-restart.ndjson").read_bytes()
    ingestor.ingest_events(T, "web", stream.replace(b"run-a4f8c312-9e7b", b"run-live"))
    first = done.result.findings[0].id
    triage_finding(store, T, "pay", first, resolved=True, by="alice", comment="ok", now=T0)
    cp = store.checkpoint(T)
    assert cp is not None and verify_log(store, T, KEYS, max_unsigned_age=300).problem is None
    HttpWitness(witness.url).submit(store, cp)
    assert witness.latest
    return World(backend, store, cp.note, witness, Attacker(backend, store, T), cp.size)


@pytest.fixture
def world(backend: Backend) -> Iterator[World]:
    origin = log_signer(SIGNER, T).name
    with serve_witness(StubWitness({origin: log_signer(SIGNER, T).verifier})) as witness:
        yield build(backend, witness)


# -- the checks ------------------------------------------------------------------------------
def detected(w: World) -> set[str]:
    store = w.fresh()
    out = set()
    if verify_log(store, T, KEYS, max_unsigned_age=300).problem is not None:
        out.add("verify")
    if deep_verify(store, T, EnginePicker(store, Engine())).disagreements:
        out.add("deep")
    if outside_problem(store, T, KEYS, Outside(w.held, "the held checkpoint")) is not None:
        out.add("checkpoint")
    latest = store.latest_checkpoint(T)
    try:
        if latest is None:
            raise WitnessError("no checkpoint to show the witness")
        HttpWitness(w.witness.url).submit(store, latest)
    except StoreError:  # refused, or no proof can be made from the rows
        out.add("witness")
    return out


# -- the tamperings --------------------------------------------------------------------------
def _sql(w: World, stmt: str, *params: object) -> None:
    assert w.backend.sql is not None
    w.backend.sql(stmt, params)


def _plaintext_of(w: World, seq: int) -> Plain:
    return w.attacker.events()[seq]


def edit_payload(w: World) -> None:  # another event's ciphertext in this row
    sql = "SELECT payload FROM events WHERE tenant_id = ? AND seq = 0"
    (blob,) = raw_rows(w.store, sql, (T,))[0]
    _sql(w, "UPDATE events SET payload = ? WHERE tenant_id = ? AND seq = 1", bytes(blob), T)


def edit_digest(w: World) -> None:
    _sql(w, "UPDATE events SET payload_sha256 = ? WHERE tenant_id = ? AND seq = 2", bytes(32), T)


def delete_row(w: World) -> None:
    _sql(w, "DELETE FROM events WHERE tenant_id = ? AND seq = 5", T)


def delete_tail(w: World) -> None:  # back to an earlier checkpoint, the later ones deleted
    sizes = [s for (s,) in raw_rows(w.store, "SELECT size FROM checkpoints ORDER BY size")]
    keep = sizes[-2]
    _sql(w, "DELETE FROM events WHERE tenant_id = ? AND seq >= ?", T, keep)
    w.attacker.delete_checkpoints(above=keep)


def reorder(w: World) -> None:
    for old, new in ((3, -1), (4, 3), (-1, 4)):
        _sql(w, "UPDATE events SET seq = ? WHERE tenant_id = ? AND seq = ?", new, T, old)


def insert(w: World) -> None:  # a copy of a row, the later seqs shifted
    w.attacker.rewrite(lambda ev: [*ev[:6], replace(ev[5], event_id="forged"), *ev[6:]])
    _sql(w, "UPDATE events SET leaf_hash = ? WHERE tenant_id = ? AND seq = 6", bytes(32), T)


def append_forged(w: World) -> None:  # correct hashes, received like the rest
    last = w.attacker.events()[-1]
    w.attacker.rewrite(lambda ev: [*ev, replace(last, event_id="forged", kind="step")])


def _drop_one(ev: list[Plain]) -> list[Plain]:
    """Event 2 dropped, the rest renumbered, and two more after (a longer log)."""
    late = [replace(ev[0], event_id=f"late-{i}", kind="note") for i in range(2)]
    return ev[:2] + ev[3:] + late


def rewrite_rehash(w: World) -> None:  # drop an event, renumber, rehash; checkpoints kept
    w.attacker.rewrite(_drop_one)


def rewrite_payload(w: World) -> None:  # same size, one payload changed, all rehashed
    w.attacker.rewrite(lambda ev: edited(ev, 1, b'{"run_id":"x","steps":[]}'))


def rewrite_delete_checkpoints(w: World) -> None:
    rewrite_rehash(w)
    w.attacker.delete_checkpoints()


def rewrite_forge_checkpoints(w: World) -> None:
    rewrite_rehash(w)
    w.attacker.delete_checkpoints()
    w.attacker.forge_checkpoint()


def rewrite_resign_with_the_log_key(w: World) -> None:  # an insider holding the key
    rewrite_rehash(w)
    w.attacker.delete_checkpoints()
    w.attacker.forge_checkpoint(SIGNER)


def delete_checkpoints(w: World) -> None:
    w.attacker.delete_checkpoints()


def move_run(w: World) -> None:  # a pay run, its key and index rows, moved to web
    for table in ("events", "run_keys", "runs", "steps", "findings", "results"):
        sql = f"UPDATE {table} SET app_id = 'web' WHERE tenant_id = ? AND run_id = ?"
        _sql(w, sql, T, PAY_RUN)


def flip_verdict(w: World) -> None:
    _sql(
        w,
        "UPDATE runs SET verdict = 'allowed', risk_score = 0 WHERE tenant_id = ? AND run_id = ?",
        T,
        PAY_RUN,
    )


def delete_finding(w: World) -> None:
    with records(w.store) as rtx:
        (row, *_) = [f for f in rtx.findings_of(T) if not f.resolved]
    _sql(w, "DELETE FROM findings WHERE tenant_id = ? AND finding_id = ?", T, row.finding_id)


def resolve_by_sql(w: World) -> None:
    sql = "UPDATE findings SET resolved = 1, resolved_by = 'x' WHERE tenant_id = ? AND resolved = 0"
    _sql(w, sql, T)


def edit_received_at(w: World) -> None:  # make a run look older (erased early) or newer
    sql = "UPDATE events SET received_at = received_at - 2592000 WHERE tenant_id = ? AND run_id = ?"
    _sql(w, sql, T, PAY_RUN)


def unseal_row(w: World) -> None:  # the plaintext at rest instead of the ciphertext
    plain = _plaintext_of(w, 1)
    _sql(
        w,
        "UPDATE events SET payload = ?, sealed = 0 WHERE tenant_id = ? AND seq = 1",
        plain.payload,
        T,
    )


def reseal_elsewhere(w: World) -> None:  # re-sealed under its key, but for another event id
    plain = _plaintext_of(w, 1)
    (dek,) = raw_rows(
        w.store, "SELECT dek FROM run_keys WHERE tenant_id = ? AND run_id = ?", (T, plain.run_id)
    )[0]
    blob = seal(
        cipher(bytes(dek)), b"\x00" * 12, plain.payload or b"", aad(T, plain.run_id, "other")
    )
    _sql(w, "UPDATE events SET payload = ? WHERE tenant_id = ? AND seq = 1", blob, T)


# kind: (tampering, the checks that must catch it, the checks that cannot)
MATRIX: dict[str, tuple[Callable[[World], None], set[str], set[str]]] = {
    "edit payload": (edit_payload, {"verify"}, set()),
    "edit payload, re-sealed for another event": (reseal_elsewhere, {"verify"}, set()),
    "edit digest": (edit_digest, {"verify", "checkpoint"}, set()),
    "delete row": (delete_row, {"verify", "checkpoint"}, set()),
    "delete tail (and its checkpoints)": (delete_tail, {"checkpoint", "witness"}, {"verify"}),
    "reorder": (reorder, {"verify", "checkpoint"}, set()),
    "insert": (insert, {"verify", "checkpoint"}, set()),
    "append forged row, correct hashes": (append_forged, {"verify"}, {"checkpoint"}),
    "rewrite a payload and rehash (checkpoints kept)": (
        rewrite_payload,
        {"verify", "checkpoint"},
        set(),
    ),
    "rewrite history and rehash (checkpoints kept)": (
        rewrite_rehash,
        {"verify", "checkpoint"},
        set(),
    ),
    "rewrite, rehash, delete checkpoints": (
        rewrite_delete_checkpoints,
        {"verify", "checkpoint", "witness"},
        set(),
    ),
    "rewrite, rehash, re-sign with own key": (
        rewrite_forge_checkpoints,
        {"verify", "checkpoint", "witness"},
        set(),
    ),
    "rewrite, rehash, re-sign with the log's key": (
        rewrite_resign_with_the_log_key,
        {"checkpoint", "witness"},
        {"verify"},
    ),
    "delete checkpoints": (delete_checkpoints, {"verify", "witness"}, set()),
    "move a run to another app": (move_run, {"verify", "checkpoint"}, set()),
    "flip a verdict": (flip_verdict, {"deep"}, {"verify"}),
    "delete a finding": (delete_finding, {"deep"}, {"verify"}),
    "resolve a finding by SQL": (resolve_by_sql, {"deep"}, {"verify"}),
    "edit received_at": (edit_received_at, {"verify", "checkpoint"}, set()),
    "unseal a row": (unseal_row, {"verify", "checkpoint"}, set()),
}


def test_the_untouched_world_passes_every_check(world: World) -> None:
    assert detected(world) == set()


@pytest.mark.parametrize("kind", list(MATRIX))
def test_every_tampering_is_detected(world: World, kind: str) -> None:
    tamper, must, cannot = MATRIX[kind]
    tamper(world)
    found = detected(world)
    assert must <= found, (kind, found)
    assert not (cannot & found), (kind, found)


def test_a_consistent_rewrite_is_caught_by_the_root_comparison_alone(world: World) -> None:
    """Item 17: the rows hold together (seqs, digests, seals, leaves, chains); only the
    stored checkpoints' roots differ from the rewritten log's."""
    world.attacker.rewrite(lambda ev: edited(ev, 1, b'{"run_id":"x","steps":[]}'))
    problem = verify_log(world.fresh(), T, KEYS).problem
    assert problem is not None and "differs from its checkpoint" in problem.reason, problem


def test_a_consistent_rewrite_without_checkpoints_is_caught_by_the_outside_record(
    world: World, tmp_path: Path
) -> None:
    """Item 17: rewritten, rehashed, checkpoint rows deleted (or forged with a key the log
    does not trust): the checkpoint held outside and the witness prove it."""
    world.attacker.rewrite(_drop_one)
    world.attacker.delete_checkpoints()
    store = world.fresh()
    held = Outside(world.held, "cp.txt")
    recent = verify_log(store, T, KEYS, outside=[held], max_unsigned_age=None).problem
    assert recent is not None and "from cp.txt" in recent.reason and "rewritten" in recent.reason
    world.attacker.forge_checkpoint()
    forged = verify_log(world.fresh(), T, KEYS).problem
    assert forged is not None and "no signature by a known key" in forged.reason


def test_tenants_have_separate_witness_states(world: World) -> None:
    """Each tenant log has its own origin: a witness keeps one state per tenant."""
    store = world.store
    Ingestor(store, Engine(), writer=StoreWriter(store, clock=lambda: T0)).ingest_trace(
        "other", "pay", (EXAMPLES / "traces" / "prod-delete.json").read_bytes()
    )
    other = log_signer(SIGNER, "other")
    world.witness.logs[other.name] = other.verifier
    cp = store.checkpoint("other")
    assert cp is not None
    HttpWitness(world.witness.url).submit(store, cp)
    assert set(world.witness.latest) == {log_signer(SIGNER, T).name, other.name}
    assert hashlib.sha256(json.dumps(sorted(world.witness.latest)).encode())
