"""Hash chain, key store and DSSE / in-toto."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from sentrail.evidence.chain import (
    CHAIN_DOMAIN,
    GENESIS,
    EventLeaf,
    chain_hash,
    leaf_data_after,
    run_prefix,
    verify_chain,
)
from sentrail.evidence.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from sentrail.evidence.dsse import (
    IN_TOTO_PAYLOAD_TYPE,
    make_statement,
    parse_statement,
    sign_envelope,
    verify_envelope,
)
from sentrail.evidence.errors import EvidenceError
from sentrail.evidence.keys import KeyStore, default_home
from sentrail.evidence.note import Signer


def test_chain_definition_and_first_bad_link() -> None:
    digests = [hashlib.sha256(bytes([i])).digest() for i in range(5)]
    links, prev = [], GENESIS
    for d in digests:
        prev = chain_hash(prev, d)
        links.append((d, prev))
    assert links[0][1] == hashlib.sha256(CHAIN_DOMAIN + bytes(32) + digests[0]).digest()
    assert verify_chain(links) is None
    assert verify_chain([links[0], links[2], links[3]]) == 1  # removed
    assert verify_chain([links[1], links[0]]) == 0  # reordered
    bad = list(links)
    bad[3] = (bad[3][0], bytes(32))
    assert verify_chain(bad) == 3
    with pytest.raises(EvidenceError):
        chain_hash(b"short", digests[0])


def test_leaf_data_is_unambiguous() -> None:
    a = EventLeaf("t", 1, "ab", "c", "k", bytes(32), GENESIS)
    b = EventLeaf("t", 1, "a", "bc", "k", bytes(32), GENESIS)
    assert a.leaf_data() != b.leaf_data()
    assert a.leaf_data().startswith(b"sentrail.evidence.leaf.v1\x00\x00\x00\x00\x01t")
    assert a.leaf_data().endswith((1).to_bytes(8, "big") + bytes(64))


def test_key_store_creates_private_files_and_rotates(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", name="example.com/log")
    first = store.ensure()
    assert store.ensure().verifier_key() == first.verifier_key()  # idempotent
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    pem = tmp_path / "keys" / f"{first.key_id.hex()}.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert pem.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    old_note = sign_checkpoint(Checkpoint("example.com/log", 1, bytes(32)), first)

    second = store.rotate()
    assert second.key_id != first.key_id
    assert store.active().verifier_key() == second.verifier_key()
    assert not pem.exists()  # a rotated key can no longer sign
    records = store.records()
    assert [r.key_id for r in records] == [first.key_id.hex(), second.key_id.hex()]
    assert records[0].retired is not None and records[1].retired is None
    assert verify_checkpoint(old_note, store.verifiers()).size == 1
    for f in (tmp_path / "keys").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600


def test_key_store_refuses_readable_private_keys(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    signer = store.ensure()
    os.chmod(tmp_path / f"{signer.key_id.hex()}.pem", 0o644)
    with pytest.raises(EvidenceError, match="must be 0600"):
        store.active()


def test_default_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SENTRAIL_HOME", str(tmp_path))
    assert default_home() == tmp_path
    monkeypatch.delenv("SENTRAIL_HOME")
    assert default_home() == Path.home() / ".sentrail"


def test_statement_and_envelope_round_trip() -> None:
    signer = Signer("example.com/log", Ed25519PrivateKey.generate())
    digest = hashlib.sha256(b"x").hexdigest()
    payload = make_statement({"a.txt": digest}, "https://example.com/p/v1", {"n": 100000})
    raw = json.loads(payload)
    assert raw["_type"] == "https://in-toto.io/Statement/v1"
    assert raw["subject"] == [{"name": "a.txt", "digest": {"sha256": digest}}]
    assert raw["predicate"] == {"n": 100000}  # an int, not 100000.0
    env = sign_envelope(payload, IN_TOTO_PAYLOAD_TYPE, signer)
    assert set(env) == {"payload", "payloadType", "signatures"}
    assert env["signatures"][0]["keyid"] == signer.key_ref
    assert base64.b64decode(env["payload"]) == payload
    assert verify_envelope(env, [signer.verifier]) == payload
    assert parse_statement(payload).subject[0].name == "a.txt"

    # Sign PAE by hand: DSSE v1 "DSSEv1 <len> <type> <len> <payload>".
    pae = b"DSSEv1 %d %b %d %b" % (len(IN_TOTO_PAYLOAD_TYPE), IN_TOTO_PAYLOAD_TYPE.encode(),
                                   len(payload), payload)  # fmt: skip
    signer.verifier.public_key.verify(base64.b64decode(env["signatures"][0]["sig"]), pae)


def test_envelope_rejections() -> None:
    signer = Signer("example.com/log", Ed25519PrivateKey.generate())
    other = Signer("example.com/log", Ed25519PrivateKey.generate())
    payload = make_statement({"a": "0" * 64}, "https://example.com/p", {"k": "v"})
    env = sign_envelope(payload, IN_TOTO_PAYLOAD_TYPE, signer)
    with pytest.raises(EvidenceError, match="no valid signature by a trusted key"):
        verify_envelope(env, [other.verifier])
    tampered = {**env, "payload": base64.b64encode(payload.replace(b"v", b"w")).decode()}
    with pytest.raises(EvidenceError, match="no valid signature"):
        verify_envelope(tampered, [signer.verifier])
    with pytest.raises(EvidenceError, match="not signed"):
        verify_envelope({**env, "signatures": []}, [signer.verifier])
    with pytest.raises(EvidenceError, match="payloadType"):
        verify_envelope({**env, "payloadType": "text/plain"}, [signer.verifier])
    with pytest.raises(EvidenceError, match="malformed"):
        verify_envelope({"payload": 1}, [signer.verifier])
    with pytest.raises(EvidenceError, match="not JSON"):
        verify_envelope(b"{", [signer.verifier])
    with pytest.raises(EvidenceError, match="SHA-256"):
        make_statement({"a": "xyz"}, "p", {"k": 1})
    with pytest.raises(EvidenceError, match="Statement"):
        make_statement({"a": "0" * 64}, "p", {})  # the library requires a predicate


ids = st.text(min_size=1, max_size=12)


@given(st.sampled_from([1, 2]), ids, ids, ids, ids, ids, st.integers(0, 2**64 - 1),
       st.floats(allow_nan=False), st.booleans())  # fmt: skip
def test_the_run_prefixed_encoding_is_the_leafs_in_both_versions(
    version: int, tenant: str, app: str, run: str, event_id: str, kind: str, seq: int,
    at: float, sealed: bool,
) -> None:  # fmt: skip
    digest, prev = hashlib.sha256(b"p").digest(), hashlib.sha256(b"q").digest()
    leaf = EventLeaf(tenant, seq, run, event_id, kind, digest, prev, app, at, sealed, version)
    prefix = run_prefix(version, tenant, app, run)
    data = leaf_data_after(prefix, version, seq, event_id, kind, at, sealed, digest, prev)
    assert data == leaf.leaf_data()


def test_version_2_commits_to_app_time_and_seal_and_version_1_does_not() -> None:
    digest = hashlib.sha256(b"p").digest()
    base = EventLeaf("t", 1, "r", "e", "step", digest, GENESIS, "pay", 1.0, True, 2)
    for changed in ({"app": "web"}, {"received_at": 2.0}, {"sealed": False}):
        assert replace(base, **changed).leaf_data() != base.leaf_data()  # type: ignore[arg-type]
        v1 = replace(base, version=1)
        assert replace(v1, **changed).leaf_data() == v1.leaf_data()  # type: ignore[arg-type]
