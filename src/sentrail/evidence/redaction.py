"""Redaction records: the log event that says what was erased, when, by whom and why.

When a run is redacted, the store appends to the run's own hash chain (so it is also a
leaf of the tenant's Merkle tree) one plaintext event of kind ``redaction`` whose payload
is the canonical JSON (sorted keys, no spaces, UTF-8) of::

    {"type": "redaction", "run_id": "...", "redacted_at": "2025-01-01T00:00:00.000Z",
     "by": "...", "reason": "...", "fields": ["step.tool_call.parameters.password"],
     "views": {"<seq>": "<SHA-256 hex of the redacted view of event seq>"},
     "erased_seqs": [<seqs whose payloads this redaction erased>]}

Erasure never touches what the log commits to (each leaf commits to the payload's
digest), so chains, proofs and checkpoints still verify. A *view* (the redacted copy of a
JSON payload kept after erasure) is not in the log, so it must be vouched for: its
SHA-256 must be the one a later redaction record of the same run gives for its seq.
:class:`RedactionCheck` applies those rules to a stream of events (a whole tenant log or
one run in a bundle) and reports the first offending seq.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import msgspec

from sentrail.evidence.errors import EvidenceError

REDACTION_KIND = "redaction"
REDACTED = "[REDACTED]"
_SEQ = re.compile(r"0|[1-9][0-9]{0,19}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class RedactionRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The payload of a ``redaction`` event (see the module docstring)."""

    type: Literal["redaction"]
    run_id: str
    redacted_at: str
    by: str
    reason: str
    fields: list[str]
    views: dict[str, str]
    erased_seqs: list[int]


@dataclass(frozen=True)
class RedactionInfo:
    """One redaction of a run, as a verifier reports it."""

    seq: int  # of the redaction event
    redacted_at: str
    by: str
    reason: str
    fields: tuple[str, ...]
    erased_seqs: tuple[int, ...]
    view_seqs: tuple[int, ...]


def iso_time(epoch: float) -> str:
    """``epoch`` as RFC 3339 UTC with milliseconds (``2025-01-01T00:00:00.000Z``); a time
    out of range as the number itself."""
    try:
        when = datetime.fromtimestamp(epoch, UTC)
    except (OverflowError, OSError, ValueError):
        return repr(epoch)
    return when.isoformat(timespec="milliseconds")[:-6] + "Z"


def encode_record(record: RedactionRecord) -> bytes:
    """The canonical bytes of ``record`` (sorted keys, compact, UTF-8)."""
    return msgspec.json.encode(record, order="sorted")


def parse_record(payload: bytes) -> RedactionRecord:
    """A redaction record from a payload; EvidenceError unless it is exactly one."""
    try:
        record = msgspec.json.decode(payload, type=RedactionRecord)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise EvidenceError(f"malformed redaction record: {exc}") from None
    for key, digest in record.views.items():
        if not _SEQ.fullmatch(key) or not _HEX64.fullmatch(digest):
            raise EvidenceError("malformed redaction record: views map seqs to SHA-256 hex")
    if any(s < 0 for s in record.erased_seqs):
        raise EvidenceError("malformed redaction record: a negative seq")
    return record


class RedactionCheck:
    """Check views and erased payloads against the redaction records that explain them.

    Feed every event in seq order with :meth:`add`, then read :meth:`problems`. Rules:

    - a ``redaction`` event carries a well-formed record of its own run, naming only
      earlier seqs;
    - every view's SHA-256 is the one a later record of its run gives for its seq, and
      every view a record names is there;
    - every seq a record says it erased has no payload;
    - with ``require_records``, every event without a payload is named by a later record
      of its run (an erasure nobody recorded is a deletion).

    Only what is still unexplained is kept while walking (views and erased payloads wait
    for their record), and ``records`` only with ``keep_records``.
    """

    def __init__(self, *, require_records: bool, keep_records: bool = True) -> None:
        self.require_records = require_records
        self.keep_records = keep_records
        self._views: dict[str, dict[int, bytes]] = {}  # run -> seq -> SHA-256, unvouched
        self._mismatch: dict[tuple[str, int], list[int]] = {}  # view -> records that differ
        self._erased: dict[str, set[int]] = {}  # run -> erased seqs not yet recorded
        self._problems: list[tuple[int, str]] = []
        self.records: list[RedactionInfo] = []

    def add(
        self, run_id: str, seq: int, kind: str, payload: bytes | None, view: bytes | None
    ) -> None:
        if view is not None:
            self._views.setdefault(run_id, {})[seq] = hashlib.sha256(view).digest()
        if kind == REDACTION_KIND:
            self._record(run_id, seq, payload)
        elif payload is None:
            self._erased.setdefault(run_id, set()).add(seq)

    def _record(self, run_id: str, seq: int, payload: bytes | None) -> None:
        if payload is None:
            self._problems.append((seq, "a redaction event without its record"))
            return
        try:
            rec = parse_record(payload)
        except EvidenceError as exc:
            self._problems.append((seq, exc.message))
            return
        if rec.run_id != run_id:
            self._problems.append((seq, f"the redaction record names run {rec.run_id!r}"))
            return
        views = {int(k): bytes.fromhex(v) for k, v in rec.views.items()}
        later = [s for s in (*views, *rec.erased_seqs) if s >= seq]
        if later:
            self._problems.append((seq, f"the redaction record names a later seq ({later[0]})"))
            return
        pending = self._views.get(run_id, {})
        for s, digest in views.items():
            if s not in pending:
                missing = f"the view recorded by the redaction at seq {seq} is missing"
                self._problems.append((s, missing))
            elif pending[s] == digest:
                del pending[s]
                self._mismatch.pop((run_id, s), None)
            else:
                self._mismatch.setdefault((run_id, s), []).append(seq)
        erased = self._erased.get(run_id, set())
        for s in rec.erased_seqs:
            if s in erased:
                erased.remove(s)
            else:
                present = f"the redaction at seq {seq} erased this payload, but it is present"
                self._problems.append((s, present))
        if self.keep_records:
            self.records.append(
                RedactionInfo(
                    seq=seq,
                    redacted_at=rec.redacted_at,
                    by=rec.by,
                    reason=rec.reason,
                    fields=tuple(rec.fields),
                    erased_seqs=tuple(rec.erased_seqs),
                    view_seqs=tuple(sorted(views)),
                )
            )

    def problems(self) -> list[tuple[int, str]]:
        """Every problem as ``(seq, reason)``, first seq first."""
        out = list(self._problems)
        for run_id, pending in self._views.items():
            for s in pending:
                at = self._mismatch.get((run_id, s))
                if at is None:
                    out.append((s, "view is not vouched for by a redaction record of its run"))
                else:
                    where = ", ".join(str(r) for r in at)
                    reason = (
                        f"view does not match the SHA-256 recorded by the redaction at seq {where}"
                    )
                    out.append((s, reason))
        if self.require_records:
            out.extend(
                (s, "payload erased without a redaction record")
                for erased in self._erased.values()
                for s in erased
            )
        return sorted(out)


def check_views(
    events: Sequence[tuple[str, int, str, bytes | None, bytes | None]], *, require_records: bool
) -> tuple[list[tuple[int, str]], list[RedactionInfo]]:
    """:class:`RedactionCheck` over ``(run_id, seq, kind, payload, view)`` in seq order."""
    check = RedactionCheck(require_records=require_records)
    for run_id, seq, kind, payload, view in events:
        check.add(run_id, seq, kind, payload, view)
    return check.problems(), check.records
