"""What the investigation commands share: a stored run with its decisions, and the evidence
summary built from it (``runs show``, ``graph --run``, ``evidence export``)."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from sentrail.enforce.model import Decision, decode_decisions
from sentrail.evidence.bundle import (
    CHECKPOINT,
    FINDINGS,
    INDEX,
    KEYS,
    MANIFEST,
    PAYLOADS,
    PREDICATE_TYPE,
    PROOFS,
    SUMMARY,
    VIEWS,
    EventRecord,
)
from sentrail.forensics.stored import StoredRun, load_run
from sentrail.forensics.summary import encode_summary, evidence_summary
from sentrail.store.core import LogStore


class Investigation(msgspec.Struct):
    stored: StoredRun
    decisions: list[Decision]


def investigate(store: LogStore, tenant: str, run_id: str) -> Investigation | None:
    """A run of ``tenant`` as stored, with its decisions (None when the log has none)."""
    stored = load_run(store, tenant, run_id)
    if stored is None:
        return None
    return Investigation(stored, decode_decisions(stored.decision_payloads))


def run_summary(
    store: LogStore, tenant: str, run_id: str, records: Sequence[EventRecord]
) -> bytes | None:
    """``summary.json`` for the bundle of ``records`` (None when the log has no such run)."""
    found = investigate(store, tenant, run_id)
    if found is None:
        return None
    s = found.stored
    members = [INDEX, PAYLOADS, PROOFS, CHECKPOINT, KEYS, FINDINGS, SUMMARY, MANIFEST]
    if any(r.view is not None for r in records):
        members.insert(2, VIEWS)
    parts = {
        "bundle": {"format": PREDICATE_TYPE, "manifest": MANIFEST, "members": members},
        "audit_log": {
            "member": INDEX,
            "tenant": tenant,
            "events": len(records),
            "first_seq": records[0].seq if records else None,
            "last_seq": records[-1].seq if records else None,
            "kinds": sorted({r.kind for r in records}),
        },
        "findings": {"member": FINDINGS},
    }
    summary = evidence_summary(
        s.run,
        s.result,
        found.decisions,
        run_id=run_id,
        tenant=tenant,
        policy_sha256=s.policy_sha256,
        trace_bytes=s.trace_bytes,
        parts=parts,
    )
    return encode_summary(summary)
