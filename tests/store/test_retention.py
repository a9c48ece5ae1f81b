"""Retention per tenant: runs older than the limit are redacted whole, on an injected clock."""

from __future__ import annotations

import pytest

from sentrail.evidence.redaction import parse_record
from sentrail.store.base import StoreError
from sentrail.store.core import LogStore
from sentrail.store.log_verify import verify_log
from tests.store.conftest import SIGNER, Backend
from tests.store.redaction_helpers import fill_run, raw_rows, step, write_rows

DAY = 86400.0
T0 = 1_750_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def add_steps(store: LogStore, run: str) -> None:
    write_rows(
        store,
        "INSERT INTO steps (tenant_id, app_id, run_id, idx, action, permissions) "
        "VALUES (?, 'default', ?, 0, 'x', '')",
        ("t1", run),
    )


def steps_of(store: LogStore) -> list[str]:
    return sorted(r[0] for r in raw_rows(store, "SELECT run_id FROM steps"))


def test_retention_erases_only_runs_past_the_limit(backend: Backend) -> None:
    clock = Clock()
    store = backend.open(clock=clock)
    fill_run(store, "old", 2)  # newest event at T0
    clock.now = T0 + 3 * DAY
    fill_run(store, "mid", 1)
    store.append([step("old-but-active", 0)])
    clock.now = T0 + 6 * DAY
    store.append([step("old-but-active", 1)])  # its newest event is recent
    fill_run(store, "other-tenant", 1, tenant="t2")  # t2 has no retention
    for run in ("old", "mid", "old-but-active"):
        add_steps(store, run)

    assert store.retention("t1") is None
    assert store.apply_retention(now=T0 + 30 * DAY) == []  # no limit: kept forever
    store.set_retention("t1", 5)
    assert store.retention("t1") == 5

    clock.now = T0 + 7 * DAY
    due = store.retention_due()
    assert [(d.tenant_id, d.run_id, d.days, d.newest_at) for d in due] == [("t1", "old", 5, T0)]
    (done,) = store.apply_retention()
    assert (done.run_id, done.by, done.reason, done.fields) == (
        "old",
        "retention",
        "retention 5 days",
        (),
    )
    assert done.erased_seqs == (0, 1) and done.redacted_at == T0 + 7 * DAY
    assert [e.payload for e in store.run_events("t1", "default", "old")][:2] == [None, None]
    assert all(e.payload is not None for e in store.run_events("t1", "default", "mid"))
    assert all(e.payload is not None for e in store.run_events("t2", "default", "other-tenant"))
    assert steps_of(store) == ["mid", "old-but-active"]  # the erased run's steps are gone

    record = store.run_events("t1", "default", "old")[-1]
    assert record.kind == "redaction" and record.payload is not None
    assert parse_record(record.payload).by == "retention"

    assert store.apply_retention() == []  # already erased: skipped
    clock.now = T0 + 9 * DAY  # "mid" is now past the limit too
    assert [r.run_id for r in store.apply_retention()] == ["mid"]
    assert [d.run_id for d in store.retention_due(now=T0 + 12 * DAY)] == ["old-but-active"]
    assert verify_log(store, "t1", [SIGNER.verifier_key()]).problem is None


def test_tenant_filter_and_clearing(backend: Backend) -> None:
    clock = Clock()
    store = backend.open(clock=clock)
    fill_run(store, "a", 1, tenant="t1")
    fill_run(store, "b", 1, tenant="t2")
    store.set_retention("t1", 1)
    store.set_retention("t2", 1)
    later = T0 + 2 * DAY
    assert [d.tenant_id for d in store.retention_due(now=later)] == ["t1", "t2"]
    assert [r.tenant_id for r in store.apply_retention(now=later, tenant="t2")] == ["t2"]
    store.set_retention("t1", None)
    assert store.retention("t1") is None
    assert store.apply_retention(now=later) == []
    assert store.run_events("t1", "default", "a")[0].payload is not None


@pytest.mark.parametrize("days", [0, -1, 36501, True, 1.5])
def test_bad_retention_is_refused(backend: Backend, days: object) -> None:
    store = backend.open()
    with pytest.raises(StoreError, match="whole number of days"):
        store.set_retention("t1", days)  # type: ignore[arg-type]
    assert store.retention("t1") is None


def test_a_hostile_retention_row_is_refused(backend: Backend) -> None:
    store = backend.open()
    fill_run(store, "a", 1)
    write_rows(
        store,
        "INSERT INTO tenants (tenant_id, retention_days, created_at) VALUES ('t1', -5, 0)",
    )
    with pytest.raises(StoreError, match="whole number of days"):
        store.apply_retention(now=T0 + 100 * DAY)
    assert store.run_events("t1", "default", "a")[0].payload is not None
