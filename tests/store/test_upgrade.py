"""A store written before schema v4 keeps verifying after ``db upgrade``, on both backends.

The fixture holds the rows of a real pre-v4 store (``fixtures/make_legacy_v3.py``): version
1 leaves, checkpoints whose origin is the key's own name, a redaction, index rows. After
the upgrade its events belong to the apps of their runs, they keep their version 1
leaves, new events are version 2 and continue the same chains, and the log, evidence
bundles and the index audit verify across both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sentrail.engine.engine import Engine
from sentrail.evidence.verify import verify_bundle
from sentrail.runtime.deep_verify import EnginePicker, deep_verify
from sentrail.runtime.ingest import Ingestor
from sentrail.store.base import NewEvent
from sentrail.store.core import LogStore
from sentrail.store.log_verify import verify_log
from sentrail.store.schema import LATEST_VERSION, MIGRATIONS
from tests.conftest import EXAMPLES
from tests.store.conftest import SIGNER, Backend

FIXTURE = Path(__file__).parent / "fixtures" / "legacy_v3.json"
KEYS = [SIGNER.verifier_key()]
PAY_RUN, STREAMED, REDACTED = "run-e4b70d19-8c2f", "run-streamed", "run-9a13e6c2-7d05"


def load_legacy(backend: Backend) -> LogStore:
    """A schema v3 database holding the fixture's rows, then opened (and upgraded)."""
    assert backend.sql is not None
    blob, integer = ("BLOB", "INTEGER") if backend.name == "sqlite" else ("BYTEA", "BIGINT")
    backend.sql("CREATE TABLE schema_version (version INTEGER NOT NULL)", ())
    for _, statements in MIGRATIONS[:3]:
        for stmt in statements:
            backend.sql(stmt.format(blob=blob, int=integer), ())
    dump: dict[str, Any] = json.loads(FIXTURE.read_text())
    for table, data in sorted(dump.items()):
        cols = data["columns"]
        for row in data["rows"]:
            values = tuple(bytes.fromhex(v["hex"]) if isinstance(v, dict) else v for v in row)
            marks = ", ".join("?" * len(cols))
            backend.sql(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", values)
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
