"""Payload sealing: each run's payloads are encrypted at rest under the run's own data key.

A run's data key (DEK) is 32 random bytes, created with the run's first event and kept in
``run_keys``. A sealed payload is stored as::

    nonce (12 random bytes) || AES-256-GCM(dek).encrypt(nonce, payload, aad)
    aad = b"sentrail.store.seal.v1\\x00" || str(tenant) || str(run_id) || str(event_id)
          (each str: u32 BE length || UTF-8)

so a ciphertext only opens as the event it was written for (moving it to another row, run
or tenant fails authentication). Erasing the run's key (``dek = NULL``) makes every copy
of its payloads unreadable — the live rows, the WAL, replicas and backups made after the
key is gone — while the log still commits to each payload's SHA-256.
"""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sentrail.store.base import StoreError

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
AAD_DOMAIN = b"sentrail.store.seal.v1\x00"
_U32 = struct.Struct(">I")


def new_key() -> bytes:
    """A fresh random 256-bit data key."""
    return AESGCM.generate_key(bit_length=256)


def _str(value: str) -> bytes:
    raw = value.encode()
    return _U32.pack(len(raw)) + raw


def aad_prefix(tenant: str, run_id: str) -> bytes:
    """The part of :func:`aad` that all the events of a run share."""
    return AAD_DOMAIN + _str(tenant) + _str(run_id)


def aad(tenant: str, run_id: str, event_id: str) -> bytes:
    """The associated data that binds a sealed payload to its event."""
    return aad_prefix(tenant, run_id) + _str(event_id)


def event_aad(prefix: bytes, event_id: str) -> bytes:
    """:func:`aad` from the run's :func:`aad_prefix`."""
    return prefix + _str(event_id)


def cipher(key: bytes) -> AESGCM:
    if len(key) != KEY_BYTES:
        raise StoreError(f"a run data key has {KEY_BYTES} bytes, not {len(key)}")
    return AESGCM(key)


def nonces(n: int) -> list[bytes]:
    """``n`` random nonces from one call to the OS generator."""
    pool = os.urandom(NONCE_BYTES * n)
    return [pool[i : i + NONCE_BYTES] for i in range(0, NONCE_BYTES * n, NONCE_BYTES)]


def seal(aead: AESGCM, nonce: bytes, payload: bytes, associated: bytes) -> bytes:
    return nonce + aead.encrypt(nonce, payload, associated)


def unseal(aead: AESGCM, blob: bytes, associated: bytes) -> bytes | None:
    """The plaintext, or None when ``blob`` does not authenticate as this event's."""
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        return None
    try:
        return aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated)
    except InvalidTag:
        return None
