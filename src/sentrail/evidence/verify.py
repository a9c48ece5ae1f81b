"""Offline verification of an evidence bundle (see :mod:`sentrail.evidence.bundle`).

The zip is hostile input. In order, the verifier checks:

1. the container: only the known member names (no paths, no duplicates, no links, no
   encryption), declared and actual sizes under the limits, CRCs;
2. the manifest: a DSSE signature by a trusted key over an in-toto Statement v1;
3. that the manifest lists exactly the zip's members, each with its SHA-256;
4. the checkpoint: signed by a trusted key under the name of its origin (the tenant's log
   origin, or the key's own name for checkpoints from before per-tenant origins), and
   matching proofs.json;
5. every event: seq order, payload digest, chain link (genesis first), leaf inclusion in
   the export tree (in the entry's leaf version: version 2 commits to the app, the time
   received and the sealed flag; version 1 entries may only precede version 2 ones), and
   the totals and head chain hash signed in the manifest;
6. redactions: every ``redaction`` event is a well-formed record of the run, and every
   view's SHA-256 is the one a later redaction record of the run gives for its seq (a
   view nobody vouched for, or one that differs, is rejected);
7. the consistency proof from the export tree to the checkpoint.

The first failure raises :class:`EvidenceError` naming the file and the event.
Trust: with ``trusted_key`` only that key (or keys) is accepted; without, the bundle's own
``keys.pub`` is used and the report says the key was not pinned.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import stat
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import msgspec

from sentrail.evidence.bundle import (
    CHECKPOINT,
    FINDINGS,
    INDEX,
    KEYS,
    MANIFEST,
    MEMBERS,
    PAYLOADS,
    PREDICATE_TYPE,
    PROOFS,
    REPLAY_DIFF,
    SUMMARY,
    VIEWS,
    BundlePredicate,
    IndexFile,
    ProofsFile,
    check_summary,
)
from sentrail.evidence.chain import (
    CHAIN_DOMAIN,
    GENESIS,
    LEAF_VERSIONS,
    leaf_data_after,
    run_prefix,
)
from sentrail.evidence.checkpoint import log_verifiers, verify_checkpoint
from sentrail.evidence.dsse import parse_statement, verify_envelope
from sentrail.evidence.errors import EvidenceError
from sentrail.evidence.merkle import InclusionChecker, leaf_hash, verify_consistency
from sentrail.evidence.note import Verifier
from sentrail.evidence.redaction import RedactionCheck, RedactionInfo

_T = TypeVar("_T")
MAX_MEMBER_BYTES = 1 << 31
MAX_TOTAL_BYTES = 1 << 32


@dataclass(frozen=True)
class BundleReport:
    """What a bundle that verified proves."""

    tenant: str
    run_id: str
    events: int
    redacted_seqs: tuple[int, ...]
    first_seq: int
    last_seq: int
    head_chain_hash: str
    tree_size: int
    checkpoint_origin: str
    checkpoint_size: int
    checkpoint_root: str
    trusted_keys: tuple[str, ...]
    key_pinned: bool
    view_seqs: tuple[int, ...] = ()
    redactions: tuple[RedactionInfo, ...] = ()  # what was redacted, when, by whom, why
    app: str | None = None  # None: a bundle of events from before apps were in the log


def _unsafe(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or ".." in parts or ":" in name or "" in parts


def read_members(
    path: Path, max_member: int = MAX_MEMBER_BYTES, max_total: int = MAX_TOTAL_BYTES
) -> dict[str, bytes]:
    """The members of the bundle zip at ``path``, treating it as hostile."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise EvidenceError(
            f"not an evidence bundle (not a readable zip: {e})", str(path)
        ) from None
    out: dict[str, bytes] = {}
    total = 0
    with zf:
        infos = zf.infolist()
        if len(infos) > 2 * len(MEMBERS):
            raise EvidenceError(f"{len(infos)} members; a bundle has {len(MEMBERS)}", str(path))
        for info in infos:
            name = info.filename
            where = f"{path}: {name!r}"
            if _unsafe(name):
                raise EvidenceError("unsafe member path (absolute or '..')", where)
            if name not in MEMBERS:
                raise EvidenceError("not an evidence bundle: unexpected member", where)
            if name in out:
                raise EvidenceError("duplicate member", where)
            if stat.S_ISLNK(info.external_attr >> 16) or info.is_dir():
                raise EvidenceError("member is a link or a directory", where)
            if info.flag_bits & 0x1:
                raise EvidenceError("member is encrypted", where)
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise EvidenceError("unsupported compression method", where)
            if info.file_size > max_member or total + info.file_size > max_total:
                raise EvidenceError(f"member is larger than the limit ({max_member})", where)
            try:
                with zf.open(info) as f:
                    data = f.read(max_member + 1)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
                raise EvidenceError(f"corrupt member: {e}", where) from None
            if len(data) > max_member or len(data) != info.file_size:
                raise EvidenceError("member size differs from its header or is too large", where)
            total += len(data)
            out[name] = data
    return out


def _decode(data: bytes, typ: type[_T], where: str) -> _T:
    try:
        return msgspec.json.decode(data, type=typ)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise EvidenceError(f"malformed: {e}", where) from None


def _hex32(text: str, where: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32 or raw.hex() != text:
        raise EvidenceError("not a 32-byte lowercase hex hash", where)
    return raw


def _trusted(files: dict[str, bytes], trusted_key: str | Sequence[str] | None) -> list[Verifier]:
    if trusted_key is not None:
        keys = [trusted_key] if isinstance(trusted_key, str) else list(trusted_key)
        return [Verifier.parse(k) for k in keys]
    if KEYS not in files:
        raise EvidenceError("no keys.pub in the bundle and no trusted key given", KEYS)
    try:
        lines = files[KEYS].decode().splitlines()
    except UnicodeDecodeError:
        raise EvidenceError("not UTF-8", KEYS) from None
    try:
        return [Verifier.parse(line) for line in lines if line.strip()]
    except EvidenceError as e:
        raise e.at(KEYS) from None


def _check_manifest(files: dict[str, bytes], trusted: list[Verifier]) -> BundlePredicate:
    if MANIFEST not in files:
        raise EvidenceError("the bundle has no signed manifest", MANIFEST)
    try:
        payload = verify_envelope(files[MANIFEST], trusted)
        statement = parse_statement(payload)
    except EvidenceError as e:
        raise e.at(MANIFEST) from None
    if statement.predicate_type != PREDICATE_TYPE:
        raise EvidenceError(f"predicateType is not {PREDICATE_TYPE}", MANIFEST)
    listed: dict[str, str] = {}
    for s in statement.subject:
        if s.name in listed:
            raise EvidenceError("the manifest lists a file twice", f"{MANIFEST}: {s.name}")
        listed[s.name] = s.digest.get("sha256", "")
    present = set(files) - {MANIFEST}
    unlisted, missing = sorted(present - set(listed)), sorted(set(listed) - present)
    if unlisted:
        raise EvidenceError("file in the zip is not listed in the signed manifest", unlisted[0])
    if missing:
        raise EvidenceError(
            "file listed in the signed manifest is missing from the zip", missing[0]
        )
    for name in sorted(listed):
        if hashlib.sha256(files[name]).hexdigest() != listed[name]:
            raise EvidenceError("SHA-256 does not match the signed manifest", name)
    try:
        return msgspec.convert(statement.predicate, BundlePredicate)
    except msgspec.ValidationError as e:
        raise EvidenceError(f"malformed predicate: {e}", MANIFEST) from None


def _leaf_version(
    version: int, newest: int, app: str | None, received_at: float | None, where: str
) -> int:
    """``version`` if an entry may have it after entries up to ``newest``."""
    if version not in LEAF_VERSIONS:
        raise EvidenceError(f"unknown leaf version {version}", where)
    if version < newest:
        raise EvidenceError("a version 1 leaf after version 2 leaves", where)
    if version == 2 and (app is None or received_at is None):
        raise EvidenceError("a version 2 leaf needs the app and received_at", where)
    return version


def verify_bundle(
    path: Path | str,
    trusted_key: str | Sequence[str] | None = None,
    *,
    max_member_bytes: int = MAX_MEMBER_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
) -> BundleReport:
    """Verify the bundle at ``path`` with nothing else; raise on the first problem."""
    files = read_members(Path(path), max_member_bytes, max_total_bytes)
    trusted = _trusted(files, trusted_key)
    pred = _check_manifest(files, trusted)  # from here on every file is as signed

    cp = verify_checkpoint(files[CHECKPOINT], log_verifiers(trusted, pred.tenant))
    proofs = _decode(files[PROOFS], ProofsFile, PROOFS)
    index = _decode(files[INDEX], IndexFile, INDEX)
    _decode(files[FINDINGS], msgspec.Raw, FINDINGS)
    if (cp.origin, cp.size) != (proofs.origin, proofs.checkpoint_size):
        raise EvidenceError(
            f"checkpoint {cp.origin} size {cp.size} does not match proofs.json "
            f"({proofs.origin} size {proofs.checkpoint_size})",
            CHECKPOINT,
        )
    if (pred.checkpoint_origin, pred.checkpoint_size, pred.tree_size) != (
        cp.origin,
        cp.size,
        proofs.tree_size,
    ):
        raise EvidenceError("the manifest's tree sizes or origin differ from the proofs", PROOFS)
    try:
        blob = base64.b64decode(proofs.nodes, validate=True)
        root = base64.b64decode(proofs.root_hash, validate=True)
    except binascii.Error:
        raise EvidenceError("nodes or root_hash is not base64", PROOFS) from None
    if len(blob) % 32:
        raise EvidenceError("the node table is not a list of 32-byte hashes", PROOFS)
    nodes = [blob[i : i + 32] for i in range(0, len(blob), 32)]

    def resolve(ids: list[int], where: str) -> list[bytes]:
        try:
            if ids and min(ids) < 0:
                raise IndexError
            return [nodes[i] for i in ids]
        except IndexError:
            raise EvidenceError("proof refers to a node not in the node table", where) from None

    events = index.events
    if (index.tenant, index.run_id, index.app) != (pred.tenant, pred.run_id, pred.app):
        raise EvidenceError("tenant, app or run id differs from the signed manifest", INDEX)
    if SUMMARY in files:
        check_summary(files[SUMMARY], pred.run_id, SUMMARY)
    if REPLAY_DIFF in files:
        check_summary(files[REPLAY_DIFF], pred.run_id, REPLAY_DIFF, "replay diff")
    if len(events) != pred.events:
        raise EvidenceError(
            f"{len(events)} events, but the signed manifest says {pred.events}", INDEX
        )
    if len(proofs.inclusion) != len(events):
        raise EvidenceError("one inclusion proof per event is needed", PROOFS)

    payloads = files[PAYLOADS]
    views = files.get(VIEWS, b"")
    sha256 = hashlib.sha256
    prev, last_seq, offset, size = GENESIS, -1, 0, proofs.tree_size
    redacted: list[int] = []
    view_seqs: list[int] = []
    view_offset = 0
    check = RedactionCheck(require_records=False)
    tenant, run_id, app = index.tenant, index.run_id, index.app
    version = 1
    prefixes = {v: run_prefix(v, tenant, app or "", run_id) for v in LEAF_VERSIONS}
    included = InclusionChecker(size, root)
    for i, e in enumerate(events):
        where = f"{INDEX}: event {i} (seq {e.seq})"
        if e.seq <= last_seq:
            raise EvidenceError("events are out of order (swapped or duplicated)", where)
        version = _leaf_version(e.leaf_version, version, app, e.received_at, where)
        digest = _hex32(e.payload_sha256, where)
        payload: bytes | None = None
        if e.redacted:
            if e.length:
                raise EvidenceError("a redacted event has payload bytes", where)
            redacted.append(e.seq)
        else:
            if e.offset != offset or e.length < 0 or offset + e.length > len(payloads):
                raise EvidenceError("payload offset/length is not the next slice", where)
            payload = payloads[offset : offset + e.length]
            if sha256(payload).digest() != digest:
                raise EvidenceError("payload bytes do not match their SHA-256", where)
            offset += e.length
        view: bytes | None = None
        if e.view_length is not None:
            end = view_offset + e.view_length
            if e.view_offset != view_offset or e.view_length < 0 or end > len(views):
                raise EvidenceError("view offset/length is not the next slice", where)
            view = views[view_offset:end]
            view_offset = end
            view_seqs.append(e.seq)
        elif e.view_offset:
            raise EvidenceError("an event without a view has a view offset", where)
        check.add(run_id, e.seq, e.kind, payload, view)
        prev_hash = _hex32(e.prev_hash, where)
        if prev_hash != prev:
            reason = (
                "the first event does not start at genesis"
                if i == 0
                else (
                    "chain broken: prev_hash is not the previous event's chain hash "
                    "(event removed, inserted or reordered)"
                )
            )
            raise EvidenceError(reason, where)
        if not 0 <= e.seq < 1 << 64:
            raise EvidenceError(f"sequence number {e.seq} is out of range", where)
        data = leaf_data_after(
            prefixes[version],
            version,
            e.seq,
            e.event_id,
            e.kind,
            e.received_at or 0.0,
            e.sealed,
            digest,
            prev_hash,
        )
        chained = sha256(CHAIN_DOMAIN + prev + sha256(data).digest())
        if chained.digest() != _hex32(e.chain_hash, where):
            raise EvidenceError("chain hash does not match the entry", where)
        proof = resolve(proofs.inclusion[i], where)
        if not included.verify(leaf_hash(data), e.seq, proof):
            raise EvidenceError(f"inclusion proof does not verify at tree size {size}", where)
        prev, last_seq = chained.digest(), e.seq
    if offset != len(payloads):
        raise EvidenceError("payload bytes not claimed by any event", PAYLOADS)
    if view_offset != len(views):
        raise EvidenceError("view bytes not claimed by any event", VIEWS)
    if len(view_seqs) != pred.views:
        raise EvidenceError(
            f"{len(view_seqs)} view(s), but the signed manifest says {pred.views}", INDEX
        )
    if (events[0].seq if events else -1, last_seq, prev.hex()) != (
        pred.first_seq,
        pred.last_seq,
        pred.head_chain_hash,
    ):
        raise EvidenceError("first/last seq or head chain hash differ from the manifest", INDEX)
    problems = check.problems()
    if problems:
        seq, reason = problems[0]
        raise EvidenceError(reason, f"{INDEX}: seq {seq}")
    consistency = resolve(proofs.consistency, PROOFS)
    if not verify_consistency(size, cp.size, root, cp.root_hash, consistency):
        raise EvidenceError(
            f"consistency proof from tree size {size} to the checkpoint's {cp.size} fails",
            PROOFS,
        )
    return BundleReport(
        tenant=tenant,
        run_id=run_id,
        events=len(events),
        redacted_seqs=tuple(redacted),
        first_seq=pred.first_seq,
        last_seq=pred.last_seq,
        head_chain_hash=pred.head_chain_hash,
        tree_size=size,
        checkpoint_origin=cp.origin,
        checkpoint_size=cp.size,
        checkpoint_root=cp.root_hash.hex(),
        trusted_keys=tuple(v.key_ref for v in trusted),
        key_pinned=trusted_key is not None,
        view_seqs=tuple(view_seqs),
        redactions=tuple(check.records),
        app=app,
    )
