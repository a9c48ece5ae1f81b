"""The on-disk signing key store.

Layout of the key directory (mode 0700)::

    <key id hex>.pem   the active Ed25519 private key, PKCS#8 PEM, mode 0600
    keys.json          every key ever active: name, key id, verifier key, created, retired

``rotate()`` makes a new active key, records the old one as retired (its public verifier
key stays in ``keys.json`` so everything it signed still verifies) and deletes the old
private key file: a rotated key can no longer sign. Private key files readable by group
or others are refused. Writes go to a temporary file, are fsynced and renamed.

Nothing here reads the environment except :func:`default_home`.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from sentrail.evidence.errors import EvidenceError
from sentrail.evidence.note import Signer, Verifier, check_key_name

REGISTRY = "keys.json"
DEFAULT_KEY_NAME = "sentrail.local/log"


def default_home() -> Path:
    """``$SENTRAIL_HOME``, else ``~/.sentrail``."""
    env = os.environ.get("SENTRAIL_HOME")
    return Path(env) if env else Path.home() / ".sentrail"


def default_key_dir(home: Path) -> Path:
    """The key directory under a sentrail home."""
    return home / "keys"


class KeyRecord(msgspec.Struct, frozen=True):
    """One key in ``keys.json``."""

    name: str
    key_id: str
    verifier_key: str
    created: float
    retired: float | None = None


class _Registry(msgspec.Struct):
    version: int = 1
    active: str | None = None
    keys: list[KeyRecord] = msgspec.field(default_factory=list)


def _write_private(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically with ``mode`` from the first byte."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class KeyStore:
    """Ed25519 signing keys in ``directory``: generated on first use, rotatable."""

    def __init__(self, directory: Path, name: str = DEFAULT_KEY_NAME) -> None:
        self.directory = Path(directory)
        self.name = check_key_name(name)

    # -- registry ---------------------------------------------------------------------
    def _registry(self) -> _Registry:
        path = self.directory / REGISTRY
        try:
            return msgspec.json.decode(path.read_bytes(), type=_Registry)
        except FileNotFoundError:
            return _Registry()
        except msgspec.ValidationError as e:
            raise EvidenceError(f"malformed key registry: {e}", str(path)) from None
        except msgspec.DecodeError as e:
            raise EvidenceError(f"malformed key registry: {e}", str(path)) from None

    def _save(self, registry: _Registry) -> None:
        _write_private(
            self.directory / REGISTRY,
            msgspec.json.format(msgspec.json.encode(registry), indent=2) + b"\n",
            0o600,
        )

    def _prepare_dir(self) -> None:
        # The home it lives in, when made here, is private too (it holds the store).
        self.directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.mkdir(mode=0o700, exist_ok=True)
        st = self.directory.lstat()
        if not stat.S_ISDIR(st.st_mode):
            raise EvidenceError("not a directory", str(self.directory))
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(self.directory, 0o700)

    # -- keys -------------------------------------------------------------------------
    def _generate(self, registry: _Registry) -> Signer:
        private = Ed25519PrivateKey.generate()
        signer = Signer(self.name, private)
        pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        _write_private(self.directory / f"{signer.key_id.hex()}.pem", pem, 0o600)
        registry.keys.append(
            KeyRecord(self.name, signer.key_id.hex(), signer.verifier_key(), time.time())
        )
        registry.active = signer.key_id.hex()
        self._save(registry)
        return signer

    def _load(self, record: KeyRecord) -> Signer:
        path = self.directory / f"{record.key_id}.pem"
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            raise EvidenceError("the active private key file is missing", str(path)) from None
        except OSError as e:
            raise EvidenceError(f"cannot open the private key: {e.strerror}", str(path)) from None
        with os.fdopen(fd, "rb") as f:
            mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
            if mode & 0o077:
                raise EvidenceError(
                    f"private key file has mode {mode:04o}; it must be 0600", str(path)
                )
            pem = f.read()
        try:
            private = load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as e:
            raise EvidenceError(f"not a PKCS#8 PEM private key: {e}", str(path)) from None
        if not isinstance(private, Ed25519PrivateKey):
            raise EvidenceError("not an Ed25519 private key", str(path))
        signer = Signer(record.name, private)
        if signer.verifier_key() != record.verifier_key:
            raise EvidenceError("the private key does not match keys.json", str(path))
        return signer

    def ensure(self) -> Signer:
        """The active signer, generating the directory and a first key when there is none."""
        self._prepare_dir()
        registry = self._registry()
        if registry.active is None:
            return self._generate(registry)
        return self.active()

    def active(self) -> Signer:
        """The active signer (``ensure()`` must have run)."""
        registry = self._registry()
        record = next((k for k in registry.keys if k.key_id == registry.active), None)
        if record is None:
            raise EvidenceError("no active key; run ensure() first", str(self.directory))
        return self._load(record)

    def rotate(self) -> Signer:
        """Make a new active key; the old one is retired, verifiable, and can no longer sign."""
        self._prepare_dir()
        registry = self._registry()
        old = registry.active
        now = time.time()
        registry.keys = [
            msgspec.structs.replace(k, retired=now) if k.key_id == old else k for k in registry.keys
        ]
        signer = self._generate(registry)  # saves the registry with the new active key
        if old is not None and old != signer.key_id.hex():
            with contextlib.suppress(FileNotFoundError):
                (self.directory / f"{old}.pem").unlink()
        return signer

    def records(self) -> list[KeyRecord]:
        """Every key ever active, oldest first."""
        return list(self._registry().keys)

    def verifiers(self) -> list[Verifier]:
        """Public verifiers of every key ever active (to check old signatures)."""
        return [Verifier.parse(k.verifier_key) for k in self._registry().keys]
