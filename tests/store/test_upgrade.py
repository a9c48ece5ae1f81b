"""A store written before schema v4 keeps verifying after ``db upgrade`` (through migration 4,
the value index, and 5, app isolation), on both backends.

The fixture holds the rows of a real schema v3 store (``fixtures/make_legacy_v3.py``): version
1 leaves, checkpoints whose origin is the key's own name, a redaction, index rows. After
the upgrade its events belong to the apps of their runs, they keep their version 1
leaves, new events are version 2 and continue the same chains, and the log, evidence
bundles and the index audit verify across both. The value index is filled in by app; a
store upgraded from v4 keeps its value index rows, keyed by app from then on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from sentrail.engine.engine import Engine
from sentrail.evidence.verify import verify_bundle
from sentrail.model.decode import decode_run
from sentrail.runtime.deep_verify import EnginePicker, deep_verify
from sentrail.runtime.ingest import Ingestor
from sentrail.runtime.logged_runs import reindex, value_index_rows, value_uses
from sentrail.store.base import NewEvent
from sentrail.store.core import LogStore
from sentrail.store.log_verify import verify_log
from sentrail.store.schema import LATEST_VERSION, MIGRATIONS
from tests.conftest import EXAMPLES
from tests.store.conftest import SIGNER, Backend

FIXTURE = Path(__file__).parent / "fixtures" / "legacy_v3.json"
KEYS = [SIGNER.verifier_key()]
PAY_RUN, STREAMED, REDACTED = "run-e4b70d19-8c2f", "run-streamed", "run-9a13e6c2-7d05"


def load_legacy(backend: Backend, version: int = 3, before_open: Any = None) -> LogStore:
    """A database at schema ``version`` holding the fixture's rows, then opened (and
    upgraded); ``before_open(sql)`` adds rows first."""
    assert backend.sql is not None
    blob, integer = ("BLOB", "INTEGER") if backend.name == "sqlite" else ("BYTEA", "BIGINT")
    backend.sql("CREATE TABLE schema_version (version INTEGER NOT NULL)", ())
    for number, statements in MIGRATIONS[:version]:
        for stmt in statements:
            backend.sql(stmt.format(blob=blob, int=integer), ())
        if version > 3:  # a store that was opened at this version says so
            backend.sql("INSERT INTO schema_version (version) VALUES (?)", (number,))
    dump: dict[str, Any] = json.loads(FIXTURE.read_text())
    for table, data in sorted(dump.items()):
        cols = data["columns"]
        for row in data["rows"]:
            values = tuple(bytes.fromhex(v["hex"]) if isinstance(v, dict) else v for v in row)
            marks = ", ".join("?" * len(cols))
            backend.sql(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", values)
    if before_open is not None:
        before_open(backend.sql)
    return backend.open()


def test_an_upgraded_store_verifies_and_keeps_version_1_leaves(backend: Backend) -> None:
    store = load_legacy(backend)
    assert store.migrate() == LATEST_VERSION
    report = verify_log(store, "legacy", KEYS)
    assert report.problem is None and (report.size, report.checkpoints) == (18, 3)
    events = list(store.events("legacy"))
    assert {e.leaf_version for e in events} == {1}
    apps = {e.run_id: e.app_id for e in events}
    assert (apps[PAY_RUN], apps[STREAMED], apps["run-a4f8c312-9e7b"]) == ("pay", "web", "default")
    # The index rows moved with their runs: the audit of the index finds nothing wrong.
    deep = deep_verify(store, "legacy", EnginePicker(store, Engine()))
    assert deep.disagreements == [] and deep.runs == 3 and len(deep.skipped) == 1


def test_new_events_continue_legacy_chains_in_version_2(backend: Backend, tmp_path: Path) -> None:
    store = load_legacy(backend)
    old_head = store.run_events("legacy", "web", STREAMED)[-1].chain_hash
    (ack,) = store.append([NewEvent("legacy", "web", STREAMED, "late-1", "note", b"{}")])
    new = store.run_events("legacy", "web", STREAMED)[-1]
    assert (new.seq, new.leaf_version, new.prev_hash) == (ack.seq, 2, old_head)
    cp = store.checkpoint("legacy")
    assert cp is not None and cp.note.startswith(f"{SIGNER.name}/legacy\n")
    report = verify_log(store, "legacy", KEYS)
    assert report.problem is None and report.checkpoints == 4
    # A bundle of a run with both leaf versions, and one of a redacted legacy run.
    for app, run in (("web", STREAMED), ("pay", REDACTED)):
        path = tmp_path / f"{run}.zip"
        _export_app(store, app, run, path)
        verified = verify_bundle(path, KEYS)
        assert (verified.run_id, verified.app) == (run, app)
    # The same trace sent again to its app is still a duplicate (its id kept its app).
    ingestor = Ingestor(store, Engine())
    again = ingestor.ingest_trace(
        "legacy", "pay", (EXAMPLES / "traces" / "prod-delete.json").read_bytes()
    )
    assert again.ack.duplicate and again.ack.seq == 0


def test_a_version_1_leaf_after_version_2_is_refused(backend: Backend) -> None:
    store = load_legacy(backend)
    store.append([NewEvent("legacy", "web", STREAMED, "late-1", "note", b"{}")])
    store.append([NewEvent("legacy", "web", STREAMED, "late-2", "note", b"{}")])
    assert backend.sql is not None
    backend.sql("UPDATE events SET leaf_version = 1 WHERE seq = 19", ())
    problem = verify_log(store, "legacy", KEYS).problem
    assert problem is not None and problem.seq == 19
    assert "version 1 leaf after version 2" in problem.reason


def _export_app(store: LogStore, app: str, run: str, path: Path) -> None:
    from sentrail.evidence.bundle import build_bundle
    from sentrail.evidence.merkle import MerkleTree

    checkpoint = store.checkpoint("legacy")
    assert checkpoint is not None
    build_bundle(
        path,
        tenant="legacy",
        run_id=run,
        events=[e.record() for e in store.run_events("legacy", app, run)],
        tree=MerkleTree(store.leaf_hashes("legacy")),
        checkpoint_note=checkpoint.note,
        signer=SIGNER,
    )


VALUE = "orders-prod-primary.corp.example.com"  # a host the pay run (prod-delete) connects to


def _value_apps(store: LogStore, app: str | None = None) -> set[tuple[str, str]]:
    return {(u.app_id, u.run_id) for u in value_uses(store, "legacy", VALUE, app=app)[0]}


def test_the_value_index_is_backfilled_by_app_after_the_upgrade(backend: Backend) -> None:
    store = load_legacy(backend)
    assert _value_apps(store) == set()  # migration 4 made it; nothing indexed yet
    assert reindex(store, "legacy") >= 1  # the redacted run is left out
    assert _value_apps(store) == {("pay", PAY_RUN)}
    assert _value_apps(store, "web") == set()
    assert reindex(store, "legacy") == 0


def test_a_v4_value_index_keeps_its_rows_keyed_by_app_after_migration_5(
    backend: Backend,
) -> None:
    run = decode_run((EXAMPLES / "traces" / "prod-delete.json").read_bytes())
    assert run.run_id == PAY_RUN

    def v4_index(sql: Any) -> None:  # the rows schema v4 wrote for the pay run
        for r in value_index_rows("legacy", "pay", run, 1_700_000_000.0):
            sql(
                "INSERT INTO run_values (tenant_id, app_id, run_id, agent_id, step, kind, "
                "value_key, display, field, tool, started_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                msgspec.structs.astuple(r)[:11],  # every column but the read-back verdict
            )
        sql(
            "INSERT INTO run_values_indexed (tenant_id, run_id, app_id, trace_hash, indexed_at) "
            "SELECT tenant_id, run_id, app_id, trace_hash, 0 FROM runs "
            "WHERE tenant_id = ? AND run_id = ?",
            ("legacy", PAY_RUN),
        )

    store = load_legacy(backend, version=4, before_open=v4_index)
    assert store.migrate() == LATEST_VERSION
    assert _value_apps(store) == {("pay", PAY_RUN)}
    assert reindex(store, "legacy") >= 1
    assert _value_apps(store) == {("pay", PAY_RUN)}  # indexed once, not twice
    # Another app's run of the same id is another run: web's redaction leaves pay's rows.
    Ingestor(store, Engine()).ingest_trace(
        "legacy", "web", (EXAMPLES / "traces" / "prod-delete.json").read_bytes()
    )
    assert _value_apps(store) == {("pay", PAY_RUN), ("web", PAY_RUN)}
    store.redact("legacy", "web", PAY_RUN, by="dpo", reason="web's erasure")
    assert _value_apps(store) == {("pay", PAY_RUN)}
