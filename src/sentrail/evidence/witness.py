"""C2SP witness formats: the ``add-checkpoint`` request and Ed25519 cosignatures.

A witness (https://c2sp.org/tlog-witness) keeps, per log origin, the latest checkpoint it
verified, and cosigns a new one only when the log proves it consistent with that one. The
request body of ``POST <prefix>/add-checkpoint``::

    old <size of the witness's latest checkpoint>
    <base64 hash>                 zero to 63 lines: the RFC 9162 consistency proof
                                  from the old size to the checkpoint's size
    <empty line>
    <the signed checkpoint note>

A 409 answer (``Content-Type: text/x.tlog.size``) is the size the witness holds, to
retry with. A 200 answer is one or more note signature lines: cosignatures
(https://c2sp.org/tlog-cosignature, Ed25519 "cosignature/v1"), whose key ID is
``SHA-256(name || "\\n" || 0x04 || public key)[:4]``, whose signature blob is
``key ID || u64 BE timestamp || Ed25519 signature`` and whose signed message is::

    cosignature/v1
    time <timestamp>
    <the checkpoint note text, without its signatures>

Pure functions, no I/O: the transport is :mod:`sentrail.store.witness`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sentrail.evidence.errors import EvidenceError
from sentrail.evidence.note import SIG_PREFIX, split_note, split_vkey

COSIGNATURE_V1 = 0x04
MAX_PROOF_LINES = 63
SIZE_CONTENT_TYPE = "text/x.tlog.size"
_U64 = struct.Struct(">Q")


def add_checkpoint_body(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """The ``add-checkpoint`` request body (see the module docstring)."""
    if old_size < 0 or len(proof) > MAX_PROOF_LINES:
        raise EvidenceError("old size below zero or a proof longer than 63 hashes", "witness")
    lines = [f"old {old_size}\n", *(base64.b64encode(h).decode() + "\n" for h in proof), "\n"]
    return ("".join(lines) + note).encode()


def parse_add_checkpoint(body: bytes) -> tuple[int, list[bytes], str]:
    """The old size, proof and note of an ``add-checkpoint`` body (a witness's side)."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise EvidenceError("not UTF-8", "add-checkpoint") from None
    head, sep, note = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or not lines[0].startswith("old "):
        raise EvidenceError("the body starts with 'old <size>' and a blank line", "add-checkpoint")
    size = lines[0][4:]
    if not size.isascii() or not size.isdigit() or (size != "0" and size.startswith("0")):
        raise EvidenceError("the old size is not a decimal", "add-checkpoint: line 1")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise EvidenceError("more than 63 proof lines", "add-checkpoint")
    proof = []
    for n, line in enumerate(lines[1:], start=2):
        try:
            raw = base64.b64decode(line, validate=True)
        except binascii.Error:
            raw = b""
        if len(raw) != 32:
            raise EvidenceError("a proof line is one base64 hash", f"add-checkpoint: line {n}")
        proof.append(raw)
    return int(size), proof, note


def parse_size(body: bytes) -> int:
    """The tree size of a 409 ``text/x.tlog.size`` answer."""
    text = body.decode("ascii", "replace")
    if not text.endswith("\n") or not text[:-1].isdigit() or len(text) > 21:
        raise EvidenceError("not a tree size line", "witness answer")
    return int(text[:-1])


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([COSIGNATURE_V1]) + public_key).digest()[:4]


def _message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


@dataclass(frozen=True)
class Cosigner:
    """A witness's Ed25519 cosigning key (public), as a vkey ``name+id+base64(0x04||key)``."""

    name: str
    public_key: Ed25519PublicKey

    @property
    def key_id(self) -> bytes:
        return cosigner_key_id(self.name, _raw(self.public_key))

    def vkey(self) -> str:
        blob = base64.b64encode(bytes([COSIGNATURE_V1]) + _raw(self.public_key)).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    @classmethod
    def parse(cls, vkey: str) -> Cosigner:
        name, claimed, public = split_vkey(vkey, COSIGNATURE_V1, "witness key")
        cosigner = cls(name, Ed25519PublicKey.from_public_bytes(public))
        if cosigner.key_id != claimed:
            raise EvidenceError("the key ID does not match the key", f"witness key {name}")
        return cosigner


def cosign(note: str, name: str, key: Ed25519PrivateKey, timestamp: int) -> str:
    """The cosignature line of witness ``name`` on checkpoint ``note`` (a witness's side)."""
    text, _ = split_note(note)
    sig = key.sign(_message(text, timestamp))
    kid = cosigner_key_id(name, _raw(key.public_key()))
    return f"{SIG_PREFIX}{name} {base64.b64encode(kid + _U64.pack(timestamp) + sig).decode()}\n"


def verify_cosignatures(
    note: str, lines: str, cosigners: Iterable[Cosigner]
) -> list[tuple[str, int]]:
    """The (witness name, timestamp) of every line by a known cosigner that verifies on
    ``note``; lines of unknown keys are ignored, a known key's bad line is an error."""
    text, _ = split_note(note)
    _, sigs = split_note(text + "\n" + lines)
    known = {(c.name, c.key_id): c for c in cosigners}
    out = []
    for name, kid, blob in sigs:
        c = known.get((name, kid))
        if c is None:
            continue
        if len(blob) != 8 + 64:
            raise EvidenceError(f"malformed cosignature by {name}", "witness answer")
        (timestamp,) = _U64.unpack(blob[:8])
        try:
            c.public_key.verify(blob[8:], _message(text, timestamp))
        except InvalidSignature:
            raise EvidenceError(f"bad cosignature by witness {name}", "witness answer") from None
        out.append((name, timestamp))
    return out
