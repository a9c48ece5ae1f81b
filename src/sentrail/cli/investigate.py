"""What the investigation commands share: a stored run with its decisions, the evidence
summary built from it, and the evidence bundle (``runs show``, ``graph --run``,
``evidence export``, ``replay --evidence``)."""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import typer

from sentrail.cli.common import EXIT_FINDINGS, fail
from sentrail.cli.export import parse_since
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
    REPLAY_DIFF,
    SUMMARY,
    VIEWS,
    EventRecord,
    build_bundle,
)
from sentrail.evidence.keys import KeyStore
from sentrail.evidence.merkle import MerkleTree
from sentrail.evidence.note import Signer
from sentrail.forensics.summary import encode_summary, evidence_summary
from sentrail.report.escape import safe_text
from sentrail.report.json_report import terminal_safe_json
from sentrail.runtime.logged_runs import LoggedRun, load_run, run_apps
from sentrail.store.core import LogStore
from sentrail.store.log_verify import verify_log
from sentrail.store.records import records
from sentrail.store.run_values import apps_with_runs


class Investigation(msgspec.Struct):
    stored: LoggedRun
    decisions: list[Decision]


def investigate(store: LogStore, tenant: str, app: str, run_id: str) -> Investigation | None:
    """A run of ``tenant``'s ``app`` as stored, with its decisions (None when the log has
    none)."""
    stored = load_run(store, tenant, app, run_id)
    if stored is None:
        return None
    return Investigation(stored, decode_decisions(stored.decision_payloads))


def run_summary(
    store: LogStore,
    tenant: str,
    app: str,
    run_id: str,
    records: Sequence[EventRecord],
    replay_diff: dict[str, Any] | None = None,
) -> bytes | None:
    """``summary.json`` for the bundle of ``records`` (None when the log has no such run);
    ``replay_diff`` is its ``parts.replay_diff`` when the bundle carries one."""
    found = investigate(store, tenant, app, run_id)
    if found is None:
        return None
    s = found.stored
    members = [INDEX, PAYLOADS, PROOFS, CHECKPOINT, KEYS, FINDINGS, SUMMARY, MANIFEST]
    if any(r.view is not None for r in records):
        members.insert(2, VIEWS)
    if replay_diff is not None:
        members.insert(-1, REPLAY_DIFF)
    parts = {
        "bundle": {"format": PREDICATE_TYPE, "manifest": MANIFEST, "members": members},
        "audit_log": {
            "member": INDEX,
            "tenant": tenant,
            "app": app,
            "events": len(records),
            "first_seq": records[0].seq if records else None,
            "last_seq": records[-1].seq if records else None,
            "kinds": sorted({r.kind for r in records}),
        },
        "findings": {"member": FINDINGS},
    }
    if replay_diff is not None:
        parts["replay_diff"] = replay_diff
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


def export_bundle(
    store: LogStore,
    keys: KeyStore,
    signer: Signer,
    tenant: str,
    app: str,
    run_id: str,
    output: Path,
    *,
    replay: tuple[bytes, dict[str, Any]] | None = None,
) -> int:
    """Write the evidence bundle of one run to ``output`` (the tenant log is verified
    first: exit 1 when it does not); returns the number of events. ``replay``: the
    ``replay-diff.json`` bytes and the summary's ``parts.replay_diff``. SentrailError or
    OSError for the caller to report."""
    events = store.run_events(tenant, app, run_id)
    if not events:
        fail(f"no events of run {run_id!r} of app {app!r} for tenant {tenant!r}")
    report = verify_log(store, tenant, keys.verifiers())
    if report.problem is not None:
        typer.echo(f"FAIL: the log does not verify: {safe_text(str(report.problem))}")
        raise typer.Exit(EXIT_FINDINGS)
    checkpoint = store.checkpoint(tenant)
    assert checkpoint is not None
    tree = MerkleTree(store.leaf_hashes(tenant))
    records = [e.record() for e in events]
    findings = store.get_result(tenant, app, run_id) or b"[]"
    part = replay[1] if replay is not None else None
    summary = run_summary(store, tenant, app, run_id, records, part)
    build_bundle(
        output,
        tenant=tenant,
        run_id=run_id,
        events=records,
        tree=tree,
        checkpoint_note=checkpoint.note,
        signer=signer,
        findings=findings,
        summary=summary,
        replay_diff=replay[0] if replay is not None else None,
    )
    return len(records)


def tenant_apps(store: LogStore, tenant: str, app: str | None) -> list[str]:
    """``[app]``, or every app of ``tenant`` that holds runs."""
    if app is not None:
        return [app]
    with records(store) as rtx:
        return apps_with_runs(rtx.tx, tenant)


def app_of_run(store: LogStore, tenant: str, app: str | None, run_id: str) -> str:
    """``app``, or without ``--app`` the one app of ``tenant`` whose log holds a run
    ``run_id``: a usage error when none does, or when several do (a run is ``(tenant, app,
    run_id)``: the user names the app)."""
    if app is not None:
        return app
    apps = run_apps(store, tenant, run_id)
    if len(apps) > 1:
        fail(f"apps {', '.join(apps)} each hold a run {run_id!r}: name one with --app")
    if not apps:
        fail(f"no events of run {run_id!r} in tenant {tenant!r}")
    return apps[0]


def find_run(store: LogStore, tenant: str, app: str | None, run_id: str) -> Investigation:
    """The run ``run_id`` of ``app`` (:func:`app_of_run`), or a usage error."""
    chosen = app_of_run(store, tenant, app, run_id)
    found = investigate(store, tenant, chosen, run_id)
    if found is None:
        fail(f"no run {run_id!r} in app {chosen!r} of tenant {tenant!r}")
    return found


def since_epoch(text: str | None) -> float | None:
    """``--since``: an ISO 8601 time or a duration back from now (30m, 24h, 7d, 2w)."""
    if text is None:
        return None
    try:
        return parse_since(text, time.time()) / 1000
    except ValueError as exc:
        fail(str(exc))


def emit_json(value: object) -> None:
    """JSON for scripts, printed as inert as the text: what a terminal would act on (C1
    controls, bidi overrides, zero-width characters) is written as ``\\uXXXX`` escapes."""
    sys.stdout.buffer.write(terminal_safe_json(msgspec.json.encode(value)) + b"\n")
    sys.stdout.buffer.flush()


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat().replace("+00:00", "Z")
