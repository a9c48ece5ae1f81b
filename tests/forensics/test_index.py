"""The value index on both store backends: scoped by tenant and app, dropped on redaction,
rebuilt by a backfill; values keyed so that one IBAN written two ways is one value."""

from __future__ import annotations

import json

from sentrail.engine.engine import Engine
from sentrail.forensics.values import query_keys, run_values, values_in
from sentrail.model.decode import decode_run
from sentrail.runtime.ingest import Ingestor
from sentrail.runtime.logged_runs import reindex, value_uses
from tests.conftest import EXAMPLES
from tests.store.conftest import Backend

IBAN = "DE44 5001 0517 5407 3249 31"


def _trace(run_id: str, to: str, secret: str = "") -> bytes:
    doc = json.loads((EXAMPLES / "traces" / "injected-transfer.json").read_bytes())
    doc["run_id"] = run_id
    doc["steps"][2]["tool_call"]["parameters"]["to_account"] = to
    if secret:
        doc["steps"][2]["tool_call"]["parameters"]["note"] = f"token={secret}"
    return json.dumps(doc).encode()


def test_one_iban_written_two_ways_is_one_key_and_a_secret_is_held_only_hashed() -> None:
    secret = "sk_live_" + "A1b2C3d4" * 4
    run = decode_run(_trace("r", "de44-5001-0517-5407-3249-31", secret))
    values = run_values(run)
    accounts = {v.key for v in values if v.kind == "account"}
    assert "de44500105175407324931" in accounts
    assert ("account", "de44500105175407324931") in query_keys(IBAN)
    creds = [v for v in values if v.kind == "credential"]
    assert creds and all(v.key.startswith("sha256:") for v in creds)
    assert not any(secret in (v.key + v.display) for v in values)


def test_a_month_or_a_date_is_not_an_account() -> None:
    for text in ("report for 2026-03", "due 2026-03-14", "at 09:30", "rate 4.25"):
        assert not [v for v in values_in(text, "params.period", 0, "t") if v.kind == "account"]
    # A number that is not a month still is one.
    assert [v for v in values_in("2026-13", "params.to", 0, "t") if v.kind == "account"]


def test_runs_sharing_a_value_are_found_within_the_tenant_and_app_only(backend: Backend) -> None:
    store = backend.open()
    ingest = Ingestor(store, Engine())
    ingest.ingest_trace("t-a", "pay", _trace("r1", "DE44500105175407324931"))
    ingest.ingest_trace("t-a", "crm", _trace("r2", IBAN))
    ingest.ingest_trace("t-b", "pay", _trace("r3", "DE44500105175407324931"))
    uses, cut = value_uses(store, "t-a", IBAN)
    assert {u.run_id for u in uses if u.kind == "account"} == {"r1", "r2"} and not cut
    assert {u.run_id for u in value_uses(store, "t-a", IBAN, app="pay")[0]} == {"r1"}
    assert {u.run_id for u in value_uses(store, "t-b", IBAN)[0]} == {"r3"}
    assert value_uses(store, "t-a", IBAN, since=4_000_000_000)[0] == []
    uses, cut = value_uses(store, "t-a", IBAN, limit=1)
    assert len(uses) == 1 and cut
    store.close()


def test_a_redacted_run_leaves_the_index_and_a_backfill_does_not_bring_it_back(
    backend: Backend,
) -> None:
    store = backend.open()
    ingest = Ingestor(store, Engine())
    ingest.ingest_trace("t", "pay", _trace("r1", IBAN))
    ingest.ingest_trace("t", "pay", _trace("r2", IBAN))
    store.redact("t", "pay", "r1", by="dpo", reason="erasure request")
    assert {u.run_id for u in value_uses(store, "t", IBAN)[0]} == {"r2"}
    assert backend.sql is not None
    backend.sql("DELETE FROM run_values_indexed WHERE tenant_id = ?", ("t",))
    backend.sql("DELETE FROM run_values WHERE tenant_id = ?", ("t",))
    assert value_uses(store, "t", IBAN)[0] == []
    assert reindex(store, "t") == 1  # r2 again; the redacted r1 stays out
    assert {u.run_id for u in value_uses(store, "t", IBAN)[0]} == {"r2"}
    assert reindex(store, "t") == 0  # nothing left to do
    store.close()
