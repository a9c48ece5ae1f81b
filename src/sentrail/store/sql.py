"""SQL shared by the SQLite and PostgreSQL backends: row access (the schema: :mod:`.schema`).

Statements are written with ``?`` placeholders; a backend with another paramstyle passes
``placeholder="%s"``. Rows read back are treated as hostile: every column is type-checked
and a malformed row raises :class:`StoreError` naming its seq.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sentrail.evidence.chain import LEAF_VERSIONS
from sentrail.store.base import Checkpoint, Prior, RunKey, StoredEvent, StoreError
from sentrail.store.seal import KEY_BYTES, aad, cipher, unseal

_COLUMNS = (
    "seq, tenant_id, app_id, run_id, event_id, kind, payload, payload_sha256, prev_hash, "
    "chain_hash, leaf_hash, received_at, sealed, leaf_version"
)
# Events with their run's key: a sealed payload is opened as it is read.
_SELECT = (
    "SELECT e.seq, e.tenant_id, e.app_id, e.run_id, e.event_id, e.kind, e.payload, "
    "e.payload_sha256, e.prev_hash, e.chain_hash, e.leaf_hash, e.received_at, e.sealed, "
    "e.view, e.leaf_version, k.dek, k.erased_at FROM events e LEFT JOIN run_keys k "
    "ON k.tenant_id = e.tenant_id AND k.app_id = e.app_id AND k.run_id = e.run_id"
)
_IN_CHUNK = 500  # bound parameters per IN (...) look-up
_BAD_SEAL = (
    "the sealed payload does not authenticate as this event's (edited, moved or under another key)"
)


def _bytes(value: object, seq: object, column: str, size: int | None = 32) -> bytes:
    if isinstance(value, memoryview | bytearray):
        value = bytes(value)
    if not isinstance(value, bytes) or (size is not None and len(value) != size):
        raise StoreError(f"malformed {column}", f"stored event seq {seq}")
    return value


def _text(value: object, seq: object, column: str) -> str:
    if not isinstance(value, str):
        raise StoreError(f"malformed {column}", f"stored event seq {seq}")
    return value


def seq_of(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise StoreError("malformed seq", f"stored event seq {value!r}")
    return value


def prior(seq: object, run_id: object, kind: object, digest: object) -> Prior:
    """A stored event's identity columns (for idempotency and conflicts), checked."""
    return Prior(
        seq_of(seq),
        _text(run_id, seq, "run_id"),
        _text(kind, seq, "kind"),
        _bytes(digest, seq, "payload_sha256"),
    )


def _flag(value: object, seq: object, column: str) -> bool:
    if isinstance(value, bool) or value not in (0, 1):
        raise StoreError(f"malformed {column}", f"stored event seq {seq}")
    return bool(value)


def run_key(dek: object, erased_at: object, where: str) -> RunKey:
    """A ``run_keys`` row, type-checked."""
    if isinstance(dek, memoryview | bytearray):
        dek = bytes(dek)
    if dek is not None and (not isinstance(dek, bytes) or len(dek) != KEY_BYTES):
        raise StoreError("malformed run data key", where)
    if erased_at is not None and (
        isinstance(erased_at, bool) or not isinstance(erased_at, int | float)
    ):
        raise StoreError("malformed erased_at", where)
    return RunKey(dek, None if erased_at is None else float(erased_at))


def row_to_event(row: Sequence[Any], ciphers: dict[bytes, AESGCM] | None = None) -> StoredEvent:
    """A stored event from a row in ``_SELECT`` order, every column checked and a sealed
    payload opened with its run's key (``ciphers`` caches one AES-GCM per key)."""
    seq, tenant, app, run_id, event_id, kind, blob, digest, prev, link, leaf, at = row[:12]
    sealed_col, view, version, dek, erased_at = row[12:17]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise StoreError("malformed seq", f"stored event seq {seq!r}")
    if not isinstance(at, int | float) or isinstance(at, bool):
        raise StoreError("malformed received_at", f"stored event seq {seq}")
    if version not in LEAF_VERSIONS or isinstance(version, bool):
        raise StoreError("malformed leaf_version", f"stored event seq {seq}")
    tenant = _text(tenant, seq, "tenant_id")
    app = _text(app, seq, "app_id")
    run_id = _text(run_id, seq, "run_id")
    event_id = _text(event_id, seq, "event_id")
    sealed = _flag(sealed_col, seq, "sealed")
    payload = None if blob is None else _bytes(blob, seq, "payload", None)
    problem = None
    if sealed and payload is not None:
        key = run_key(dek, erased_at, f"run {run_id!r}")
        if key.dek is None or key.erased:  # erased (or the key row is gone)
            payload = None
        else:
            cache = {} if ciphers is None else ciphers
            aead = cache.get(key.dek)
            if aead is None:
                aead = cache[key.dek] = cipher(key.dek)
            payload = unseal(aead, payload, aad(tenant, run_id, event_id))
            problem = None if payload is not None else _BAD_SEAL
    return StoredEvent(
        seq=seq,
        tenant_id=tenant,
        app_id=app,
        run_id=run_id,
        event_id=event_id,
        kind=_text(kind, seq, "kind"),
        payload=payload,
        payload_sha256=_bytes(digest, seq, "payload_sha256"),
        prev_hash=_bytes(prev, seq, "prev_hash"),
        chain_hash=_bytes(link, seq, "chain_hash"),
        leaf_hash=_bytes(leaf, seq, "leaf_hash"),
        received_at=float(at),
        sealed=sealed,
        view=None if view is None else _bytes(view, seq, "view", None),
        seal_error=problem,
        leaf_version=int(version),
    )


def by_app(items: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """``(app, id)`` pairs grouped by app, ids in first-seen order without repeats."""
    out: dict[str, list[str]] = {}
    for app, item in dict.fromkeys(items):
        out.setdefault(app, []).append(item)
    return out


class SqlTx:
    """Row access over a DB-API cursor, inside the backend's transaction."""

    def __init__(self, cursor: Any, placeholder: str = "?") -> None:
        self.cur = cursor
        self.ph = placeholder

    def q(self, sql: str) -> str:
        return sql if self.ph == "?" else sql.replace("?", self.ph)

    def all(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        self.cur.execute(self.q(sql), params)
        return list(self.cur.fetchall())

    def lock_tenant(self, tenant: str) -> None:
        """SQLite: the write transaction already holds the database lock."""

    def log_size(self, tenant: str) -> int:
        rows = self.all("SELECT MAX(seq) FROM events WHERE tenant_id = ?", (tenant,))
        top = rows[0][0] if rows else None
        return 0 if top is None else int(top) + 1

    def _chunks(self, items: Sequence[str]) -> list[tuple[str, list[str]]]:
        """``items`` in chunks, each with its ``IN (?, ...)`` placeholder list."""
        out = []
        for i in range(0, len(items), _IN_CHUNK):
            chunk = list(items[i : i + _IN_CHUNK])
            out.append((", ".join("?" * len(chunk)), chunk))
        return out

    def find_events(
        self, tenant: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], Prior]:
        """What is stored under each ``(app, event_id)`` of ``keys`` that is taken."""
        out: dict[tuple[str, str], Prior] = {}
        for app, event_ids in by_app(keys).items():
            for marks, chunk in self._chunks(event_ids):
                sql = (
                    "SELECT event_id, seq, run_id, kind, payload_sha256 FROM events "  # noqa: S608 (placeholders only)
                    f"WHERE tenant_id = ? AND app_id = ? AND event_id IN ({marks})"
                )
                for event_id, seq, run_id, kind, digest in self.all(sql, (tenant, app, *chunk)):
                    out[(app, _text(event_id, seq, "event_id"))] = prior(seq, run_id, kind, digest)
        return out

    def run_keys(
        self, tenant: str, runs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], RunKey]:
        """The data keys (or erasure records) of the ``(app, run_id)`` that have one."""
        out: dict[tuple[str, str], RunKey] = {}
        for app, run_ids in by_app(runs).items():
            for marks, chunk in self._chunks(run_ids):
                sql = (
                    "SELECT run_id, dek, erased_at FROM run_keys "  # noqa: S608 (placeholders only)
                    f"WHERE tenant_id = ? AND app_id = ? AND run_id IN ({marks})"
                )
                for run_id, dek, erased_at in self.all(sql, (tenant, app, *chunk)):
                    out[(app, str(run_id))] = run_key(dek, erased_at, f"run {run_id!r}")
        return out

    def insert_run_keys(
        self, tenant: str, keys: Sequence[tuple[str, str, bytes]], now: float
    ) -> None:
        self.cur.executemany(
            self.q(
                "INSERT INTO run_keys (tenant_id, app_id, run_id, dek, created_at) "
                "VALUES (?, ?, ?, ?, ?)"
            ),
            [(tenant, app, run_id, dek, now) for app, run_id, dek in keys],
        )

    def run_heads(
        self, tenant: str, runs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], bytes]:
        """The last chain hash of each ``(app, run_id)`` that has events."""
        out: dict[tuple[str, str], bytes] = {}
        for app, run_ids in by_app(runs).items():
            for marks, chunk in self._chunks(run_ids):
                sql = (
                    "SELECT run_id, seq, chain_hash FROM events WHERE tenant_id = ? AND seq IN "  # noqa: S608 (placeholders only)
                    "(SELECT MAX(seq) FROM events WHERE tenant_id = ? AND app_id = ? "
                    f"AND run_id IN ({marks}) GROUP BY run_id)"
                )
                for run_id, seq, link in self.all(sql, (tenant, tenant, app, *chunk)):
                    out[(app, _text(run_id, seq, "run_id"))] = _bytes(link, seq, "chain_hash")
        return out

    def insert_events(self, rows: Sequence[StoredEvent]) -> None:
        """Insert rows as written: ``payload`` is the bytes at rest (sealed when ``sealed``)."""
        sql = f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608 (constant columns)
        self.cur.executemany(
            self.q(sql),
            [
                (
                    r.seq,
                    r.tenant_id,
                    r.app_id,
                    r.run_id,
                    r.event_id,
                    r.kind,
                    r.payload,
                    r.payload_sha256,
                    r.prev_hash,
                    r.chain_hash,
                    r.leaf_hash,
                    r.received_at,
                    int(r.sealed),
                    r.leaf_version,
                )
                for r in rows
            ],
        )

    def leaf_hashes(self, tenant: str, start: int) -> list[bytes]:
        rows = self.all(
            "SELECT seq, leaf_hash FROM events WHERE tenant_id = ? AND seq >= ? ORDER BY seq",
            (tenant, start),
        )
        return [_bytes(h, seq, "leaf_hash") for seq, h in rows]

    def insert_checkpoint(self, tenant: str, size: int, note: str) -> None:
        self.all(
            "INSERT INTO checkpoints (tenant_id, size, note) VALUES (?, ?, ?) "
            "ON CONFLICT (tenant_id, size) DO NOTHING RETURNING size",
            (tenant, size, note),
        )

    def checkpoints(self, tenant: str, latest_only: bool) -> list[Checkpoint]:
        sql = "SELECT size, note FROM checkpoints WHERE tenant_id = ? ORDER BY size"
        if latest_only:
            sql += " DESC LIMIT 1"
        out = []
        for size, note in self.all(sql, (tenant,)):
            if not isinstance(size, int) or not isinstance(note, str):
                raise StoreError("malformed checkpoint row", f"tenant {tenant}")
            out.append(Checkpoint(tenant, size, note))
        return out

    def events(self, tenant: str, start: int, end: int | None, limit: int) -> list[StoredEvent]:
        sql = f"{_SELECT} WHERE e.tenant_id = ? AND e.seq >= ?"
        params: list[object] = [tenant, start]
        if end is not None:
            sql += " AND e.seq < ?"
            params.append(end)
        params.append(limit)
        ciphers: dict[bytes, AESGCM] = {}
        rows = self.all(sql + " ORDER BY e.seq LIMIT ?", params)
        return [row_to_event(r, ciphers) for r in rows]

    def run_events(self, tenant: str, app: str, run_id: str) -> list[StoredEvent]:
        sql = f"{_SELECT} WHERE e.tenant_id = ? AND e.app_id = ? AND e.run_id = ? ORDER BY e.seq"
        ciphers: dict[bytes, AESGCM] = {}
        return [row_to_event(r, ciphers) for r in self.all(sql, (tenant, app, run_id))]

    def log_runs(self, tenant: str) -> list[tuple[str, str]]:
        """Every ``(app, run_id)`` with at least one event in ``tenant``'s log."""
        rows = self.all(
            "SELECT DISTINCT app_id, run_id FROM events WHERE tenant_id = ? ORDER BY 1, 2",
            (tenant,),
        )
        return [(_text(a, "?", "app_id"), _text(r, "?", "run_id")) for a, r in rows]

    def tenants(self) -> list[str]:
        rows = self.all(
            "SELECT tenant_id FROM events UNION SELECT tenant_id FROM checkpoints ORDER BY 1"
        )
        return [str(r[0]) for r in rows]

    def put_result(self, tenant: str, app: str, run_id: str, result: bytes) -> None:
        self.all(
            "INSERT INTO results (tenant_id, app_id, run_id, result) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (tenant_id, app_id, run_id) DO UPDATE SET result = excluded.result "
            "RETURNING run_id",
            (tenant, app, run_id, result),
        )

    def get_result(self, tenant: str, app: str, run_id: str) -> bytes | None:
        rows = self.all(
            "SELECT result FROM results WHERE tenant_id = ? AND app_id = ? AND run_id = ?",
            (tenant, app, run_id),
        )
        return _bytes(rows[0][0], run_id, "result", None) if rows else None
