"""Evidence bundles: one run's evidence in a zip that verifies offline with a public key.

Members (a fixed set; anything else is rejected by the verifier)::

    events/index.json    {"tenant", "run_id", "events": [EventEntry...]}, in seq order
    events/payloads.bin  the exact stored bytes of every non-redacted event, concatenated
                         in order (each entry gives its offset and length)
    events/views.bin     only when some event has one: the redacted views, concatenated in
                         order (an entry with a view gives view_offset and view_length)
    proofs.json          tree size and root at export, a table of distinct proof nodes,
                         per-event inclusion proofs and the consistency proof to the
                         checkpoint, as indexes into that table (see ProofsFile)
    checkpoint.txt       the signed C2SP checkpoint (signed note)
    keys.pub             verifier key(s), one per line
    findings.json        findings and decisions of the run (JSON, opaque here)
    summary.json         optional: the responder's summary of the run (JSON object whose
                         ``trace_id`` is the run id; built outside the evidence core, see
                         sentrail.forensics.summary)
    replay-diff.json     optional: the run replayed under another policy and the diff
                         against its stored judgement (JSON object whose ``trace_id`` is
                         the run id; built outside the evidence core, see
                         sentrail.forensics.replay)
    manifest.dsse.json   DSSE envelope of an in-toto Statement v1 whose subjects are all
                         the members above with their SHA-256, and whose predicate
                         (PREDICATE_TYPE) carries the run id, event count, first and last
                         seq, the run's head chain hash, tree sizes and the origin

Each event is leaf ``seq`` of its tenant's log; its leaf data is
:meth:`sentrail.evidence.chain.EventLeaf.leaf_data` in the entry's ``leaf_version``:
version 2 (tenant, app, run id, event id, kind, seq, ``received_at``, the ``sealed`` flag,
SHA-256 of the payload, previous chain hash; the app is the index's and the manifest's
``app``), or version 1 for events stored before schema v5 (no app, time or flag). A
redacted event keeps its digest and has no payload bytes, so it still verifies. A view
(the redacted copy of a JSON payload) is not committed to by the log: it is vouched for
by the run's ``redaction`` event, itself an event of the bundle
(:mod:`sentrail.evidence.redaction`). Verification is in
:mod:`sentrail.evidence.verify`.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from sentrail.evidence.chain import GENESIS, EventLeaf
from sentrail.evidence.checkpoint import Checkpoint
from sentrail.evidence.dsse import IN_TOTO_PAYLOAD_TYPE, make_statement, sign_envelope
from sentrail.evidence.errors import EvidenceError
from sentrail.evidence.merkle import MerkleTree, leaf_hash
from sentrail.evidence.note import Signer, Verifier, split_note
from sentrail.evidence.redaction import check_views

PREDICATE_TYPE = "https://sentrail.dev/evidence-bundle/v1"
INDEX = "events/index.json"
PAYLOADS = "events/payloads.bin"
VIEWS = "events/views.bin"
PROOFS = "proofs.json"
CHECKPOINT = "checkpoint.txt"
KEYS = "keys.pub"
FINDINGS = "findings.json"
SUMMARY = "summary.json"
REPLAY_DIFF = "replay-diff.json"
MANIFEST = "manifest.dsse.json"
SUBJECT_FILES = (INDEX, PAYLOADS, VIEWS, PROOFS, CHECKPOINT, KEYS, FINDINGS, SUMMARY, REPLAY_DIFF)
MEMBERS = (*SUBJECT_FILES, MANIFEST)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One stored event of a run, as the store hands it to the exporter.

    ``payload`` is the exact stored bytes, or None when the payload was crypto-erased;
    ``view`` is the redacted copy kept by a field redaction, if any.
    """

    seq: int
    run_id: str
    event_id: str
    kind: str
    payload: bytes | None
    payload_sha256: bytes
    prev_hash: bytes
    chain_hash: bytes
    view: bytes | None = None
    app: str = ""
    received_at: float = 0.0
    sealed: bool = False
    leaf_version: int = 1

    def leaf(self, tenant: str) -> EventLeaf:
        return EventLeaf(
            tenant,
            self.seq,
            self.run_id,
            self.event_id,
            self.kind,
            self.payload_sha256,
            self.prev_hash,
            self.app,
            self.received_at,
            self.sealed,
            self.leaf_version,
        )


class EventEntry(msgspec.Struct, forbid_unknown_fields=True):
    """One event in ``events/index.json`` (hashes in lowercase hex)."""

    seq: int
    event_id: str
    kind: str
    payload_sha256: str
    prev_hash: str
    chain_hash: str
    offset: int
    length: int
    redacted: bool = False
    view_offset: int = 0
    view_length: int | None = None  # None: no view
    leaf_version: int = 1
    received_at: float | None = None  # version 2: the time received (in the leaf)
    sealed: bool = False  # version 2: stored sealed at rest (in the leaf)


class IndexFile(msgspec.Struct, forbid_unknown_fields=True):
    tenant: str
    run_id: str
    events: list[EventEntry]
    app: str | None = None  # required by version 2 entries


class ProofsFile(msgspec.Struct, forbid_unknown_fields=True):
    """``proofs.json``: proofs as indexes into ``nodes`` (base64 of 32-byte hashes).

    ``inclusion[i]`` proves event ``i`` of the index (leaf ``seq``) in the tree of
    ``tree_size`` leaves with root ``root_hash``; ``consistency`` proves that tree is a
    prefix of the checkpoint's tree of ``checkpoint_size`` leaves.
    """

    origin: str
    tree_size: int
    root_hash: str
    checkpoint_size: int
    nodes: str
    inclusion: list[list[int]]
    consistency: list[int]


class BundlePredicate(msgspec.Struct, forbid_unknown_fields=True):
    tenant: str
    run_id: str
    events: int
    redacted: int
    first_seq: int
    last_seq: int
    head_chain_hash: str
    tree_size: int
    checkpoint_size: int
    checkpoint_origin: str
    views: int = 0
    app: str | None = None


def check_records(tenant: str, run_id: str, events: Sequence[EventRecord]) -> None:
    """Refuse to export evidence that does not hold together (order, digests, chain)."""
    if not events:
        raise EvidenceError("a bundle needs at least one event", "export")
    prev, last_seq = GENESIS, -1
    app = events[0].app
    for e in events:
        where = f"export: event seq {e.seq}"
        if e.run_id != run_id:
            raise EvidenceError(f"belongs to run {e.run_id!r}, not {run_id!r}", where)
        if e.app != app:
            raise EvidenceError(f"belongs to app {e.app!r}, not {app!r}", where)
        if e.seq <= last_seq:
            raise EvidenceError("events are not in increasing seq order", where)
        if e.payload is not None and hashlib.sha256(e.payload).digest() != e.payload_sha256:
            raise EvidenceError("the payload does not match its digest", where)
        if e.prev_hash != prev:
            raise EvidenceError("prev_hash does not continue the run's chain", where)
        if e.leaf(tenant).chain_hash() != e.chain_hash:
            raise EvidenceError("the chain hash does not match the entry", where)
        prev, last_seq = e.chain_hash, e.seq
    problems, _ = check_views(
        [(e.run_id, e.seq, e.kind, e.payload, e.view) for e in events], require_records=False
    )
    if problems:
        seq, reason = problems[0]
        raise EvidenceError(reason, f"export: event seq {seq}")


class SummaryHead(msgspec.Struct):
    """The one field of ``summary.json`` the evidence core reads: whose run it summarises."""

    trace_id: str


def check_summary(data: bytes, run_id: str, where: str, what: str = "summary") -> None:
    """A summary (or a replay diff) is a JSON object about this run (its other fields are
    opaque here)."""
    try:
        head = msgspec.json.decode(data, type=SummaryHead)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise EvidenceError(f"malformed {what}: {err}", where) from None
    if head.trace_id != run_id:
        raise EvidenceError(f"the {what} is of run {head.trace_id!r}, not {run_id!r}", where)


def _proofs(
    tree: MerkleTree, events: Sequence[EventRecord], tree_size: int, checkpoint_size: int
) -> tuple[list[bytes], list[list[int]], list[int]]:
    table: dict[bytes, int] = {}
    nodes: list[bytes] = []

    def ids(proof: list[bytes]) -> list[int]:
        out = []
        for node in proof:
            i = table.get(node)
            if i is None:
                i = table[node] = len(nodes)
                nodes.append(node)
            out.append(i)
        return out

    inclusion = [ids(tree.inclusion_proof(e.seq, tree_size)) for e in events]
    consistency = ids(tree.consistency_proof(tree_size, checkpoint_size))
    return nodes, inclusion, consistency


def build_bundle(
    path: Path,
    *,
    tenant: str,
    run_id: str,
    events: Sequence[EventRecord],
    tree: MerkleTree,
    checkpoint_note: str,
    signer: Signer,
    findings: bytes = b"[]",
    summary: bytes | None = None,
    replay_diff: bytes | None = None,
    tree_size: int | None = None,
    extra_verifiers: Sequence[Verifier] = (),
) -> None:
    """Write the evidence bundle of ``run_id`` to ``path``.

    ``tree`` is the tenant log (at least up to the checkpoint); ``tree_size`` is the size
    at export (default: the checkpoint's), at which inclusion proofs are made, and from
    which a consistency proof leads to the checkpoint. ``signer`` signs the manifest;
    its verifier key and ``extra_verifiers`` (e.g. the key that signed the checkpoint)
    go to ``keys.pub``. ``summary``, when given, becomes ``summary.json``, and
    ``replay_diff`` ``replay-diff.json`` (signed like the rest).
    """
    check_records(tenant, run_id, events)
    checkpoint = Checkpoint.parse(split_note(checkpoint_note)[0])
    size = checkpoint.size if tree_size is None else tree_size
    if not events[-1].seq < size <= checkpoint.size <= len(tree):
        raise EvidenceError(
            f"need last seq {events[-1].seq} < export size {size} <= checkpoint size "
            f"{checkpoint.size} <= log size {len(tree)}",
            "export",
        )
    if tree.root(checkpoint.size) != checkpoint.root_hash:
        raise EvidenceError("the checkpoint's root is not the log's root at its size", "export")
    tree_leaf = tree.leaf
    for e in events:
        if tree_leaf(e.seq) != leaf_hash(e.leaf(tenant).leaf_data()):
            raise EvidenceError("the log's leaf differs from the event", f"export: seq {e.seq}")
    try:
        msgspec.json.decode(findings)
    except msgspec.DecodeError as err:
        raise EvidenceError(f"findings are not JSON: {err}", "export") from None
    if summary is not None:
        check_summary(summary, run_id, "export")
    if replay_diff is not None:
        check_summary(replay_diff, run_id, "export", "replay diff")

    entries, chunks, offset = [], [], 0
    view_chunks, view_offset = [], 0
    for e in events:
        length = 0 if e.payload is None else len(e.payload)
        view_length = None if e.view is None else len(e.view)
        entries.append(
            EventEntry(
                seq=e.seq,
                event_id=e.event_id,
                kind=e.kind,
                payload_sha256=e.payload_sha256.hex(),
                prev_hash=e.prev_hash.hex(),
                chain_hash=e.chain_hash.hex(),
                offset=offset,
                length=length,
                redacted=e.payload is None,
                view_offset=view_offset if e.view is not None else 0,
                view_length=view_length,
                leaf_version=e.leaf_version,
                received_at=e.received_at if e.leaf_version == 2 else None,
                sealed=e.sealed if e.leaf_version == 2 else False,
            )
        )
        if e.payload is not None:
            chunks.append(e.payload)
        offset += length
        if e.view is not None:
            view_chunks.append(e.view)
            view_offset += len(e.view)
    nodes, inclusion, consistency = _proofs(tree, events, size, checkpoint.size)
    proofs = ProofsFile(
        origin=checkpoint.origin,
        tree_size=size,
        root_hash=base64.b64encode(tree.root(size)).decode(),
        checkpoint_size=checkpoint.size,
        nodes=base64.b64encode(b"".join(nodes)).decode(),
        inclusion=inclusion,
        consistency=consistency,
    )
    key_lines = dict.fromkeys([signer.verifier_key(), *(v.verifier_key() for v in extra_verifiers)])
    app = events[0].app or None
    files = {
        INDEX: msgspec.json.encode(IndexFile(tenant, run_id, entries, app)),
        PAYLOADS: b"".join(chunks),
        **({VIEWS: b"".join(view_chunks)} if view_chunks else {}),
        PROOFS: msgspec.json.encode(proofs),
        CHECKPOINT: checkpoint_note.encode(),
        KEYS: "".join(f"{k}\n" for k in key_lines).encode(),
        FINDINGS: findings,
        **({SUMMARY: summary} if summary is not None else {}),
        **({REPLAY_DIFF: replay_diff} if replay_diff is not None else {}),
    }
    predicate = BundlePredicate(
        tenant=tenant,
        run_id=run_id,
        events=len(events),
        redacted=sum(e.payload is None for e in events),
        first_seq=events[0].seq,
        last_seq=events[-1].seq,
        head_chain_hash=events[-1].chain_hash.hex(),
        tree_size=size,
        checkpoint_size=checkpoint.size,
        checkpoint_origin=checkpoint.origin,
        views=len(view_chunks),
        app=app,
    )
    statement = make_statement(
        {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
        PREDICATE_TYPE,
        msgspec.to_builtins(predicate),
    )
    envelope = sign_envelope(statement, IN_TOTO_PAYLOAD_TYPE, signer)
    files[MANIFEST] = msgspec.json.encode(envelope)
    write_zip(path, files)


def write_zip(path: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (name -> bytes) as a deterministic deflated zip."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
