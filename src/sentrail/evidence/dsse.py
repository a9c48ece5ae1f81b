"""DSSE envelopes (securesystemslib) carrying in-toto Statement v1 manifests.

Envelope JSON (DSSE v1)::

    {"payload": base64(payload), "payloadType": "...",
     "signatures": [{"keyid": "...", "sig": base64(Ed25519(PAE(payloadType, payload)))}]}

``PAE = "DSSEv1" SP len(type) SP type SP len(payload) SP payload`` (lengths in ASCII
decimal). Signing, PAE and verification are securesystemslib's ``dsse.Envelope``; keys are
our note keys wrapped as securesystemslib keys whose key id is ``name+keyid`` (hex).

The in-toto Statement v1 is written here as canonical JSON (sorted keys, msgspec) and
checked with the ``in-toto-attestation`` library's validator. It is not serialised by
that library: its protobuf ``Struct`` turns every integer in the predicate into a float.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError

# Public names that securesystemslib re-exports without __all__ (mypy's strict re-export).
from securesystemslib.signer import (  # type: ignore[attr-defined]
    CryptoSigner,
    SSlibKey,
)

from sentrail.evidence.errors import EvidenceError
from sentrail.evidence.note import Signer, Verifier

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
MAX_ENVELOPE_BYTES = 64 << 20


class Subject(msgspec.Struct, frozen=True):
    name: str
    digest: dict[str, str]


class Statement(msgspec.Struct, frozen=True):
    """An in-toto Statement v1."""

    type: str = msgspec.field(name="_type")
    subject: list[Subject] = msgspec.field(default_factory=list)
    predicate_type: str = msgspec.field(name="predicateType", default="")
    predicate: dict[str, Any] = msgspec.field(default_factory=dict)


class _Sig(msgspec.Struct):
    sig: str
    keyid: str = ""


class _EnvelopeShape(msgspec.Struct):
    payload: str
    payloadType: str
    signatures: list[_Sig]


def _validate_with_library(statement: Mapping[str, Any]) -> None:
    """Check ``statement`` against the in-toto-attestation Statement v1 validator."""
    from google.protobuf import json_format  # type: ignore[import-untyped]
    from in_toto_attestation.v1 import statement_pb2  # type: ignore[import-untyped]
    from in_toto_attestation.v1.statement import (  # type: ignore[import-untyped]
        Statement as LibStatement,
    )

    try:
        pb = json_format.ParseDict(dict(statement), statement_pb2.Statement())
        LibStatement.copy_from_pb(pb).validate()
    except (ValueError, json_format.ParseError) as e:
        raise EvidenceError(f"not an in-toto Statement v1: {e}", "statement") from None


def make_statement(
    subjects: Mapping[str, str], predicate_type: str, predicate: Mapping[str, Any]
) -> bytes:
    """Canonical JSON of an in-toto Statement v1 over ``{name: sha256 hex}`` subjects."""
    for name, digest in subjects.items():
        if len(digest) != 64 or digest != digest.lower() or not _is_hex(digest):
            raise EvidenceError(f"subject {name!r}: not a SHA-256 hex digest", "statement")
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": n, "digest": {"sha256": d}} for n, d in sorted(subjects.items())],
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }
    _validate_with_library(statement)
    return msgspec.json.encode(statement, order="sorted")


def parse_statement(payload: bytes) -> Statement:
    """The in-toto Statement v1 in ``payload``; validated by the library too."""
    try:
        raw = msgspec.json.decode(payload)
        statement = msgspec.convert(raw, Statement)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise EvidenceError(f"not an in-toto statement: {e}", "statement") from None
    if statement.type != STATEMENT_TYPE:
        raise EvidenceError(f"_type is {statement.type!r}, not {STATEMENT_TYPE}", "statement")
    _validate_with_library(raw)
    return statement


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def _sslib_key(verifier: Verifier) -> SSlibKey:
    return SSlibKey.from_crypto(verifier.public_key, keyid=verifier.key_ref)


def sign_envelope(payload: bytes, payload_type: str, signer: Signer) -> dict[str, Any]:
    """A DSSE envelope of ``payload`` signed by ``signer`` (key id ``name+keyid``)."""
    envelope = Envelope(payload, payload_type, {})
    envelope.sign(CryptoSigner(signer.private_key, _sslib_key(signer.verifier)))
    return envelope.to_dict()


def verify_envelope(
    envelope: Mapping[str, Any] | bytes,
    verifiers: Sequence[Verifier],
    payload_type: str | None = IN_TOTO_PAYLOAD_TYPE,
) -> bytes:
    """The payload of ``envelope`` once a signature by one of ``verifiers`` verifies.

    Untrusted input: the shape is checked before the library sees it.
    """
    where = "DSSE envelope"
    if isinstance(envelope, bytes):
        if len(envelope) > MAX_ENVELOPE_BYTES:
            raise EvidenceError("the envelope is too large", where)
        try:
            envelope = msgspec.json.decode(envelope)
        except msgspec.DecodeError as e:
            raise EvidenceError(f"not JSON: {e}", where) from None
    try:
        shape = msgspec.convert(envelope, _EnvelopeShape)
    except msgspec.ValidationError as e:
        raise EvidenceError(f"malformed envelope: {e}", where) from None
    if not shape.signatures:
        raise EvidenceError("the envelope is not signed", where)
    if payload_type is not None and shape.payloadType != payload_type:
        raise EvidenceError(f"payloadType {shape.payloadType!r} is not {payload_type!r}", where)
    try:
        for field in (shape.payload, *(s.sig for s in shape.signatures)):
            base64.b64decode(field, validate=True)
        parsed = Envelope.from_dict(msgspec.to_builtins(shape))
    except (binascii.Error, ValueError, KeyError) as e:
        raise EvidenceError(f"malformed envelope: {e}", where) from None
    if not verifiers:
        raise EvidenceError("no trusted key to verify with", where)
    try:
        parsed.verify([_sslib_key(v) for v in verifiers], 1)
    except VerificationError:
        ids = ", ".join(s.keyid or "(no keyid)" for s in shape.signatures)
        trusted = ", ".join(v.key_ref for v in verifiers)
        raise EvidenceError(
            f"no valid signature by a trusted key (signed by: {ids}; trusted: {trusted})", where
        ) from None
    return parsed.payload
