"""C2SP tlog checkpoints (https://c2sp.org/tlog-checkpoint) as signed notes.

The note text is at least three newline-terminated, non-empty lines::

    <origin>                 a unique log identity (here: also the signing key name)
    <tree size>              ASCII decimal, no leading zeroes ("0" for the empty tree)
    <base64 root hash>       the RFC 9162 root at that size (standard base64, 32 bytes)
    [<extension line>...]    optional, opaque, non-empty

Each tenant's log is its own log, so it has its own origin: ``<log key name>/<tenant>``
(the tenant percent-encoded, :func:`log_origin`), signed by the log key under that name
(:func:`log_signer`: the same Ed25519 key; the C2SP key name matches the origin, and a
witness keeps one state per tenant log). Checkpoints written before this rule have the
log key's own name as origin; :func:`log_verifiers` accepts both.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote

from sentrail.evidence.errors import EvidenceError
from sentrail.evidence.merkle import HASH_SIZE
from sentrail.evidence.note import Signer, Verifier, open_note_signers, sign_note

MAX_TREE_SIZE = (1 << 63) - 1


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head: ``size`` leaves of log ``origin`` have root ``root_hash``."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = field(default=())

    def format(self) -> str:
        """The note text of this checkpoint (validated: it parses back to ``self``)."""
        if not self.origin or "\n" in self.origin or any(ord(c) < 0x20 for c in self.origin):
            raise EvidenceError("the origin must be one non-empty line", "checkpoint")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise EvidenceError(f"tree size {self.size} is out of range", "checkpoint")
        if len(self.root_hash) != HASH_SIZE:
            raise EvidenceError(f"the root hash must have {HASH_SIZE} bytes", "checkpoint")
        for ext in self.extensions:
            if not ext or any(ord(c) < 0x20 for c in ext):
                raise EvidenceError("extension lines must be non-empty lines", "checkpoint")
        root = base64.b64encode(self.root_hash).decode()
        return "".join(
            f"{line}\n" for line in (self.origin, str(self.size), root, *self.extensions)
        )

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Read checkpoint note text; errors say which line is wrong."""
        if not text.endswith("\n"):
            raise EvidenceError("the checkpoint must end with a newline", "checkpoint")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise EvidenceError("a checkpoint has at least three lines", "checkpoint")
        for n, line in enumerate(lines, start=1):
            if not line:
                raise EvidenceError("empty line", f"checkpoint: line {n}")
        origin, size_line, root_line, *extensions = lines
        if not size_line.isascii() or not size_line.isdigit():
            raise EvidenceError(f"tree size {size_line!r} is not a decimal", "checkpoint: line 2")
        if size_line != "0" and size_line.startswith("0"):
            raise EvidenceError("the tree size has leading zeroes", "checkpoint: line 2")
        size = int(size_line)
        if size > MAX_TREE_SIZE:
            raise EvidenceError("the tree size is too large", "checkpoint: line 2")
        try:
            root = base64.b64decode(root_line, validate=True)
        except binascii.Error:
            raise EvidenceError("the root hash is not base64", "checkpoint: line 3") from None
        if len(root) != HASH_SIZE or base64.b64encode(root).decode() != root_line:
            raise EvidenceError(
                f"the root hash is not {HASH_SIZE} bytes in canonical base64",
                "checkpoint: line 3",
            )
        return cls(origin, size, root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> str:
    """The signed note of ``checkpoint``; the signer's key name must be the origin."""
    if signer.name != checkpoint.origin:
        raise EvidenceError(
            f"key {signer.name!r} cannot sign for origin {checkpoint.origin!r}", "checkpoint"
        )
    return sign_note(checkpoint.format(), signer)


def verify_checkpoint(
    note: str | bytes, verifiers: Iterable[Verifier | str], origin: str | None = None
) -> Checkpoint:
    """The checkpoint in ``note`` once signed by a known key named after its origin."""
    text, signers = open_note_signers(note, verifiers)
    checkpoint = Checkpoint.parse(text)
    if origin is not None and checkpoint.origin != origin:
        raise EvidenceError(
            f"origin {checkpoint.origin!r} is not the expected {origin!r}", "checkpoint: line 1"
        )
    if not any(v.name == checkpoint.origin for v in signers):
        raise EvidenceError(
            f"no verified signature by the log key {checkpoint.origin!r}", "checkpoint"
        )
    return checkpoint


def log_origin(key_name: str, tenant: str) -> str:
    """The origin of ``tenant``'s log under the log key ``key_name``."""
    return f"{key_name}/{quote(tenant, safe='')}"


def log_signer(signer: Signer, tenant: str) -> Signer:
    """``signer``'s key under the name of ``tenant``'s log origin."""
    return Signer(log_origin(signer.name, tenant), signer.private_key)


def log_verifiers(verifiers: Iterable[Verifier | str], tenant: str) -> list[Verifier]:
    """The trusted log keys under their own names (checkpoints from before per-tenant
    origins) and under ``tenant``'s log origin."""
    keys = [Verifier.parse(v) if isinstance(v, str) else v for v in verifiers]
    return [*keys, *(Verifier(log_origin(v.name, tenant), v.public_key) for v in keys)]
