"""Witnesses: copies of each tenant log's checkpoints kept outside the store.

The log is only as good as an outside record of it: someone who can write the database
can rewrite the whole log, rehash it and delete the checkpoint rows. A witness keeps what
the log signed where that person cannot reach, and ``log verify`` holds the store to it.

- :class:`FileWitness` — an append-only file (put it on another volume, ideally with the
  filesystem's append-only attribute, ``chattr +a``): one JSON line per checkpoint,
  ``{"tenant", "origin", "size", "note"}``, appended with ``O_APPEND`` and fsynced.
- :class:`HttpWitness` — a C2SP tlog-witness (``POST <url>/add-checkpoint``, see
  :mod:`sentrail.evidence.witness`): it verifies each checkpoint's signature and its
  consistency with the last one it cosigned, and answers with its cosignature. Holding
  the store to it means showing it the store's latest checkpoint with a consistency proof
  from the size it holds: it refuses a log that was cut off or rewritten.
- :class:`~sentrail.store.witness_s3.S3Witness` — an S3-compatible bucket
  (``s3://BUCKET[/PREFIX]``, the ``witness-s3`` extra): one object per checkpoint, never
  overwritten, locked where the bucket has object lock.
- :class:`WitnessPublisher` — pushes every checkpoint the store signs (a hook of
  :attr:`LogStore.on_checkpoint`) to the witnesses from a background thread (never in
  the append path); only each tenant's newest checkpoint is pending at a time, failures
  are logged and retried with the next checkpoint.
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import msgspec

from sentrail.evidence.checkpoint import Checkpoint as TreeHead
from sentrail.evidence.errors import EvidenceError
from sentrail.evidence.note import MAX_NOTE_BYTES, split_note
from sentrail.evidence.witness import (
    SIZE_CONTENT_TYPE,
    Cosigner,
    add_checkpoint_body,
    parse_size,
    verify_cosignatures,
)
from sentrail.store.base import Checkpoint, StoreError

if TYPE_CHECKING:
    from sentrail.store.core import LogStore
    from sentrail.store.witness_s3 import S3Witness

log = logging.getLogger("sentrail.witness")
TIMEOUT_S = 10.0


class WitnessError(StoreError):
    """A witness that cannot be reached, refuses a checkpoint, or holds another history."""


class WitnessUnreachable(WitnessError):
    """A witness that cannot be read or reached at all (nothing said about the log):
    ``log verify`` answers it as an input error, not as a failed check."""


class Witness(Protocol):
    name: str

    def push(self, store: LogStore, cp: Checkpoint) -> None: ...


class _NoteDoc(msgspec.Struct):
    """The part of ``GET /v1/log/checkpoint``'s answer that is the checkpoint."""

    note: str


class _Record(msgspec.Struct, frozen=True):
    tenant: str
    origin: str
    size: int
    note: str


def _origin(note: str) -> str:
    return TreeHead.parse(split_note(note)[0]).origin


class FileWitness:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"witness file {self.path}"
        self._lock = threading.Lock()

    def push(self, store: LogStore, cp: Checkpoint) -> None:
        line = msgspec.json.encode(_Record(cp.tenant_id, _origin(cp.note), cp.size, cp.note))
        with self._lock:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, line + b"\n")
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise WitnessError(f"cannot append: {exc.strerror}", self.name) from None

    def notes(self, tenant: str) -> list[str]:
        """Every checkpoint of ``tenant`` recorded in the file, in order."""
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise WitnessUnreachable(f"cannot read: {exc.strerror}", self.name) from None
        out = []
        for n, line in enumerate(data.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                rec = msgspec.json.decode(line, type=_Record)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise WitnessError(
                    f"line {n} is not a checkpoint record: {exc}", self.name
                ) from None
            if rec.tenant == tenant:
                out.append(rec.note)
        return out


class HttpWitness:
    """A C2SP tlog-witness at ``url`` (its submission prefix)."""

    def __init__(self, url: str, cosigners: Sequence[Cosigner] = ()) -> None:
        if not url.startswith(("http://", "https://")):
            raise WitnessError("a witness URL starts with http:// or https://", url)
        self.url = url.rstrip("/") + "/add-checkpoint"
        self.name = f"witness {url}"
        self.cosigners = list(cosigners)
        self._sizes: dict[str, int] = {}  # origin -> the size the witness holds, as last seen
        self._lock = threading.Lock()

    def _post(self, body: bytes) -> tuple[int, str, bytes]:
        req = urllib.request.Request(self.url, data=body, method="POST")  # noqa: S310 (http(s) only)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:  # noqa: S310
                return resp.status, resp.headers.get("content-type", ""), resp.read(MAX_NOTE_BYTES)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("content-type", ""), exc.read(MAX_NOTE_BYTES)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise WitnessUnreachable(f"cannot reach the witness: {exc}", self.name) from None

    def submit(self, store: LogStore, cp: Checkpoint) -> list[tuple[str, int]]:
        """Show ``cp`` to the witness with a consistency proof from the size it holds;
        the (name, time) of the known cosigners that signed it. WitnessError when the
        witness refuses: its answer says why (cut off, rewritten, unknown key)."""
        origin = _origin(cp.note)
        with self._lock:
            old = self._sizes.get(origin, 0)
            for _ in range(3):
                if old > cp.size:
                    raise WitnessError(
                        f"the witness holds a larger tree ({old}) than this checkpoint "
                        f"({cp.size}): the log was cut off, or its checkpoints deleted",
                        self.name,
                    )
                try:
                    _, proof = store.proofs(cp.tenant_id, cp.size, old_size=old)
                except ValueError as exc:
                    raise WitnessError(str(exc), self.name) from None
                status, ctype, body = self._post(add_checkpoint_body(old, proof, cp.note))
                if status == 409 and ctype.split(";")[0].strip() == SIZE_CONTENT_TYPE:
                    old = parse_size(body)
                    self._sizes[origin] = old
                    continue
                if status == 200:
                    self._sizes[origin] = cp.size
                    return self._cosigned(cp.note, body)
                raise WitnessError(_refusal(status, old, cp.size), self.name)
        raise WitnessError("the witness keeps changing its size", self.name)

    def _cosigned(self, note: str, body: bytes) -> list[tuple[str, int]]:
        try:
            return verify_cosignatures(note, body.decode(), self.cosigners)
        except (EvidenceError, UnicodeDecodeError) as exc:
            raise WitnessError(f"the witness's answer does not verify: {exc}", self.name) from None

    def push(self, store: LogStore, cp: Checkpoint) -> None:
        self.submit(store, cp)


def _refusal(status: int, old: int, size: int) -> str:
    why = {
        400: f"the witness refused the request (old size {old}, checkpoint size {size})",
        403: "the witness does not trust the key that signed the checkpoint",
        404: "the witness does not know this log's origin",
        409: f"the witness holds another tree of size {size}: the history was rewritten",
        422: (
            f"the log is not consistent with the tree of size {old} the witness holds: "
            "its history was rewritten"
        ),
    }
    return why.get(status, f"the witness answered HTTP {status}")


def open_witness(
    spec: str, cosigners: Sequence[Cosigner] = ()
) -> FileWitness | HttpWitness | S3Witness:
    """``http(s)://...`` is a tlog-witness, ``s3://BUCKET[/PREFIX]`` a bucket; anything
    else (``file:PATH`` or a path) a file."""
    if spec.startswith(("http://", "https://")):
        return HttpWitness(spec, cosigners)
    if spec.startswith("s3://"):
        try:
            from sentrail.store.witness_s3 import S3Witness
        except ImportError as exc:
            if not (exc.name or "").startswith(("boto3", "botocore")):
                raise
            raise WitnessError(
                "the S3 witness needs boto3: pip install 'sentrail[witness-s3]'", "s3://"
            ) from None
        return S3Witness(spec)
    return FileWitness(spec.removeprefix("file:"))


def fetch_note(source: str) -> str:
    """A checkpoint note from a file or an http(s) URL; a JSON answer of
    ``GET /v1/log/checkpoint`` gives its ``note``. One that cannot be read, or is not a
    note at all, says nothing about the log: :class:`WitnessUnreachable` (an input error)."""
    data: bytes
    if source.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(source, timeout=TIMEOUT_S) as resp:  # noqa: S310
                data = resp.read(MAX_NOTE_BYTES + 1)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise WitnessUnreachable(f"cannot fetch the checkpoint: {exc}", source) from None
    else:
        try:
            data = Path(source.removeprefix("file:")).read_bytes()[: MAX_NOTE_BYTES + 1]
        except OSError as exc:
            why = f"cannot read the checkpoint: {exc.strerror}"
            raise WitnessUnreachable(why, source) from None
    if data.lstrip().startswith(b"{"):
        try:
            return msgspec.json.decode(data, type=_NoteDoc).note
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise WitnessUnreachable("a JSON checkpoint has a 'note' string", source) from None
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise WitnessUnreachable("the checkpoint is not UTF-8 text", source) from None


class WitnessPublisher:
    """Pushes each tenant's newest checkpoint to every witness, off the caller's thread."""

    def __init__(self, store: LogStore, witnesses: Sequence[Witness]) -> None:
        self.store = store
        self.witnesses = list(witnesses)
        self.failures = 0
        self._pending: dict[str, Checkpoint] = {}
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="witness", daemon=True)
        self._thread.start()
        store.on_checkpoint.append(self.submit)

    def submit(self, cp: Checkpoint) -> None:
        with self._cond:
            held = self._pending.get(cp.tenant_id)
            if held is None or held.size <= cp.size:
                self._pending[cp.tenant_id] = cp
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                work, self._pending = self._pending, {}
                self._busy = True
            for cp in work.values():
                for witness in self.witnesses:
                    try:
                        witness.push(self.store, cp)
                    except Exception as exc:
                        self.failures += 1
                        log.error("%s: checkpoint %d not pushed: %s", witness.name, cp.size, exc)
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def flush(self, timeout: float = TIMEOUT_S) -> bool:
        """Wait until every pending checkpoint was pushed (or tried); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self, timeout: float = TIMEOUT_S) -> None:
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self.submit in self.store.on_checkpoint:
            self.store.on_checkpoint.remove(self.submit)


def attach(store: LogStore, specs: Sequence[str], cosigners: Sequence[Cosigner] = ()) -> None:
    """Push every checkpoint ``store`` signs to the witnesses of ``specs`` (flushed when
    the store closes)."""
    if not specs:
        return
    publisher = WitnessPublisher(store, [open_witness(s, cosigners) for s in specs])
    store.on_close.append(publisher.close)
