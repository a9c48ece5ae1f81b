"""Helpers shared by the sealing, redaction and retention tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sentrail.evidence.bundle import build_bundle
from sentrail.evidence.merkle import MerkleTree
from sentrail.store.base import NewEvent
from sentrail.store.core import LogStore
from sentrail.store.sql import SqlTx
from tests.store.conftest import SIGNER

SECRET = "hunter2-very-secret"
EMAIL = "alice@example.org"


def step(run: str, i: int, tenant: str = "t1") -> NewEvent:
    """A step event whose payload holds a password and an email address."""
    doc = {
        "type": "step",
        "run_id": run,
        "step": {
            "step_index": i,
            "tool_call": {"tool": "auth.login", "parameters": {"user": "ops", "password": SECRET}},
            "result": {"status": "success", "data": {"email": EMAIL, "rows": [1, 2, i]}},
        },
    }
    return NewEvent(tenant, "default", run, f"{run}/e{i}", "step", json.dumps(doc).encode())


def fill_run(store: LogStore, run: str, n: int = 4, tenant: str = "t1") -> list[NewEvent]:
    events = [step(run, i, tenant) for i in range(n)]
    store.append(events)
    return events


def raw_rows(store: LogStore, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Rows read straight from the store's tables (no decryption, no checks)."""
    with store.transaction() as tx:
        assert isinstance(tx, SqlTx)
        return tx.all(sql, params)


def write_rows(store: LogStore, sql: str, params: tuple[Any, ...] = ()) -> None:
    with store.transaction(write=True) as tx:
        assert isinstance(tx, SqlTx)
        tx.cur.execute(tx.q(sql), params)


def export(store: LogStore, tenant: str, run: str, path: Path) -> Path:
    """The evidence bundle of ``run``, exported as ``sentrail evidence export`` does."""
    checkpoint = store.checkpoint(tenant)
    assert checkpoint is not None
    records = [e.record() for e in store.run_events(tenant, "default", run)]
    build_bundle(
        path,
        tenant=tenant,
        run_id=run,
        events=records,
        tree=MerkleTree(store.leaf_hashes(tenant)),
        checkpoint_note=checkpoint.note,
        signer=SIGNER,
        findings=store.get_result(tenant, "default", run) or b"[]",
    )
    return path
