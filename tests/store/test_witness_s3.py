"""The S3 witness on moto's S3 at 127.0.0.1: every checkpoint a new object, never
replaced, locked where the bucket has object lock; the checkpoints it holds read back
for ``log verify``; bad specs and unreachable endpoints are clear errors without a
credential in them."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentrail.evidence.checkpoint import Checkpoint as TreeHead
from sentrail.evidence.note import split_note
from sentrail.store.checkpoint_timer import CheckpointTimer
from sentrail.store.log_verify import Outside, verify_log
from sentrail.store.witness import (
    WitnessError,
    WitnessPublisher,
    WitnessUnreachable,
    attach,
    open_witness,
)
from sentrail.store.witness_s3 import S3Witness, parse_spec, tenant_segment
from tests.store.attacker import Attacker
from tests.store.conftest import Backend
from tests.store.s3_stub import ACCESS_KEY, SECRET_KEY, Buckets, versions
from tests.store.test_tamper_matrix import _drop_one
from tests.store.test_witness import KEYS, ev

KEY = re.compile(r"sentrail/witness/t1/(\d{20})-([0-9a-f]{64})")


def held(witness: S3Witness, tenant: str = "t1") -> list[Outside]:
    return [Outside(n, witness.name) for n in witness.notes(tenant)]


def no_secret(text: str) -> None:
    assert SECRET_KEY not in text and ACCESS_KEY not in text, text


# -- writing --------------------------------------------------------------------------------
def test_every_checkpoint_is_a_new_locked_object(backend: Backend, s3: Buckets) -> None:
    store = backend.open(checkpoint_every=4)
    attach(store, [s3.spec(s3.locked)])
    for start in range(0, 12, 3):  # the append path signs every 4 events
        store.append([ev(i) for i in range(start, start + 3)])
    store.append([ev(12), ev(100, "t2")])
    assert CheckpointTimer(store).tick() == 2
    signed = {c.note for c in store.checkpoints("t1")}
    store.close()  # flushes the publisher
    objects = versions(s3.client, s3.locked)
    keys = [o["Key"] for o in objects if "/t1/" in o["Key"]]
    assert len(keys) == len(set(keys)) >= 2  # one object, one version, per checkpoint
    for key in keys:
        size, root = KEY.fullmatch(key).groups()  # type: ignore[union-attr]
        note = s3.client.get_object(Bucket=s3.locked, Key=key)["Body"].read().decode()
        head = TreeHead.parse(split_note(note)[0])
        assert note in signed and (head.size, head.root_hash.hex()) == (int(size), root)
        lock = s3.client.head_object(Bucket=s3.locked, Key=key)
        assert lock["ObjectLockMode"] == "COMPLIANCE"  # the default: 365 days
        assert lock["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=300)
    assert any("/t2/" in o["Key"] for o in objects)


def test_a_second_push_of_a_checkpoint_replaces_nothing(backend: Backend, s3: Buckets) -> None:
    store = backend.open()
    store.append([ev(i) for i in range(5)])
    cp = store.checkpoint("t1")
    assert cp is not None
    witness = S3Witness(s3.spec(s3.locked))
    witness.push(store, cp)
    witness.push(store, cp)  # refused by If-None-Match: no second version
    assert len(versions(s3.client, s3.locked)) == 1
    plain = S3Witness(s3.spec(s3.plain))
    head = TreeHead.parse(split_note(cp.note)[0])
    key = plain.key("t1", head.size, head.root_hash)
    s3.client.put_object(Bucket=s3.plain, Key=key, Body=b"recorded before")
    plain.push(store, cp)  # the object already there stays as it is
    assert s3.client.get_object(Bucket=s3.plain, Key=key)["Body"].read() == b"recorded before"


def test_a_bucket_without_object_lock_is_said_once(
    backend: Backend, s3: Buckets, caplog: pytest.LogCaptureFixture
) -> None:
    store = backend.open()
    witness = S3Witness(s3.spec(s3.plain))
    with caplog.at_level(logging.WARNING, logger="sentrail.witness"):
        for n in range(3):
            store.append([ev(n)])
            cp = store.checkpoint("t1")
            assert cp is not None
            witness.push(store, cp)
        S3Witness(s3.spec(s3.locked)).push(store, cp)
    said = [r.getMessage() for r in caplog.records if "no object lock" in r.getMessage()]
    assert len(said) == 1 and s3.plain in said[0], said
    assert len(versions(s3.client, s3.plain)) == 3
    assert "ObjectLockMode" not in s3.client.head_object(
        Bucket=s3.plain, Key=versions(s3.client, s3.plain)[0]["Key"]
    )


def test_the_retention_is_configured_or_the_buckets_own(
    backend: Backend, s3: Buckets, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = backend.open()
    store.append([ev(0)])
    cp = store.checkpoint("t1")
    assert cp is not None
    monkeypatch.setenv("SENTRAIL_WITNESS_S3_RETENTION_DAYS", "2")
    monkeypatch.setenv("SENTRAIL_WITNESS_S3_LOCK_MODE", "governance")
    S3Witness(s3.spec(s3.locked, "two-days")).push(store, cp)
    (obj,) = versions(s3.client, s3.locked)
    lock = s3.client.head_object(Bucket=s3.locked, Key=obj["Key"])
    assert lock["ObjectLockMode"] == "GOVERNANCE"
    now = datetime.now(UTC)
    assert now + timedelta(days=1) < lock["ObjectLockRetainUntilDate"] < now + timedelta(days=3)
    monkeypatch.delenv("SENTRAIL_WITNESS_S3_RETENTION_DAYS")
    ruled = s3.locked + "-ruled"
    s3.client.create_bucket(Bucket=ruled, ObjectLockEnabledForBucket=True)
    s3.client.put_object_lock_configuration(
        Bucket=ruled,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 5}},
        },
    )
    S3Witness(s3.spec(ruled)).push(store, cp)
    (obj,) = versions(s3.client, ruled)
    # no COMPLIANCE lock of 365 days over the bucket's own rule
    mode = s3.client.head_object(Bucket=ruled, Key=obj["Key"]).get("ObjectLockMode")
    assert mode in (None, "GOVERNANCE")
    for bad in ("0", "x", "99999"):
        monkeypatch.setenv("SENTRAIL_WITNESS_S3_RETENTION_DAYS", bad)
        with pytest.raises(WitnessError, match="RETENTION_DAYS"):
            S3Witness(s3.spec(s3.locked))
    monkeypatch.setenv("SENTRAIL_WITNESS_S3_RETENTION_DAYS", "1")
    monkeypatch.setenv("SENTRAIL_WITNESS_S3_LOCK_MODE", "forever")
    with pytest.raises(WitnessError, match="COMPLIANCE or GOVERNANCE"):
        S3Witness(s3.spec(s3.locked))


# -- reading: what log verify holds the store to ---------------------------------------------
def test_the_bucket_holds_the_store_to_every_checkpoint(backend: Backend, s3: Buckets) -> None:
    store = backend.open(checkpoint_every=3)
    attach(store, [s3.spec(s3.locked)])
    store.append([ev(i) for i in range(7)])
    store.append([ev(7), ev(100, "t2")])
    CheckpointTimer(store).tick()
    store.close()
    again = backend.open()
    witness = S3Witness(s3.spec(s3.locked))
    notes = held(witness)
    sizes = [TreeHead.parse(split_note(o.note)[0]).size for o in notes]
    assert len(notes) >= 2 and sizes == sorted(set(sizes))  # each once, by size
    assert {o.note for o in notes} <= {c.note for c in again.checkpoints("t1")}
    report = verify_log(again, "t1", KEYS, outside=notes)
    assert report.problem is None and report.outside == len(notes)
    assert verify_log(again, "t2", KEYS, outside=held(witness, "t2")).problem is None
    assert witness.notes("nobody") == []


def test_a_rewritten_log_fails_against_the_bucket(backend: Backend, s3: Buckets) -> None:
    store = backend.open(checkpoint_every=4)
    attach(store, [s3.spec(s3.locked)])
    store.append([ev(i) for i in range(9)])
    store.close()
    again = backend.open()
    attacker = Attacker(backend, again, "t1")
    attacker.rewrite(_drop_one)  # drop an event, renumber, rehash ...
    attacker.delete_checkpoints()  # ... and hide the stored checkpoints
    alone = verify_log(backend.open(), "t1", KEYS, max_unsigned_age=None)
    assert alone.problem is None  # the log alone cannot tell
    witness = S3Witness(s3.spec(s3.locked))
    found = verify_log(backend.open(), "t1", KEYS, outside=held(witness), max_unsigned_age=None)
    assert found.problem is not None and "rewritten" in found.problem.reason, found


def test_a_delete_marker_does_not_hide_a_locked_checkpoint(backend: Backend, s3: Buckets) -> None:
    store = backend.open()
    store.append([ev(i) for i in range(4)])
    cp = store.checkpoint("t1")
    assert cp is not None
    witness = S3Witness(s3.spec(s3.locked))
    witness.push(store, cp)
    (obj,) = versions(s3.client, s3.locked)
    s3.client.delete_object(Bucket=s3.locked, Key=obj["Key"])  # a delete marker on top
    assert "Contents" not in s3.client.list_objects_v2(Bucket=s3.locked)
    assert witness.notes("t1") == [cp.note]


def test_an_object_that_is_no_checkpoint_fails_the_check(backend: Backend, s3: Buckets) -> None:
    store = backend.open()
    store.append([ev(0)])
    witness = S3Witness(s3.spec(s3.plain))
    prefix = witness.tenant_prefix("t1")
    s3.client.put_object(Bucket=s3.plain, Key=prefix + "x", Body=b"\xff\xfe")
    with pytest.raises(WitnessError, match="not UTF-8"):
        witness.notes("t1")
    s3.client.put_object(Bucket=s3.plain, Key=prefix + "x", Body=b"not a checkpoint\n")
    report = verify_log(store, "t1", KEYS, outside=held(witness))
    assert report.problem is not None


# -- naming and errors ----------------------------------------------------------------------
@given(st.text(min_size=1, max_size=40))
def test_a_tenant_is_one_clean_key_segment(tenant: str) -> None:
    segment = tenant_segment(tenant)
    assert "/" not in segment and segment not in (".", "..") and segment.isascii()
    assert unquote(segment) == tenant  # one-to-one: two tenants never share a prefix


@pytest.mark.parametrize(
    "spec",
    [
        "s3://",
        "s3://Bad_Bucket/x",
        "s3://ab",
        "s3://bucket/a//b",
        "s3://bucket/../x",
        "s3://bucket/p?x=1",
        f"s3://{ACCESS_KEY}:{SECRET_KEY}@bucket/p",
    ],
)
def test_a_bad_spec_is_a_clear_error(spec: str) -> None:
    with pytest.raises(WitnessError, match=r"s3://BUCKET\[/PREFIX\]") as err:
        open_witness(spec)
    no_secret(str(err.value))


def test_a_spec_names_a_bucket_and_a_prefix() -> None:
    assert parse_spec("s3://my.bucket-1") == ("my.bucket-1", "")
    assert parse_spec("s3://b12/a/b/") == ("b12", "a/b")
    assert isinstance(open_witness("s3://b12/p"), S3Witness)


def test_an_unreachable_endpoint_or_bucket_is_a_clear_error(
    backend: Backend, s3: Buckets, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = backend.open()
    store.append([ev(0)])
    cp = store.checkpoint("t1")
    assert cp is not None
    with pytest.raises(WitnessUnreachable, match="no bucket 'missing-bucket'") as err:
        S3Witness("s3://missing-bucket/p").notes("t1")
    no_secret(str(err.value))
    monkeypatch.setenv("SENTRAIL_WITNESS_S3_ENDPOINT", "http://127.0.0.1:9")
    gone = S3Witness(s3.spec(s3.locked))
    for call in (lambda: gone.notes("t1"), lambda: gone.push(store, cp)):
        with pytest.raises(WitnessUnreachable, match="Could not connect") as err:
            call()
        no_secret(str(err.value))
    monkeypatch.setenv("SENTRAIL_WITNESS_S3_ENDPOINT", s3.endpoint)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(WitnessUnreachable, match="no usable AWS credentials"):
        S3Witness(s3.spec(s3.locked)).notes("t1")


def test_a_failing_bucket_never_fails_the_log(
    backend: Backend, s3: Buckets, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SENTRAIL_WITNESS_S3_ENDPOINT", "http://127.0.0.1:9")
    store = backend.open(checkpoint_every=2)
    with caplog.at_level(logging.ERROR, logger="sentrail.witness"):
        publisher = WitnessPublisher(store, [S3Witness(s3.spec(s3.locked))])
        store.append([ev(i) for i in range(4)])
        assert publisher.flush(60)
        publisher.close()
    assert publisher.failures >= 1 and len(store.checkpoints("t1")) >= 1
    no_secret(caplog.text)
