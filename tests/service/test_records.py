"""Record tables the API does not expose yet: policy bundles by hash, baselines, keys."""

from __future__ import annotations

import hashlib

from sentrail.service.auth import KeyVerifier, create_key
from sentrail.store.records import records
from tests.service.conftest import CHEAP
from tests.store.conftest import Backend


def test_policies_baselines_and_key_revocation(backend: Backend) -> None:
    store = backend.open()
    body = b"name: p\n"
    sha = hashlib.sha256(body).hexdigest()
    with records(store, write=True) as rtx:
        rtx.put_policy(sha, body, 1.0)
        rtx.put_policy(sha, body, 2.0)  # idempotent
        rtx.put_baseline("t", "agent-1", b"{}", 1.0)
        rtx.put_baseline("t", "agent-1", b'{"v":2}', 2.0)
    with records(store) as rtx:
        assert rtx.get_policy(sha) == body
        assert rtx.get_policy("0" * 64) is None
        assert rtx.get_baseline("t", "agent-1") == b'{"v":2}'
        assert rtx.get_baseline("other", "agent-1") is None

    key, row = create_key(store, "t", "app", "read", hasher=CHEAP)
    with records(store) as rtx:
        stored = rtx.get_key(row.key_id)
    assert stored is not None and key not in stored.secret_hash  # only the hash is kept
    assert stored.secret_hash.startswith("$argon2id$")
    verifier = KeyVerifier(store, ttl=0)
    who = verifier.verify(key)
    assert who is not None and who.tenant_id == "t" and who.scopes == {"read"}
    assert verifier.verify(key[:-1] + ("B" if key[-1] != "B" else "C")) is None
    assert verifier.verify("sk_" + row.key_id) is None
    with records(store, write=True) as rtx:
        assert rtx.revoke_key(row.key_id, 3.0)
        assert not rtx.revoke_key(row.key_id, 4.0)
    assert verifier.verify(key) is None  # ttl 0: revocation is seen at once
    store.close()
