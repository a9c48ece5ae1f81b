"""C2SP signed notes and checkpoints."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sentrail.errors import SentrailError
from sentrail.evidence.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from sentrail.evidence.errors import EvidenceError
from sentrail.evidence.merkle import EMPTY_ROOT
from sentrail.evidence.note import Signer, Verifier, open_note, sign_note

# The golang.org/x/mod/sumdb/note example key and note (a second implementation's answer).
GO_SKEY_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = GO_TEXT + (
    "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfq"
    "dngotpRZb6KE6RyyBwJnAM=\n"
)


def go_signer() -> Signer:
    return Signer("PeterNeumann", Ed25519PrivateKey.from_private_bytes(GO_SKEY_SEED))


def test_go_known_answer() -> None:
    signer = go_signer()
    assert signer.key_id.hex() == "c74f20a3"
    assert signer.verifier_key() == GO_VKEY
    assert sign_note(GO_TEXT, signer) == GO_NOTE  # Ed25519 is deterministic
    assert open_note(GO_NOTE, [GO_VKEY]) == GO_TEXT
    assert open_note(GO_NOTE.encode(), [Verifier.parse(GO_VKEY)]) == GO_TEXT


def test_round_trip_and_multiple_signers() -> None:
    a = Signer("example.com/a", Ed25519PrivateKey.generate())
    b = Signer("example.com/b", Ed25519PrivateKey.generate())
    note = sign_note("hello\n\nworld\n", [a, b])
    assert open_note(note, [b.verifier_key()]) == "hello\n\nworld\n"
    assert open_note(note, [a.verifier]) == "hello\n\nworld\n"


def test_tampered_text_fails_with_the_key_named() -> None:
    with pytest.raises(EvidenceError, match="bad signature by key PeterNeumann\\+c74f20a3"):
        open_note(GO_NOTE.replace("cryptography", "cryptographY"), [GO_VKEY])


def test_wrong_key_and_unknown_key_name() -> None:
    other = Signer("PeterNeumann", Ed25519PrivateKey.generate())  # same name, other key ID
    with pytest.raises(EvidenceError, match="no signature by a known key"):
        open_note(GO_NOTE, [other.verifier_key()])
    stranger = Signer("someone.else", Ed25519PrivateKey.generate())
    with pytest.raises(EvidenceError, match=r"signed by: PeterNeumann\+c74f20a3"):
        open_note(GO_NOTE, [stranger.verifier_key()])
    # A known name and ID with a different key: the signature fails.
    forged = (
        GO_VKEY[: GO_VKEY.rindex("+") + 1]
        + base64.b64encode(b"\x01" + bytes(other.verifier.public_key.public_bytes_raw())).decode()
    )
    with pytest.raises(EvidenceError, match="key ID does not match"):
        Verifier.parse(forged)


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        ("no newline", "must end with a newline"),
        ("text\n— PeterNeumann abc=\n", "no blank line"),
        ("text\n\n", "no signature lines"),
        ("text\n\n- PeterNeumann AAAAAAAA\n", "em dash"),
        ("text\n\n— PeterNeumann !!!\n", "not base64"),
        ("text\n\n— PeterNeumann AAA=\n", "shorter than a key ID"),
        ("te\x07xt\n\n— PeterNeumann AAAAAAAA\n", "control character"),
    ],
)
def test_malformed_notes(note: str, reason: str) -> None:
    with pytest.raises(EvidenceError, match=reason) as info:
        open_note(note, [GO_VKEY])
    assert isinstance(info.value, SentrailError)


def test_bad_key_names_and_text() -> None:
    for name in ("", "a b", "a+b"):
        with pytest.raises(EvidenceError):
            Signer(name, Ed25519PrivateKey.generate())
    with pytest.raises(EvidenceError, match="newline"):
        sign_note("no newline", go_signer())


ORIGIN = "example.com/log"


def test_checkpoint_round_trip() -> None:
    signer = Signer(ORIGIN, Ed25519PrivateKey.generate())
    cp = Checkpoint(ORIGIN, 20852163, bytes(range(32)), ("ext one",))
    text = cp.format()
    assert text == f"{ORIGIN}\n20852163\n{base64.b64encode(bytes(range(32))).decode()}\next one\n"
    assert Checkpoint.parse(text) == cp
    note = sign_checkpoint(cp, signer)
    assert verify_checkpoint(note, [signer.verifier_key()], origin=ORIGIN) == cp
    assert Checkpoint.parse(Checkpoint(ORIGIN, 0, EMPTY_ROOT).format()).size == 0
    with pytest.raises(EvidenceError, match="not the expected"):
        verify_checkpoint(note, [signer.verifier_key()], origin="other")
    with pytest.raises(EvidenceError, match="cannot sign for origin"):
        sign_checkpoint(cp, Signer("other", Ed25519PrivateKey.generate()))


def test_checkpoint_signed_by_a_key_not_named_after_the_origin() -> None:
    witness = Signer("witness.example", Ed25519PrivateKey.generate())
    note = sign_note(Checkpoint(ORIGIN, 1, bytes(32)).format(), witness)
    with pytest.raises(EvidenceError, match="no verified signature by the log key"):
        verify_checkpoint(note, [witness.verifier])


ROOT64 = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        (f"{ORIGIN}\n1\n", "checkpoint", "at least three lines"),
        (f"{ORIGIN}\n01\n{ROOT64}\n", "line 2", "leading zeroes"),
        (f"{ORIGIN}\n-1\n{ROOT64}\n", "line 2", "not a decimal"),
        (f"{ORIGIN}\n１\n{ROOT64}\n", "line 2", "not a decimal"),
        (f"{ORIGIN}\n1\n{ROOT64[:-4]}\n", "line 3", "32 bytes"),
        (f"{ORIGIN}\n1\nnot base64!\n", "line 3", "not base64"),
        (f"{ORIGIN}\n1\n{ROOT64}\n\nx\n", "line 4", "empty line"),
        (f"\n1\n{ROOT64}\n", "line 1", "empty line"),
        (f"{ORIGIN}\n1\n{ROOT64}", "checkpoint", "newline"),
    ],
)
def test_checkpoint_parse_errors(text: str, where: str, reason: str) -> None:
    with pytest.raises(EvidenceError, match=reason) as info:
        Checkpoint.parse(text)
    assert where in info.value.location
