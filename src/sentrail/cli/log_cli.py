"""``sentrail log checkpoint`` and ``sentrail log verify`` (docs/evidence.md).

``log checkpoint --tenant T`` prints the tenant log's latest signed checkpoint (signing a
current one first when this machine holds the log key): keep it somewhere the database's
administrators cannot write, and later hold the store to it with ``log verify
--checkpoint FILE``. ``log verify`` recomputes every chain, the Merkle tree and every
checkpoint, and with ``--checkpoint`` / ``--witness`` proves the log consistent with the
records kept outside; ``--deep`` re-derives the index (verdicts, findings, triage) from
the logged events. Exit 0 verified, 1 tampering or disagreement, 2 usage error.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sentrail.cli.common import EXIT_FINDINGS, fail
from sentrail.cli.store_access import Database, key_store, open_migrated
from sentrail.engine.config import EngineConfig
from sentrail.errors import SentrailError
from sentrail.evidence.witness import Cosigner
from sentrail.report.escape import safe_text
from sentrail.runtime.deep_verify import EnginePicker, deep_verify
from sentrail.store.core import LogStore
from sentrail.store.log_verify import LogReport, Outside, verify_log
from sentrail.store.witness import (
    FileWitness,
    HttpWitness,
    WitnessError,
    WitnessUnreachable,
    fetch_note,
    open_witness,
)

if TYPE_CHECKING:
    from sentrail.store.witness_s3 import S3Witness

    Witnesses = FileWitness | HttpWitness | S3Witness

log_app = typer.Typer(help="The tamper-evident event log.", no_args_is_help=True)
DEFAULT_MAX_UNSIGNED_AGE = 300.0


@log_app.command("checkpoint")
def checkpoint(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id")],
    database: Database = None,
) -> None:
    """Print the tenant log's latest signed checkpoint (C2SP signed note) to stdout, and
    the verifier key of its origin to stderr."""
    keys = key_store()
    try:
        signer = keys.active()
    except SentrailError:
        signer = None  # a machine without the log key prints what is stored
    store = open_migrated(database, signer)
    try:
        if tenant not in store.tenants():
            fail(f"no tenant {tenant!r} in this store")
        cp = store.checkpoint(tenant) if signer is not None else store.latest_checkpoint(tenant)
        if cp is None:
            fail(f"tenant {tenant!r} has no signed checkpoint yet", EXIT_FINDINGS)
        log_key = store.log_signer(tenant)
    except SentrailError as exc:
        fail(str(exc))
    finally:
        store.close()
    typer.echo(cp.note, nl=False)
    if log_key is not None:
        typer.echo(f"verifier key: {log_key.verifier_key()}", err=True)


@log_app.command("verify")
def verify(
    database: Database = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant")] = None,
    checkpoint: Annotated[
        list[str] | None,
        typer.Option(
            "--checkpoint",
            help="A checkpoint kept outside (file or http(s) URL; repeatable): the log must "
            "be consistent with it",
        ),
    ] = None,
    witness: Annotated[
        list[str] | None,
        typer.Option(
            "--witness",
            help="A witness holding this log's checkpoints: a file, a tlog-witness URL, or "
            "s3://BUCKET/PREFIX (repeatable)",
        ),
    ] = None,
    witness_key: Annotated[
        list[str] | None,
        typer.Option("--witness-key", help="A witness's cosigning vkey (required cosigner)"),
    ] = None,
    deep: Annotated[
        bool, typer.Option("--deep", help="Re-derive verdicts, findings and triage from the log")
    ] = False,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="--deep: analyse every run with this bundle")
    ] = None,
    baselines: Annotated[
        Path | None, typer.Option("--baselines", help="--deep: the baselines the service used")
    ] = None,
    max_unsigned_age: Annotated[
        float,
        typer.Option(
            "--max-unsigned-age",
            help="Seconds an event may stay past the latest checkpoint",
            min=0,
        ),
    ] = DEFAULT_MAX_UNSIGNED_AGE,
) -> None:
    """Recompute every chain, the Merkle tree and every checkpoint; hold the log to the
    checkpoints kept outside. Exit 1 on tampering."""
    try:
        cosigners = [Cosigner.parse(k) for k in witness_key or ()]
        witnesses = [open_witness(w, cosigners) for w in witness or ()]
        engine = EngineConfig(
            policy_path=str(policy) if policy else None,
            baseline_path=str(baselines) if baselines else None,
        ).build()
    except SentrailError as exc:
        fail(str(exc))
    store = open_migrated(database)
    try:
        verifiers = key_store().verifiers()
        tenants = [tenant] if tenant else store.tenants()
        if checkpoint and len(tenants) != 1:
            fail("--checkpoint holds one tenant's log: name it with --tenant")
        if not tenants:
            _failed("this store holds no tenant log")
        notes = [Outside(fetch_note(c), c) for c in checkpoint or ()]
        picker = EnginePicker(store, engine, pinned=policy is not None)
        for t in tenants:
            held = _witness_notes(witnesses, t)
            report = verify_log(
                store, t, verifiers, outside=notes + held, max_unsigned_age=max_unsigned_age
            )
            if report.problem is not None:
                _failed(str(report.problem))
            _require_witness_copies(report, witnesses, held)
            seen = _show_http_witnesses(store, t, witnesses, cosigners)
            typer.echo(_ok_line(t, report, seen))
            if deep:
                _deep(store, t, picker)
    except WitnessUnreachable as exc:  # nothing learnt about the log: an input error
        fail(str(exc))
    except WitnessError as exc:
        _failed(str(exc))
    except SentrailError as exc:
        fail(str(exc))
    finally:
        store.close()


def _failed(reason: str) -> None:
    typer.echo(f"FAIL: {safe_text(reason)}")
    raise typer.Exit(EXIT_FINDINGS)


def _require_witness_copies(
    report: LogReport, witnesses: Sequence[Witnesses], held: list[Outside]
) -> None:
    """A file or bucket witness named on the command line must hold this tenant's
    checkpoints once its log has events: an empty one proves nothing (it was never pushed
    to, or its copies are gone), so it is a failure, not a silent pass."""
    for w in witnesses:
        if isinstance(w, HttpWitness) or any(o.source == w.name for o in held):
            continue
        if report.size:
            raise WitnessError(
                f"the witness holds no checkpoint of tenant {report.tenant!r}, whose log "
                f"has {report.size} event(s)",
                w.name,
            )


def _witness_notes(witnesses: Sequence[Witnesses], tenant: str) -> list[Outside]:
    """Every checkpoint a file or bucket witness holds for ``tenant``."""
    return [
        Outside(note, w.name)
        for w in witnesses
        if not isinstance(w, HttpWitness)
        for note in w.notes(tenant)
    ]


def _show_http_witnesses(
    store: LogStore,
    tenant: str,
    witnesses: Sequence[Witnesses],
    cosigners: Sequence[Cosigner],
) -> int:
    """Show each HTTP witness the log's latest checkpoint (verified just before) with a
    consistency proof from the tree it holds: it refuses a cut or rewritten log."""
    http = [w for w in witnesses if isinstance(w, HttpWitness)]
    if not http:
        return 0
    latest = store.latest_checkpoint(tenant)
    if latest is None:
        raise WitnessError("the store holds no checkpoint to show the witness", tenant)
    for w in http:
        signed = w.submit(store, latest)
        if cosigners and not signed:
            raise WitnessError("no cosignature by a given --witness-key", w.name)
    return len(http)


def _ok_line(tenant: str, report: LogReport, http_witnesses: int) -> str:
    extra = ""
    if report.outside or http_witnesses:
        extra = f", consistent with {report.outside + http_witnesses} outside checkpoint(s)"
    behind = f", {report.unsigned} past the latest checkpoint" if report.unsigned else ""
    return (
        f"ok: tenant {safe_text(tenant)}: {report.size} event(s){behind}, "
        f"{report.checkpoints} checkpoint(s){extra}"
    )


def _deep(store: LogStore, tenant: str, picker: EnginePicker) -> None:
    report = deep_verify(store, tenant, picker)
    for d in report.disagreements:
        typer.echo(f"DISAGREES: tenant {safe_text(tenant)}: {safe_text(str(d))}")
    skipped = f", {len(report.skipped)} skipped (redacted)" if report.skipped else ""
    if report.disagreements:
        _failed(f"tenant {tenant}: {len(report.disagreements)} index row(s) disagree with the log")
    typer.echo(f"ok: tenant {safe_text(tenant)}: {report.runs} run(s) re-derived{skipped}")


__all__ = ["log_app"]
