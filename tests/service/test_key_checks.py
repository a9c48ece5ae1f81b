"""Failed key checks are bounded: rate-limited per client and per key id, at most a few
hashing at once, as costly for an unknown id as for a known one, and cached briefly
when they succeed. Records of who acted never carry a key id."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher, extract_parameters

from sentrail.service.auth import (
    KeyCheckDeferred,
    KeyVerifier,
    actor_label,
    create_key,
    shown_actor,
)
from sentrail.service.ratelimit import FailureLimiter, Rate
from sentrail.store.records import records
from sentrail.store.sqlite import SqliteStore
from tests.service.conftest import CHEAP, Api, make_api
from tests.service.test_api import PROBLEM
from tests.store.conftest import SIGNER, Backend


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingHasher(PasswordHasher):
    """CHEAP's cost; remembers every hash it was asked to verify against."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.checked: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.checked.append(hash if isinstance(hash, str) else hash.decode())
        return super().verify(hash, password)


class SlowHasher(CountingHasher):
    """Says when a check started (``entered``), then holds it until ``release``."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.entered.set()
        self.release.wait(30)
        return super().verify(hash, password)


def run_holding(scenario: Any, release: threading.Event) -> None:
    """Run ``scenario`` (a coroutine function); never hang if it breaks while a check is
    held: the held checks are let go after a while."""
    release_later = threading.Timer(20, release.set)
    release_later.start()
    try:
        asyncio.run(scenario())
    finally:
        release_later.cancel()


def wrong(key: str) -> str:
    return key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path / "keys.db", SIGNER)
    s.migrate()
    return s


def test_unknown_and_known_key_ids_cost_one_hash_check_of_the_same_parameters(
    store: SqliteStore,
) -> None:
    hasher = CountingHasher()
    key, row = create_key(store, "t", "app", "read", hasher=hasher)
    verifier = KeyVerifier(store, hasher=hasher)
    assert verifier.verify(wrong(key), "c1") is None  # a known id, a wrong secret
    unknown = "sk_" + "0" * 16 + "_" + key.split("_", 2)[2]
    assert verifier.verify(unknown, "c2") is None  # an id that does not exist
    known_hash, dummy_hash = hasher.checked
    assert known_hash == row.secret_hash and dummy_hash != row.secret_hash
    assert extract_parameters(known_hash) == extract_parameters(dummy_hash)
    with records(store, write=True) as rtx:
        rtx.revoke_key(row.key_id, 1.0)
    assert verifier.verify(key, "c3") is None  # revoked: still checked, still refused
    assert len(hasher.checked) == 3
    assert verifier.verify("sk_not_a_key", "c4") is None  # no shape of a key: no hash
    assert len(hasher.checked) == 3


def test_failures_are_limited_per_client_and_answered_before_any_hashing(
    store: SqliteStore,
) -> None:
    clock = Clock()
    hasher = CountingHasher()
    key, _ = create_key(store, "t", "app", "read", hasher=hasher)
    limiter = FailureLimiter(Rate(3, 0.5), Rate(100, 1.0), clock=clock)
    verifier = KeyVerifier(store, hasher=hasher, limiter=limiter, clock=clock)
    for _ in range(3):
        assert verifier.verify(wrong(key), "attacker") is None
    with pytest.raises(KeyCheckDeferred) as refused:
        verifier.verify(wrong(key), "attacker")
    assert refused.value.limited and 0 < refused.value.retry_after <= 2
    assert len(hasher.checked) == 3  # the refused check cost nothing
    assert verifier.verify(key, "owner") is not None  # another client is not limited
    clock.now += 2.0  # one token back
    assert verifier.verify(wrong(key), "attacker") is None


def test_a_guessed_key_id_is_limited_without_locking_out_clients_that_never_failed(
    store: SqliteStore,
) -> None:
    clock = Clock()
    key, _ = create_key(store, "t", "app", "read", hasher=CHEAP)
    limiter = FailureLimiter(Rate(100, 1.0), Rate(5, 0.1), clock=clock)
    verifier = KeyVerifier(store, hasher=CHEAP, limiter=limiter, clock=clock)
    for i in range(5):  # five addresses, one guess each: the id's bucket is empty
        assert verifier.verify(wrong(key), f"bot-{i}") is None
    with pytest.raises(KeyCheckDeferred):
        verifier.verify(wrong(key), "bot-0")  # failed before: the id's limit applies
    assert verifier.verify(key, "owner") is not None  # never failed: checked
    unknown_id = "sk_" + "f" * 16 + "_" + key.split("_", 2)[2]
    assert verifier.verify(unknown_id, "bot-1") is None  # other ids have their own bucket


def test_a_verified_key_is_cached_briefly_under_a_keyed_digest(store: SqliteStore) -> None:
    clock = Clock()
    hasher = CountingHasher()
    key, row = create_key(store, "t", "app", "read", hasher=hasher)
    verifier = KeyVerifier(store, ttl=5.0, hasher=hasher, clock=clock)
    assert verifier.verify(key) is not None
    assert verifier.verify(key) is not None
    assert len(hasher.checked) == 1  # the second was the cache
    cached = set(verifier._cache)
    assert hashlib.sha256(key.encode()).digest() not in cached  # not an unkeyed digest
    assert all(key.encode() not in d for d in cached)
    clock.now += 5.1  # past the lifetime: checked again, so a revocation elsewhere holds
    assert verifier.verify(key) is not None
    assert len(hasher.checked) == 2
    verifier.forget(row.key_id)  # a revocation in this process: at once
    assert verifier.verify(key) is not None
    assert len(hasher.checked) == 3
    with records(store, write=True) as rtx:
        rtx.revoke_key(row.key_id, 1.0)
    clock.now += 5.1
    assert verifier.verify(key) is None


def test_concurrent_checks_are_bounded_and_the_excess_is_told_to_retry(
    store: SqliteStore,
) -> None:
    hasher = SlowHasher()
    entered, release = hasher.entered, hasher.release
    key, _ = create_key(store, "t", "app", "read", hasher=CHEAP)
    verifier = KeyVerifier(store, hasher=hasher, slots=1, wait_s=0.05)

    async def scenario() -> None:
        first = asyncio.create_task(verifier.averify(key, "c1"))
        while not entered.is_set():
            await asyncio.sleep(0.01)
        with pytest.raises(KeyCheckDeferred) as refused:
            await verifier.averify(wrong(key), "c2")  # the one slot is taken
        assert not refused.value.limited and refused.value.retry_after >= 1
        release.set()
        assert await first is not None

    run_holding(scenario, release)
    assert len(hasher.checked) == 1  # the refused check never hashed


def test_the_api_answers_429_with_retry_after_past_the_failure_limit(backend: Backend) -> None:
    for api in make_api(backend):
        keys = api.client.app.state.services.keys  # type: ignore[attr-defined]
        keys.limiter = FailureLimiter(Rate(2, 0.01), Rate(100, 1.0))
        bad = {"Authorization": f"Bearer {wrong(api.keys['a'])}"}
        for _ in range(2):
            assert api.client.get("/v1/apps/app1/traces", headers=bad).status_code == 401
        r = api.client.get("/v1/apps/app1/traces", headers=bad)
        assert r.status_code == 429 and r.headers["content-type"] == PROBLEM
        assert int(r.headers["retry-after"]) >= 1
        assert "retry" in r.json()["detail"]


def test_actions_are_recorded_under_a_label_not_the_key_id(api: Api) -> None:
    key_id = api.keys["a"].split("_")[1]
    posted = api.client.post(
        "/v1/apps/app1/traces",
        content=(Path(__file__).parents[2] / "examples/traces/prod-delete.json").read_bytes(),
        headers=api.auth("a"),
    ).json()
    fid = posted["findings"][0]["id"]
    r = api.client.patch(
        f"/v1/findings/{fid}", json={"resolved": True, "comment": "ok"}, headers=api.auth("a")
    )
    assert r.json()["resolved_by"] == actor_label(key_id)
    assert all(a["actor"] == actor_label(key_id) for a in r.json()["audit"])
    r = api.client.post(
        "/v1/containment",
        json={"action": "freeze_run", "run_id": "run-x", "reason": "drill"},
        headers=api.auth("a"),
    )
    assert r.status_code == 200, r.text
    # A tenant-wide action (shown to every app) is recorded under its label too.
    all_id = api.keys["a_all"].split("_")[1]
    q = api.client.post(
        "/v1/containment",
        json={"action": "quarantine", "agent": "agent-x", "reason": "drill"},
        headers=api.auth("a_all"),
    )
    assert q.status_code == 200, q.text
    listed = api.client.get("/v1/containment", headers=api.auth("a_app2"))
    assert actor_label(all_id) in listed.text
    texts = [r.text, q.text, listed.text]
    assert all(key_id not in t and all_id not in t for t in texts)
    assert key_id not in actor_label(key_id)
    # The triage event in the log names the key by its label too.
    (triage,) = [
        e for e in api.store.run_events("tenant-a", "app1", posted["run_id"]) if e.kind == "triage"
    ]
    assert key_id not in (triage.payload or b"").decode()


def test_a_record_that_names_a_key_by_its_id_is_shown_as_the_keys_label(api: Api) -> None:
    """Records written before actors were labels said ``key:<id>``: never shown as such."""
    key_id = api.keys["a"].split("_")[1]
    svc = api.client.app.state.services  # type: ignore[attr-defined]
    svc.containment.quarantine("tenant-a", "agent-y", f"key:{key_id}", "from before labels")
    listed = api.client.get("/v1/containment", headers=api.auth("a_app2"))
    assert listed.status_code == 200 and key_id not in listed.text
    (item,) = [i for i in listed.json()["items"] if i["target"] == "agent-y"]
    assert item["by"] == actor_label(key_id)
    assert shown_actor("cli:alice") == "cli:alice" and shown_actor(None) is None


def test_checks_in_flight_count_against_the_client_before_any_has_failed(
    store: SqliteStore,
) -> None:
    hasher = SlowHasher()
    entered, release = hasher.entered, hasher.release
    key, _ = create_key(store, "t", "app", "read", hasher=CHEAP)
    limiter = FailureLimiter(Rate(2, 0.001), Rate(100, 1.0))
    verifier = KeyVerifier(store, hasher=hasher, slots=1, wait_s=30, limiter=limiter)

    async def scenario() -> None:
        first = asyncio.create_task(verifier.averify(wrong(key), "flood"))
        while not entered.is_set():
            await asyncio.sleep(0.01)
        second = asyncio.create_task(verifier.averify(wrong(key), "flood"))
        await asyncio.sleep(0)  # admitted: now waiting for the one slot
        with pytest.raises(KeyCheckDeferred) as refused:
            await verifier.averify(wrong(key), "flood")  # two in flight, none failed yet
        assert refused.value.limited
        release.set()
        assert await first is None and await second is None

    run_holding(scenario, release)


def test_a_known_good_token_renews_past_an_attack_holding_every_slot(
    store: SqliteStore,
) -> None:
    release = threading.Event()
    blocked = threading.Event()
    key, row = create_key(store, "t", "app", "read", hasher=CHEAP)

    class AttackBlockedHasher(CountingHasher):
        """Wrong secrets hang until released; the owner's key checks at once."""

        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            if password != key:
                blocked.set()
                release.wait(30)
            return super().verify(hash, password)

    clock = Clock()
    hasher = AttackBlockedHasher()
    limiter = FailureLimiter(Rate(1, 0.001), Rate(1, 0.001), clock=clock)
    verifier = KeyVerifier(
        store, hasher=hasher, slots=1, wait_s=30, limiter=limiter, clock=clock, ttl=5.0
    )

    async def scenario() -> None:
        assert await verifier.averify(key, "owner") is not None  # verified once
        clock.now += 6  # the cache entry expired: the next request hashes again
        attack = asyncio.create_task(verifier.averify(wrong(key), "owner"))  # same address
        while not blocked.is_set():
            await asyncio.sleep(0.01)
        # The one general slot is held and the address and key id are out of tokens,
        # yet the owner's token renews in its own slot, past the failure limits.
        renewed = await verifier.averify(key, "owner")
        assert renewed is not None and renewed.key_id == row.key_id
        assert not attack.done()
        release.set()
        assert await attack is None
        with pytest.raises(KeyCheckDeferred):
            await verifier.averify(wrong(key), "owner")  # the attack is still limited

    run_holding(scenario, release)
