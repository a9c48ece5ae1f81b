"""The per-session event log that lets short-lived hook processes share a run's state.

A hook process lives for one tool call. What the decision point learnt earlier in the
session (results that carried injected instructions, values they introduced, retries) lives
in ``$SENTRAIL_HOME/hooks/<client>/<session>.ndjson``: one JSON record per line, the first a
header. The file is created 0600 in a 0700 directory, never through a symbolic link, and
held under an exclusive ``flock`` while a hook reads, decides and appends, so concurrent
hooks of one session (parallel tool calls) are serialised. Its size and record count are
bounded; a damaged or oversized log is an error, which the hook answers by failing closed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import stat
import time
from pathlib import Path
from types import TracebackType

import msgspec

from sentrail.enforce.model import Decision, DecisionRequest
from sentrail.errors import SentrailError
from sentrail.model.trace import ToolResult

FORMAT = "sentrail.hook-session/1"
MAX_LOG_BYTES = 128 * 1024 * 1024
MAX_RECORDS = 20_000
LOCK_WAIT_SECONDS = 10.0
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class HookStateError(SentrailError):
    """The session log cannot be used (locked too long, damaged, too large)."""


class Header(msgspec.Struct, tag="session", omit_defaults=True):
    format: str
    client: str
    session_id: str
    created_at: float


class CallRecord(msgspec.Struct, tag="call", omit_defaults=True):
    """A proposed call and the decision it got (the request is what replay decides again)."""

    at: float
    key: str
    request: DecisionRequest
    decision: Decision | None = None


class ResultRecord(msgspec.Struct, tag="result", omit_defaults=True):
    at: float
    key: str
    result: ToolResult
    findings: list[str] = msgspec.field(default_factory=list)  # rule ids, for the record
    clean: bool = False  # the instruction scan found nothing: replay need not scan again


class PromptRecord(msgspec.Struct, tag="prompt", omit_defaults=True):
    """What the user asked: the run's trigger (values it mentions are not tainted)."""

    at: float
    text: str


Record = CallRecord | ResultRecord | PromptRecord
_decode_line = msgspec.json.Decoder(Header | CallRecord | ResultRecord | PromptRecord).decode
_encode = msgspec.json.Encoder().encode


def session_file_name(session_id: str) -> str:
    """A file name for a session id that no id can turn into a path: the id's safe
    characters (at most 80) and a hash of the whole id, so distinct ids never collide."""
    safe = _UNSAFE.sub("_", session_id)[:80].strip("._") or "session"
    digest = hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{safe}-{digest}.ndjson"


class SessionLog:
    """One session's log, opened and locked as a context manager."""

    def __init__(self, directory: Path, client: str, session_id: str) -> None:
        if not session_id:
            raise HookStateError("the hook payload has no session id", "session_id")
        self.directory = directory
        self.client = client
        self.session_id = session_id
        self.path = directory / session_file_name(session_id)
        self._fd: int | None = None

    def __enter__(self) -> SessionLog:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise HookStateError(
                f"cannot open the session log: {exc.strerror}", str(self.path)
            ) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise HookStateError("the session log is not a regular file", str(self.path))
            if info.st_mode & 0o077:
                os.fchmod(fd, 0o600)
            self._lock(fd)
            self._fd = fd
            if os.fstat(fd).st_size == 0:  # under the lock: one header only
                self._write(Header(FORMAT, self.client, self.session_id, time.time()))
        except BaseException:
            self._fd = None
            os.close(fd)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None

    def _lock(self, fd: int) -> None:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise HookStateError(
                        f"the session log stayed locked for {LOCK_WAIT_SECONDS:g} s",
                        str(self.path),
                    ) from None
                time.sleep(0.02)

    @property
    def fd(self) -> int:
        if self._fd is None:
            raise HookStateError("the session log is not open", str(self.path))
        return self._fd

    def records(self) -> list[Record]:
        """Every record after the header."""
        fd = self.fd
        size = os.fstat(fd).st_size
        if size > MAX_LOG_BYTES:
            raise HookStateError(
                f"the session log is {size} bytes, over the {MAX_LOG_BYTES} byte limit; "
                "start a new session, or remove the file to forget this one",
                str(self.path),
            )
        data = os.pread(fd, size, 0)
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        if len(lines) > MAX_RECORDS + 1:
            raise HookStateError(
                f"the session log holds {len(lines) - 1} records, over the {MAX_RECORDS} "
                "limit; start a new session, or remove the file to forget this one",
                str(self.path),
            )
        out: list[Record] = []
        for n, line in enumerate(lines, 1):
            where = f"{self.path}:line {n}"
            try:
                rec = _decode_line(line)
            except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
                raise HookStateError(
                    f"damaged session log ({exc}); remove the file to start afresh", where
                ) from None
            if n == 1:
                if not isinstance(rec, Header) or rec.format != FORMAT:
                    raise HookStateError(f"not a {FORMAT} log", where)
                if rec.session_id != self.session_id:
                    raise HookStateError("the log belongs to another session", where)
                continue
            if isinstance(rec, Header):
                raise HookStateError("a second header in the session log", where)
            out.append(rec)
        return out

    def append(self, record: Record) -> None:
        self._write(record)

    def _write(self, record: Header | Record) -> None:
        line = _encode(record) + b"\n"
        view = memoryview(line)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        os.fsync(self.fd)
