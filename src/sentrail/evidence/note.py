"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys (type 0x01).

A signed note is UTF-8 text ending in a newline, a blank line, then one or more
signature lines ``"— <key name> <base64(key ID || signature)>\\n"`` (em dash U+2014,
space). The Ed25519 signature covers the note text including its final newline. The key
ID is ``SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]``.

A verifier key is written ``<name>+<key ID as 8 hex digits>+<base64(0x01 || public key)>``
(the form used by golang.org/x/mod/sumdb/note and transparency-log witnesses).

Opening a note follows the spec: signatures from unknown keys (name and ID not both
known) are ignored, a signature from a known key that does not verify rejects the note,
and a note with no verified signature from a known key is rejected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sentrail.evidence.errors import EvidenceError

ED25519 = 0x01
SIG_PREFIX = "— "  # em dash U+2014, space
MAX_NOTE_BYTES = 1 << 20
MAX_SIGNATURES = 100


def check_key_name(name: str) -> str:
    """``name`` if it is a valid key name: non-empty, no Unicode space, no ``+``."""
    if not name:
        raise EvidenceError("a key name must not be empty")
    if any(c.isspace() or c == "+" or ord(c) < 0x20 for c in name):
        raise EvidenceError(f"key name {name!r} contains a space, '+' or a control character")
    return name


def split_vkey(vkey: str, key_type: int, what: str) -> tuple[str, bytes, bytes]:
    """The name, claimed key ID and 32-byte Ed25519 key of a vkey
    ``name+<key ID as 8 hex>+base64(key type || key)`` of ``key_type``."""
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise EvidenceError(f"a {what} is name+keyid+base64key", what)
    name, hex_id, b64 = parts
    check_key_name(name)
    try:
        claimed = bytes.fromhex(hex_id) if len(hex_id) == 8 else b""
        raw = base64.b64decode(b64, validate=True)
    except (ValueError, binascii.Error):
        raise EvidenceError("bad key ID or base64 key", f"{what} {name}") from None
    if len(claimed) != 4:
        raise EvidenceError("the key ID must be 8 hex digits", f"{what} {name}")
    if len(raw) != 33 or raw[0] != key_type:
        raise EvidenceError(f"not an Ed25519 (type 0x{key_type:02x}) key", f"{what} {name}")
    return name, claimed, raw[1:]


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte C2SP key ID of an Ed25519 ``public_key`` (32 raw bytes) named ``name``."""
    data = name.encode() + b"\n" + bytes([ED25519]) + public_key
    return hashlib.sha256(data).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    """A trusted Ed25519 public key under a key name."""

    name: str
    public_key: Ed25519PublicKey

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, _raw_public(self.public_key))

    @property
    def key_ref(self) -> str:
        """``name+keyid`` (hex): how reports and DSSE envelopes name this key."""
        return f"{self.name}+{self.key_id.hex()}"

    def verifier_key(self) -> str:
        """The verifier key string ``name+hex(keyid)+base64(0x01||pubkey)``."""
        encoded = base64.b64encode(bytes([ED25519]) + _raw_public(self.public_key)).decode()
        return f"{self.key_ref}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """Read a verifier key string; the key ID in it must match the key."""
        name, claimed, public = split_vkey(vkey, ED25519, "verifier key")
        verifier = cls(name, Ed25519PublicKey.from_public_bytes(public))
        if verifier.key_id != claimed:
            raise EvidenceError("the key ID does not match the key", f"verifier key {name}")
        return verifier


class Signer:
    """An Ed25519 private key under a key name (the log origin, by convention)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.name = check_key_name(name)
        self.private_key = private_key
        self.verifier = Verifier(name, private_key.public_key())

    @property
    def key_id(self) -> bytes:
        return self.verifier.key_id

    @property
    def key_ref(self) -> str:
        return self.verifier.key_ref

    def verifier_key(self) -> str:
        return self.verifier.verifier_key()

    def sign(self, message: bytes) -> bytes:
        """The raw 64-byte Ed25519 signature of ``message``."""
        return self.private_key.sign(message)

    def __repr__(self) -> str:  # never print key material
        return f"Signer({self.key_ref!r})"


def _check_text(text: str, where: str) -> None:
    if not text.endswith("\n"):
        raise EvidenceError("the note text must end with a newline", where)
    bad = next((c for c in text if ord(c) < 0x20 and c != "\n"), None)
    if bad is not None:
        raise EvidenceError(f"control character U+{ord(bad):04X} in the note", where)


def sign_note(text: str, signers: Signer | Sequence[Signer]) -> str:
    """``text`` (ending in a newline) followed by a blank line and one signature per signer."""
    _check_text(text, "note text")
    all_signers = [signers] if isinstance(signers, Signer) else list(signers)
    if not all_signers:
        raise EvidenceError("a note needs at least one signer", "note text")
    message = text.encode()
    lines = []
    for s in all_signers:
        blob = base64.b64encode(s.key_id + s.sign(message)).decode()
        lines.append(f"{SIG_PREFIX}{s.name} {blob}\n")
    return text + "\n" + "".join(lines)


def split_note(note: str | bytes) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    """The text and the (name, key ID, signature) of each signature line; no verification."""
    if len(note) > MAX_NOTE_BYTES:
        raise EvidenceError(f"the note is larger than {MAX_NOTE_BYTES} bytes", "note")
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as e:
            raise EvidenceError(f"not UTF-8 at byte {e.start}", "note") from None
    _check_text(note, "note")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise EvidenceError("no blank line before the signatures", "note")
    text, sig_block = note[: cut + 1], note[cut + 2 :]
    lines = sig_block.split("\n")[:-1]
    if not lines:
        raise EvidenceError("no signature lines after the blank line", "note")
    if len(lines) > MAX_SIGNATURES:
        raise EvidenceError(f"more than {MAX_SIGNATURES} signatures", "note")
    sigs = []
    first_line = text.count("\n") + 2
    for n, line in enumerate(lines, start=first_line):
        where = f"note: line {n}"
        if not line.startswith(SIG_PREFIX):
            raise EvidenceError("a signature line starts with an em dash and a space", where)
        name, sep, blob = line[len(SIG_PREFIX) :].partition(" ")
        if not sep or " " in blob:
            raise EvidenceError("a signature line is '— <name> <base64>'", where)
        try:
            check_key_name(name)
            raw = base64.b64decode(blob, validate=True)
        except binascii.Error:
            raise EvidenceError("the signature is not base64", where) from None
        except EvidenceError as e:
            raise e.at(where) from None
        if len(raw) < 5:
            raise EvidenceError("the signature is shorter than a key ID", where)
        sigs.append((name, raw[:4], raw[4:]))
    return text, sigs


def _verifiers(verifiers: Iterable[Verifier | str]) -> dict[tuple[str, bytes], Verifier]:
    known: dict[tuple[str, bytes], Verifier] = {}
    for v in verifiers:
        parsed = Verifier.parse(v) if isinstance(v, str) else v
        known[(parsed.name, parsed.key_id)] = parsed
    return known


def open_note_signers(
    note: str | bytes, verifiers: Iterable[Verifier | str]
) -> tuple[str, list[Verifier]]:
    """The note text and the known keys whose signatures verified (at least one)."""
    text, sigs = split_note(note)
    known = _verifiers(verifiers)
    message = text.encode()
    verified: list[Verifier] = []
    for name, kid, sig in sigs:
        v = known.get((name, kid))
        if v is None:
            continue  # the spec: ignore signatures from unknown keys
        if not v.verify(message, sig):
            raise EvidenceError(f"bad signature by key {v.key_ref}", "note")
        verified.append(v)
    if not verified:
        seen = ", ".join(f"{name}+{kid.hex()}" for name, kid, _ in sigs)
        raise EvidenceError(f"no signature by a known key (signed by: {seen})", "note")
    return text, verified


def open_note(note: str | bytes, verifiers: Iterable[Verifier | str]) -> str:
    """The note text, once a signature by one of ``verifiers`` has verified."""
    return open_note_signers(note, verifiers)[0]
