"""Evidence bundles: round trip and every rejection, with clear reasons."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from contextlib import nullcontext
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sentrail.evidence.bundle import (
    INDEX,
    MANIFEST,
    PAYLOADS,
    PREDICATE_TYPE,
    PROOFS,
    EventRecord,
    build_bundle,
    write_zip,
)
from sentrail.evidence.chain import GENESIS, EventLeaf
from sentrail.evidence.checkpoint import Checkpoint, log_signer, sign_checkpoint
from sentrail.evidence.dsse import IN_TOTO_PAYLOAD_TYPE, make_statement, sign_envelope
from sentrail.evidence.errors import EvidenceError
from sentrail.evidence.merkle import MerkleTree, leaf_hash
from sentrail.evidence.note import Signer
from sentrail.evidence.verify import read_members, verify_bundle

ORIGIN = "test.sentrail.local/log"
SIGNER = Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


def make_log(
    n_run: int = 12, redact: frozenset[int] = frozenset()
) -> tuple[MerkleTree, list[EventRecord]]:
    """A tenant log where run-1's events are interleaved with another run's."""
    tree, records, prev = MerkleTree(), [], GENESIS
    for i in range(n_run * 2):
        seq = len(tree)
        if i % 2:
            other = EventLeaf("t1", seq, "run-2", f"x{i}", "step", bytes(32), GENESIS)
            tree.append(leaf_hash(other.leaf_data()))
            continue
        payload = json.dumps({"step": i, "tool": "db.query"}).encode()
        digest = hashlib.sha256(payload).digest()
        leaf = EventLeaf("t1", seq, "run-1", f"e{i}", "step", digest, prev)
        tree.append(leaf_hash(leaf.leaf_data()))
        chained = leaf.chain_hash()
        kept = None if len(records) in redact else payload
        records.append(EventRecord(seq, "run-1", f"e{i}", "step", kept, digest, prev, chained))
        prev = chained
    for j in range(5):  # later events of the tenant, up to the checkpoint
        tree.append(leaf_hash(f"later {j}".encode()))
    return tree, records


def make_bundle(tmp_path: Path, **kw: object) -> tuple[Path, list[EventRecord]]:
    tree, records = make_log(**kw)  # type: ignore[arg-type]
    note = sign_checkpoint(Checkpoint(ORIGIN, len(tree), tree.root()), SIGNER)
    path = tmp_path / "bundle.zip"
    build_bundle(path, tenant="t1", run_id="run-1", events=records, tree=tree,
                 checkpoint_note=note, signer=SIGNER, findings=b'{"findings": []}',
                 tree_size=records[-1].seq + 1)  # fmt: skip
    return path, records


def rewrite(path: Path, change: dict[str, bytes | None], resign: bool = False) -> None:
    """Change members (None removes one); with ``resign`` re-sign the manifest with the
    real key, as a compromised exporter could: the deeper checks must still catch it."""
    files = read_members(path)
    for name, data in change.items():
        if data is None:
            files.pop(name, None)
        else:
            files[name] = data
    if resign:
        statement = json.loads(base64.b64decode(json.loads(files[MANIFEST])["payload"]))
        subjects = {n: hashlib.sha256(d).hexdigest() for n, d in files.items() if n != MANIFEST}
        payload = make_statement(subjects, PREDICATE_TYPE, statement["predicate"])
        files[MANIFEST] = msgspec.json.encode(sign_envelope(payload, IN_TOTO_PAYLOAD_TYPE, SIGNER))
    path.unlink()
    write_zip(path, files)


def index(path: Path) -> dict[str, object]:
    return json.loads(read_members(path)[INDEX])


def test_round_trip(tmp_path: Path) -> None:
    path, records = make_bundle(tmp_path)
    report = verify_bundle(path, trusted_key=SIGNER.verifier_key())
    assert report.events == len(records) == 12
    assert (report.run_id, report.tenant, report.key_pinned) == ("run-1", "t1", True)
    assert (report.tree_size, report.checkpoint_size) == (23, 29)  # 24 + 5 later leaves
    assert report.head_chain_hash == records[-1].chain_hash.hex()
    assert not verify_bundle(path).key_pinned
    members = read_members(path)
    assert members[PAYLOADS] == b"".join(r.payload or b"" for r in records)  # exact bytes


def test_redacted_payloads_still_verify(tmp_path: Path) -> None:
    path, _ = make_bundle(tmp_path, redact=frozenset({2, 5}))
    report = verify_bundle(path, trusted_key=SIGNER.verifier_key())
    assert report.redacted_seqs == (4, 10)


def test_every_flipped_byte_is_rejected(tmp_path: Path) -> None:
    path, _ = make_bundle(tmp_path)
    original = read_members(path)
    for name, data in original.items():
        for pos in sorted({0, len(data) // 2, len(data) - 1}):
            flipped = bytearray(data)
            flipped[pos] ^= 0x01
            rewrite(path, {name: bytes(flipped)})
            with pytest.raises(EvidenceError) as info:
                verify_bundle(path, trusted_key=SIGNER.verifier_key())
            assert name in str(info.value) or MANIFEST in str(info.value), str(info.value)
            rewrite(path, {name: data})
    verify_bundle(path, trusted_key=SIGNER.verifier_key())


def test_flipped_byte_in_the_raw_zip(tmp_path: Path) -> None:
    path, _ = make_bundle(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3] ^= 0x40
    path.write_bytes(bytes(raw))
    with pytest.raises(EvidenceError):
        verify_bundle(path, trusted_key=SIGNER.verifier_key())


def _events_edit(path: Path, edit: object) -> None:
    doc = index(path)
    edit(doc["events"])  # type: ignore[operator]
    rewrite(path, {INDEX: json.dumps(doc).encode()}, resign=True)


def test_removed_event(tmp_path: Path) -> None:
    path, _ = make_bundle(tmp_path, redact=frozenset(range(12)))  # no payload offsets
    doc = index(path)
    doc["events"].pop(5)  # type: ignore[attr-defined]
    rewrite(path, {INDEX: json.dumps(doc).encode()})
    with pytest.raises(EvidenceError, match=f"{INDEX}: SHA-256 does not match"):
        verify_bundle(path, trusted_key=SIGNER.verifier_key())
    rewrite(path, {}, resign=True)  # re-signed, but the signed count is still 12
    with pytest.raises(EvidenceError, match="11 events, but the signed manifest says 12"):
        verify_bundle(path, trusted_key=SIGNER.verifier_key())


def test_removed_event_detected_by_the_chain(tmp_path: Path) -> None:
    path, _ = make_bundle(tmp_path, redact=frozenset(range(12)))
    proofs = json.loads(read_members(path)[PROOFS])
    proofs["inclusion"].pop(5)
    rewrite(path, {PROOFS: json.dumps(proofs).encode()})
    _events_edit(path, lambda ev: ev.pop(5))
    # The count in the signed predicate is checked first; fix it up to reach the chain.
    files = read_members(path)
    env = json.loads(files[MANIFEST])
    stmt = json.loads(base64.b64decode(env["payload"]))
    stmt["predicate"]["events"] = 11
    subjects = {n: hashlib.sha256(d).hexdigest() for n, d in files.items() if n != MANIFEST}
    payload = make_statement(subjects, PREDICATE_TYPE, stmt["predicate"])
    rewrite(path, {MANIFEST: msgspec.json.encode(sign_envelope(payload, IN_TOTO_PAYLOAD_TYPE,
                                                               SIGNER))})  # fmt: skip
    with pytest.raises(EvidenceError, match="chain broken") as info:
        verify_bundle(path, trusted_key=SIGNER.verifier_key())
    assert "event 5 (seq 12)" in str(info.value)


def test_swapped_steps(tmp_path: Path) -> None:
    path, _ = make_bundle(tmp_path, redact=frozenset(range(12)))

    def swap(ev: list[object]) -> None:
        ev[3], ev[4] = ev[4], ev[3]

    _events_edit(path, swap)
    with pytest.raises(EvidenceError, match=r"chain broken.*reordered") as info:
        verify_bundle(path, trusted_key=SIGNER.verifier_key())
    assert "event 3 (seq 8)" in str(info.value)


def test_duplicated_step(tmp_path: Path) -> None:
    path, _ = make_bundle(tmp_path, redact=frozenset(range(12)))

    def dup(ev: list[object]) -> None:
        ev[4] = ev[3]

    _events_edit(path, dup)
    with pytest.raises(EvidenceError, match="out of order") as info:
        verify_bundle(path, trusted_key=SIGNER.verifier_key())
    assert "event 4 (seq 6)" in str(info.value)


def test_forged_or_missing_signature(tmp_path: Path) -> None:
    path, _ = make_bundle(tmp_path)
    mallory = Signer(ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(EvidenceError, match="no valid signature by a trusted key"):
        verify_bundle(path, trusted_key=mallory.verifier_key())
    rewrite(path, {MANIFEST: None})
    with pytest.raises(EvidenceError, match="no signed manifest"):
        verify_bundle(path, trusted_key=SIGNER.verifier_key())


def test_bundle_re_signed_by_another_key(tmp_path: Path) -> None:
    path, _ = make_bundle(tmp_path)
    mallory = Signer(ORIGIN, Ed25519PrivateKey.generate())
    files = read_members(path)
    files["keys.pub"] = (mallory.verifier_key() + "\n").encode()
    stmt = json.loads(base64.b64decode(json.loads(files[MANIFEST])["payload"]))
    subjects = {n: hashlib.sha256(d).hexdigest() for n, d in files.items() if n != MANIFEST}
    payload = make_statement(subjects, PREDICATE_TYPE, stmt["predicate"])
    forged = msgspec.json.encode(sign_envelope(payload, IN_TOTO_PAYLOAD_TYPE, mallory))
    rewrite(path, {MANIFEST: forged, "keys.pub": files["keys.pub"]})
    with pytest.raises(EvidenceError, match="no valid signature by a trusted key"):
        verify_bundle(path, trusted_key=SIGNER.verifier_key())
    # Unpinned, the bundle's own key is used: the checkpoint (real key) no longer verifies.
    with pytest.raises(EvidenceError, match="no signature by a known key"):
        verify_bundle(path)


def test_checkpoint_that_does_not_match_the_proofs(tmp_path: Path) -> None:
    path, _ = make_bundle(tmp_path)
    other = sign_checkpoint(Checkpoint(ORIGIN, 30, hashlib.sha256(b"x").digest()), SIGNER)
    rewrite(path, {"checkpoint.txt": other.encode()}, resign=True)
    with pytest.raises(EvidenceError, match=r"does not match proofs\.json"):
        verify_bundle(path, trusted_key=SIGNER.verifier_key())
    tree, _ = make_log()
    wrong_root = sign_checkpoint(Checkpoint(ORIGIN, len(tree), tree.root(3)), SIGNER)
    rewrite(path, {"checkpoint.txt": wrong_root.encode()}, resign=True)
    with pytest.raises(EvidenceError, match=r"consistency proof .* fails"):
        verify_bundle(path, trusted_key=SIGNER.verifier_key())


def test_bad_inclusion_proof(tmp_path: Path) -> None:
    path, _ = make_bundle(tmp_path)
    proofs = json.loads(read_members(path)[PROOFS])
    proofs["inclusion"][2] = proofs["inclusion"][3]
    rewrite(path, {PROOFS: json.dumps(proofs).encode()}, resign=True)
    with pytest.raises(EvidenceError, match="inclusion proof does not verify") as info:
        verify_bundle(path, trusted_key=SIGNER.verifier_key())
    assert "event 2 (seq 4)" in str(info.value)


def test_payload_edit_is_named(tmp_path: Path) -> None:
    path, _ = make_bundle(tmp_path)
    data = bytearray(read_members(path)[PAYLOADS])
    data[0] ^= 1
    rewrite(path, {PAYLOADS: bytes(data)}, resign=True)
    with pytest.raises(EvidenceError, match="payload bytes do not match") as info:
        verify_bundle(path, trusted_key=SIGNER.verifier_key())
    assert "event 0 (seq 0)" in str(info.value)


def test_manifest_listing_must_match_the_zip(tmp_path: Path) -> None:
    path, _ = make_bundle(tmp_path)
    rewrite(path, {"findings.json": None})
    with pytest.raises(EvidenceError, match="missing from the zip"):
        verify_bundle(path, trusted_key=SIGNER.verifier_key())


def _raw_zip(path: Path, name: str, data: bytes = b"x") -> None:
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(name, data)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../evil.sh", "unsafe member path"),
        ("/etc/passwd", "unsafe member path"),
        ("events/../../x", "unsafe member path"),
        ("extra.txt", "unexpected member"),
        ("findings.json", "duplicate member"),
    ],
)
def test_hostile_zip_members(tmp_path: Path, name: str, reason: str) -> None:
    path, _ = make_bundle(tmp_path)
    with pytest.warns(UserWarning) if name == "findings.json" else nullcontext():
        _raw_zip(path, name)
    with pytest.raises(EvidenceError, match=reason):
        verify_bundle(path, trusted_key=SIGNER.verifier_key())


def test_oversized_member_and_not_a_zip(tmp_path: Path) -> None:
    path, _ = make_bundle(tmp_path)
    with pytest.raises(EvidenceError, match="larger than the limit"):
        verify_bundle(path, trusted_key=SIGNER.verifier_key(), max_member_bytes=100)
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(EvidenceError, match="not a readable zip"):
        verify_bundle(junk)


def test_exporter_refuses_inconsistent_input(tmp_path: Path) -> None:
    tree, records = make_log()
    note = sign_checkpoint(Checkpoint(ORIGIN, len(tree), tree.root()), SIGNER)
    bad = [records[1], records[0], *records[2:]]
    with pytest.raises(EvidenceError, match="does not continue the run's chain"):
        build_bundle(tmp_path / "b.zip", tenant="t1", run_id="run-1", events=bad, tree=tree,
                     checkpoint_note=note, signer=SIGNER)  # fmt: skip
    stale = sign_checkpoint(Checkpoint(ORIGIN, len(tree), tree.root(4)), SIGNER)
    with pytest.raises(EvidenceError, match="checkpoint's root"):
        build_bundle(tmp_path / "b.zip", tenant="t1", run_id="run-1", events=records, tree=tree,
                     checkpoint_note=stale, signer=SIGNER)  # fmt: skip


def make_v2_bundle(tmp_path: Path) -> Path:
    """A run whose first two events are version 1 leaves and the rest version 2."""
    tree, records, prev = MerkleTree(), [], GENESIS
    for seq in range(5):
        payload = json.dumps({"step": seq}).encode()
        digest = hashlib.sha256(payload).digest()
        version = 1 if seq < 2 else 2
        leaf = EventLeaf("t1", seq, "run-1", f"e{seq}", "step", digest, prev,
                         "pay", 1_760_000_000.5 + seq, True, version)  # fmt: skip
        tree.append(leaf_hash(leaf.leaf_data()))
        records.append(EventRecord(seq, "run-1", f"e{seq}", "step", payload, digest, prev,
                                   leaf.chain_hash(), None, "pay", 1_760_000_000.5 + seq,
                                   True, version))  # fmt: skip
        prev = leaf.chain_hash()
    log_key = log_signer(SIGNER, "t1")  # the tenant log's origin, signed by the log key
    note = sign_checkpoint(Checkpoint(log_key.name, len(tree), tree.root()), log_key)
    path = tmp_path / "v2.zip"
    build_bundle(path, tenant="t1", run_id="run-1", events=records, tree=tree,
                 checkpoint_note=note, signer=SIGNER)  # fmt: skip
    return path


def test_version_2_leaves_verify_and_bind_app_time_and_seal(tmp_path: Path) -> None:
    path = make_v2_bundle(tmp_path)
    report = verify_bundle(path, trusted_key=SIGNER.verifier_key())
    assert (report.app, report.events, report.checkpoint_origin) == (
        "pay",
        5,
        "test.sentrail.local/log/t1",
    )
    doc = index(path)
    events = doc["events"]  # type: ignore[index]
    assert [e["leaf_version"] for e in events] == [1, 1, 2, 2, 2]
    edits = {
        "received_at": lambda d: d["events"][3].update(received_at=0.0),
        "sealed": lambda d: d["events"][3].update(sealed=False),
        "version": lambda d: d["events"][1].update(leaf_version=2, received_at=0.0),
        "downgrade": lambda d: d["events"][4].update(leaf_version=1),
    }
    for name, edit in edits.items():
        changed = json.loads(json.dumps(doc))
        edit(changed)
        copy = tmp_path / f"{name}.zip"
        copy.write_bytes(path.read_bytes())
        rewrite(copy, {INDEX: json.dumps(changed).encode()}, resign=True)
        with pytest.raises(EvidenceError):
            verify_bundle(copy, trusted_key=SIGNER.verifier_key())
    moved = json.loads(json.dumps(doc))
    moved["app"] = "web"  # another app: the index and the signed manifest disagree ...
    copy = tmp_path / "moved.zip"
    copy.write_bytes(path.read_bytes())
    rewrite(copy, {INDEX: json.dumps(moved).encode()}, resign=True)
    with pytest.raises(EvidenceError, match="tenant, app or run id differs"):
        verify_bundle(copy, trusted_key=SIGNER.verifier_key())
