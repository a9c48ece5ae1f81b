"""The schema of the evidence store: its migrations, applied in the caller's transaction.

Statements use ``?`` placeholders and the ``{blob}`` / ``{int}`` type names of the
dialect. Version 1: the log, checkpoints, results; 2: sealing, tenants, apps, keys and the
index tables; 3: approvals and containment; 4: the value index (:mod:`.run_values`);
5: everything scoped by (tenant, app), the value index included, and the leaf version
(see the comment at version 5); 6: the arguments an approval binds.
"""

from __future__ import annotations

from sentrail.store.base import StoreError
from sentrail.store.sql import SqlTx

# Each migration: (version, statements); {blob} and {int} are the dialect's type names.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE events (
                tenant_id TEXT NOT NULL, seq {int} NOT NULL, run_id TEXT NOT NULL,
                event_id TEXT NOT NULL, kind TEXT NOT NULL, payload {blob},
                payload_sha256 {blob} NOT NULL, prev_hash {blob} NOT NULL,
                chain_hash {blob} NOT NULL, leaf_hash {blob} NOT NULL,
                received_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (tenant_id, seq), UNIQUE (tenant_id, event_id))""",
            "CREATE INDEX events_by_run ON events (tenant_id, run_id, seq)",
            """CREATE TABLE checkpoints (
                tenant_id TEXT NOT NULL, size {int} NOT NULL, note TEXT NOT NULL,
                PRIMARY KEY (tenant_id, size))""",
            """CREATE TABLE results (
                tenant_id TEXT NOT NULL, run_id TEXT NOT NULL, result {blob} NOT NULL,
                PRIMARY KEY (tenant_id, run_id))""",
        ],
    ),
    (
        2,
        [
            # Payload sealing (redaction by key erasure): a sealed payload is
            # nonce || AES-256-GCM ciphertext under its run's data key; `view` is the
            # redacted copy kept after the key is erased (its digest is in the log).
            "ALTER TABLE events ADD COLUMN sealed {int} NOT NULL DEFAULT 0",
            "ALTER TABLE events ADD COLUMN view {blob}",
            """CREATE TABLE run_keys (
                tenant_id TEXT NOT NULL, run_id TEXT NOT NULL, dek {blob},
                created_at DOUBLE PRECISION NOT NULL, erased_at DOUBLE PRECISION,
                erased_by TEXT, PRIMARY KEY (tenant_id, run_id))""",
            """CREATE TABLE tenants (
                tenant_id TEXT PRIMARY KEY, retention_days {int},
                created_at DOUBLE PRECISION NOT NULL)""",
            """CREATE TABLE apps (
                tenant_id TEXT NOT NULL, app_id TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (tenant_id, app_id))""",
            """CREATE TABLE api_keys (
                key_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, app_id TEXT NOT NULL,
                scopes TEXT NOT NULL, secret_hash TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL, revoked_at DOUBLE PRECISION)""",
            "CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, app_id)",
            """CREATE TABLE runs (
                tenant_id TEXT NOT NULL, run_id TEXT NOT NULL, app_id TEXT NOT NULL,
                trace_hash TEXT NOT NULL, agent_id TEXT NOT NULL, status TEXT NOT NULL,
                verdict TEXT NOT NULL, risk_score {int} NOT NULL, blocked_by TEXT,
                duration_ms {int}, started_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL, steps {int} NOT NULL,
                findings {int} NOT NULL, counts TEXT NOT NULL, policy_sha256 TEXT,
                PRIMARY KEY (tenant_id, run_id))""",
            "CREATE UNIQUE INDEX runs_by_hash ON runs (tenant_id, trace_hash)",
            "CREATE INDEX runs_by_app ON runs (tenant_id, app_id, started_at, run_id)",
            "CREATE INDEX runs_by_agent ON runs (tenant_id, app_id, agent_id, started_at)",
            "CREATE INDEX runs_by_status ON runs (tenant_id, app_id, status, started_at)",
            "CREATE INDEX runs_by_verdict ON runs (tenant_id, app_id, verdict, started_at)",
            """CREATE TABLE steps (
                tenant_id TEXT NOT NULL, run_id TEXT NOT NULL, idx {int} NOT NULL,
                action TEXT NOT NULL, tool TEXT, status TEXT, ts TEXT,
                permissions TEXT NOT NULL, PRIMARY KEY (tenant_id, run_id, idx))""",
            "CREATE INDEX steps_by_tool ON steps (tenant_id, tool)",
            """CREATE TABLE findings (
                tenant_id TEXT NOT NULL, finding_id TEXT NOT NULL, app_id TEXT NOT NULL,
                run_id TEXT NOT NULL, category TEXT NOT NULL, severity TEXT NOT NULL,
                severity_rank {int} NOT NULL, rule_id TEXT NOT NULL, step {int},
                resolved {int} NOT NULL DEFAULT 0, resolved_at DOUBLE PRECISION,
                resolved_by TEXT, created_at DOUBLE PRECISION NOT NULL,
                body {blob} NOT NULL, PRIMARY KEY (tenant_id, finding_id))""",
            "CREATE INDEX findings_by_app ON findings (tenant_id, app_id, category, severity_rank)",
            "CREATE INDEX findings_by_status ON findings (tenant_id, app_id, resolved)",
            "CREATE INDEX findings_by_run ON findings (tenant_id, run_id)",
            """CREATE TABLE finding_audit (
                tenant_id TEXT NOT NULL, finding_id TEXT NOT NULL,
                at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
                comment TEXT NOT NULL)""",
            "CREATE INDEX finding_audit_by_finding ON finding_audit (tenant_id, finding_id)",
            """CREATE TABLE decisions (
                tenant_id TEXT NOT NULL, decision_id TEXT NOT NULL, app_id TEXT NOT NULL,
                run_id TEXT NOT NULL, tool TEXT NOT NULL, decision TEXT NOT NULL,
                args_sha256 TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
                body {blob} NOT NULL, PRIMARY KEY (tenant_id, decision_id))""",
            "CREATE INDEX decisions_by_run ON decisions (tenant_id, run_id)",
            """CREATE TABLE alerts (
                tenant_id TEXT NOT NULL, alert_id TEXT NOT NULL, run_id TEXT NOT NULL,
                finding_id TEXT, tier TEXT NOT NULL, status TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL, body {blob} NOT NULL,
                PRIMARY KEY (tenant_id, alert_id))""",
            "CREATE INDEX alerts_by_time ON alerts (tenant_id, created_at)",
            """CREATE TABLE baselines (
                tenant_id TEXT NOT NULL, agent_id TEXT NOT NULL, body {blob} NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (tenant_id, agent_id))""",
            """CREATE TABLE policies (
                sha256 TEXT PRIMARY KEY, body {blob} NOT NULL,
                created_at DOUBLE PRECISION NOT NULL)""",
        ],
    ),
    (
        3,
        [
            # Enforcement: approvals bound to exact arguments, and the containment log
            # (quarantine, grant revocation, tool disabling, run freezing), who and why.
            """CREATE TABLE approvals (
                approval_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, run_id TEXT NOT NULL,
                agent_id TEXT NOT NULL, tool TEXT NOT NULL, args_sha256 TEXT NOT NULL,
                requested_at DOUBLE PRECISION NOT NULL, expires DOUBLE PRECISION NOT NULL,
                status TEXT NOT NULL, decided_by TEXT, decided_at DOUBLE PRECISION,
                reason TEXT NOT NULL)""",
            "CREATE INDEX approvals_by_status ON approvals (tenant_id, status, requested_at)",
            """CREATE TABLE containment (
                action_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, kind TEXT NOT NULL,
                target TEXT NOT NULL, actor TEXT NOT NULL, reason TEXT NOT NULL,
                at DOUBLE PRECISION NOT NULL)""",
            "CREATE INDEX containment_by_tenant ON containment (tenant_id, at)",
        ],
    ),
    (
        4,
        [
            # The value index (store/run_values.py): which run used which value, and which
            # runs are in it. Filled at index time; `sentrail graph --reindex` backfills.
            """CREATE TABLE run_values (
                tenant_id TEXT NOT NULL, app_id TEXT NOT NULL, run_id TEXT NOT NULL,
                agent_id TEXT NOT NULL, step {int} NOT NULL, kind TEXT NOT NULL,
                value_key TEXT NOT NULL, display TEXT NOT NULL, field TEXT NOT NULL, tool TEXT,
                started_at DOUBLE PRECISION NOT NULL)""",
            "CREATE INDEX run_values_by_value ON run_values (tenant_id, value_key, started_at)",
            "CREATE INDEX run_values_by_run ON run_values (tenant_id, run_id)",
            """CREATE TABLE run_values_indexed (
                tenant_id TEXT NOT NULL, run_id TEXT NOT NULL, app_id TEXT NOT NULL,
                trace_hash TEXT NOT NULL, indexed_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (tenant_id, run_id))""",
        ],
    ),
]
# Schema v5 scopes every run by app: the log's rows, run keys, index rows (the value index
# too), results and event-id idempotency are keyed by (tenant, app, run), and event ids are
# unique per (tenant, app). Tables whose keys change are rebuilt (SQLite cannot alter a
# key). Rows from before v5 get their app from the run's index row (else its decisions,
# else "default") and keep leaf version 1 (their leaves do not commit to the app); new
# rows are leaf version 2. The value index rows already carry the app of their run.
_RUN_APP = (
    "COALESCE((SELECT a.app_id FROM v5_run_apps a WHERE a.tenant_id = {t}.tenant_id "
    "AND a.run_id = {t}.run_id), 'default')"
)


def _rebuild(table: str, create: str, columns: str, select: str, indexes: list[str]) -> list[str]:
    """Statements that rebuild ``table`` as ``create`` (its new definition, named
    ``{table}_v5``) from ``SELECT {select} FROM {table} x``, then its indexes."""
    return [
        create,
        f"INSERT INTO {table}_v5 ({columns}) SELECT {select} FROM {table} x",  # noqa: S608 (constants)
        f"DROP TABLE {table}",
        f"ALTER TABLE {table}_v5 RENAME TO {table}",
        *indexes,
    ]


_EVENT_COLS = (
    "tenant_id, seq, app_id, run_id, event_id, kind, payload, payload_sha256, prev_hash, "
    "chain_hash, leaf_hash, received_at, sealed, view, leaf_version"
)
_V5: list[str] = [
    """CREATE TABLE v5_run_apps (
        tenant_id TEXT NOT NULL, run_id TEXT NOT NULL, app_id TEXT NOT NULL,
        PRIMARY KEY (tenant_id, run_id))""",
    """INSERT INTO v5_run_apps (tenant_id, run_id, app_id)
        SELECT t.tenant_id, t.run_id, COALESCE(
            (SELECT r.app_id FROM runs r WHERE r.tenant_id = t.tenant_id AND r.run_id = t.run_id),
            (SELECT MIN(d.app_id) FROM decisions d
             WHERE d.tenant_id = t.tenant_id AND d.run_id = t.run_id),
            'default')
        FROM (SELECT tenant_id, run_id FROM events UNION SELECT tenant_id, run_id FROM run_keys
              UNION SELECT tenant_id, run_id FROM results
              UNION SELECT tenant_id, run_id FROM steps) t""",
    *_rebuild(
        "events",
        """CREATE TABLE events_v5 (
            tenant_id TEXT NOT NULL, seq {int} NOT NULL, app_id TEXT NOT NULL,
            run_id TEXT NOT NULL, event_id TEXT NOT NULL, kind TEXT NOT NULL, payload {blob},
            payload_sha256 {blob} NOT NULL, prev_hash {blob} NOT NULL,
            chain_hash {blob} NOT NULL, leaf_hash {blob} NOT NULL,
            received_at DOUBLE PRECISION NOT NULL, sealed {int} NOT NULL DEFAULT 0,
            view {blob}, leaf_version {int} NOT NULL DEFAULT 1,
            PRIMARY KEY (tenant_id, seq), UNIQUE (tenant_id, app_id, event_id))""",
        _EVENT_COLS,
        "x.tenant_id, x.seq, "
        + _RUN_APP.format(t="x")
        + ", x.run_id, x.event_id, x.kind, x.payload, x.payload_sha256, x.prev_hash, "
        "x.chain_hash, x.leaf_hash, x.received_at, x.sealed, x.view, 1",
        ["CREATE INDEX events_by_run ON events (tenant_id, app_id, run_id, seq)"],
    ),
    *_rebuild(
        "run_keys",
        """CREATE TABLE run_keys_v5 (
            tenant_id TEXT NOT NULL, app_id TEXT NOT NULL, run_id TEXT NOT NULL, dek {blob},
            created_at DOUBLE PRECISION NOT NULL, erased_at DOUBLE PRECISION,
            erased_by TEXT, PRIMARY KEY (tenant_id, app_id, run_id))""",
        "tenant_id, app_id, run_id, dek, created_at, erased_at, erased_by",
        "x.tenant_id, "
        + _RUN_APP.format(t="x")
        + ", x.run_id, x.dek, x.created_at, x.erased_at, x.erased_by",
        [],
    ),
    *_rebuild(
        "runs",
        """CREATE TABLE runs_v5 (
            tenant_id TEXT NOT NULL, run_id TEXT NOT NULL, app_id TEXT NOT NULL,
            trace_hash TEXT NOT NULL, agent_id TEXT NOT NULL, status TEXT NOT NULL,
            verdict TEXT NOT NULL, risk_score {int} NOT NULL, blocked_by TEXT,
            duration_ms {int}, started_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL, steps {int} NOT NULL,
            findings {int} NOT NULL, counts TEXT NOT NULL, policy_sha256 TEXT,
            PRIMARY KEY (tenant_id, app_id, run_id))""",
        "tenant_id, run_id, app_id, trace_hash, agent_id, status, verdict, risk_score, "
        "blocked_by, duration_ms, started_at, updated_at, steps, findings, counts, policy_sha256",
        "x.tenant_id, x.run_id, x.app_id, x.trace_hash, x.agent_id, x.status, x.verdict, "
        "x.risk_score, x.blocked_by, x.duration_ms, x.started_at, x.updated_at, x.steps, "
        "x.findings, x.counts, x.policy_sha256",
        [
            "CREATE UNIQUE INDEX runs_by_hash ON runs (tenant_id, app_id, trace_hash)",
            "CREATE INDEX runs_by_app ON runs (tenant_id, app_id, started_at, run_id)",
            "CREATE INDEX runs_by_agent ON runs (tenant_id, app_id, agent_id, started_at)",
            "CREATE INDEX runs_by_status ON runs (tenant_id, app_id, status, started_at)",
            "CREATE INDEX runs_by_verdict ON runs (tenant_id, app_id, verdict, started_at)",
        ],
    ),
    *_rebuild(
        "steps",
        """CREATE TABLE steps_v5 (
            tenant_id TEXT NOT NULL, app_id TEXT NOT NULL, run_id TEXT NOT NULL,
            idx {int} NOT NULL, action TEXT NOT NULL, tool TEXT, status TEXT, ts TEXT,
            permissions TEXT NOT NULL, PRIMARY KEY (tenant_id, app_id, run_id, idx))""",
        "tenant_id, app_id, run_id, idx, action, tool, status, ts, permissions",
        "x.tenant_id, "
        + _RUN_APP.format(t="x")
        + ", x.run_id, x.idx, x.action, x.tool, x.status, x.ts, x.permissions",
        ["CREATE INDEX steps_by_tool ON steps (tenant_id, app_id, tool)"],
    ),
    *_rebuild(
        "finding_audit",
        """CREATE TABLE finding_audit_v5 (
            tenant_id TEXT NOT NULL, app_id TEXT NOT NULL, finding_id TEXT NOT NULL,
            at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
            comment TEXT NOT NULL)""",
        "tenant_id, app_id, finding_id, at, actor, action, comment",
        "x.tenant_id, COALESCE((SELECT MIN(f.app_id) FROM findings f WHERE "
        "f.tenant_id = x.tenant_id AND f.finding_id = x.finding_id), 'default'), "
        "x.finding_id, x.at, x.actor, x.action, x.comment",
        ["CREATE INDEX finding_audit_by_finding ON finding_audit (tenant_id, app_id, finding_id)"],
    ),
    *_rebuild(
        "findings",
        """CREATE TABLE findings_v5 (
            tenant_id TEXT NOT NULL, finding_id TEXT NOT NULL, app_id TEXT NOT NULL,
            run_id TEXT NOT NULL, category TEXT NOT NULL, severity TEXT NOT NULL,
            severity_rank {int} NOT NULL, rule_id TEXT NOT NULL, step {int},
            resolved {int} NOT NULL DEFAULT 0, resolved_at DOUBLE PRECISION,
            resolved_by TEXT, created_at DOUBLE PRECISION NOT NULL,
            body {blob} NOT NULL, PRIMARY KEY (tenant_id, app_id, finding_id))""",
        "tenant_id, finding_id, app_id, run_id, category, severity, severity_rank, rule_id, "
        "step, resolved, resolved_at, resolved_by, created_at, body",
        "x.tenant_id, x.finding_id, x.app_id, x.run_id, x.category, x.severity, "
        "x.severity_rank, x.rule_id, x.step, x.resolved, x.resolved_at, x.resolved_by, "
        "x.created_at, x.body",
        [
            "CREATE INDEX findings_by_app ON findings (tenant_id, app_id, category, severity_rank)",
            "CREATE INDEX findings_by_status ON findings (tenant_id, app_id, resolved)",
            "CREATE INDEX findings_by_run ON findings (tenant_id, app_id, run_id)",
            "CREATE INDEX findings_by_id ON findings (tenant_id, finding_id)",
        ],
    ),
    *_rebuild(
        "results",
        """CREATE TABLE results_v5 (
            tenant_id TEXT NOT NULL, app_id TEXT NOT NULL, run_id TEXT NOT NULL,
            result {blob} NOT NULL, PRIMARY KEY (tenant_id, app_id, run_id))""",
        "tenant_id, app_id, run_id, result",
        "x.tenant_id, " + _RUN_APP.format(t="x") + ", x.run_id, x.result",
        [],
    ),
    "DROP INDEX decisions_by_run",
    "CREATE INDEX decisions_by_run ON decisions (tenant_id, app_id, run_id)",
    # Approvals and containment actions belong to the app of the key (or run) that made
    # them; '*' is tenant-wide (a `*` key, the CLI, or an action on agents and tools).
    "ALTER TABLE approvals ADD COLUMN app_id TEXT NOT NULL DEFAULT '*'",
    "ALTER TABLE containment ADD COLUMN app_id TEXT NOT NULL DEFAULT '*'",
    # The value index: a run is (tenant, app, run) there too, so an app-bound read or a
    # redaction of one app's run never touches another app's run of the same id.
    "DROP INDEX run_values_by_run",
    "CREATE INDEX run_values_by_run ON run_values (tenant_id, app_id, run_id)",
    *_rebuild(
        "run_values_indexed",
        """CREATE TABLE run_values_indexed_v5 (
            tenant_id TEXT NOT NULL, app_id TEXT NOT NULL, run_id TEXT NOT NULL,
            trace_hash TEXT NOT NULL, indexed_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (tenant_id, app_id, run_id))""",
        "tenant_id, app_id, run_id, trace_hash, indexed_at",
        "x.tenant_id, x.app_id, x.run_id, x.trace_hash, x.indexed_at",
        [],
    ),
    "DROP TABLE v5_run_apps",
]
MIGRATIONS.append((5, _V5))

# 6: an approval records the arguments it binds (their canonical JSON, which args_sha256
# hashes), so an approver sees the exact call; older approvals have '' (shown by hash only).
MIGRATIONS.append((6, ["ALTER TABLE approvals ADD COLUMN args_json TEXT NOT NULL DEFAULT ''"]))
LATEST_VERSION = MIGRATIONS[-1][0]


def apply_migrations(tx: SqlTx, blob: str, integer: str) -> int:
    """Run every migration newer than the stored version (in the caller's transaction)."""
    tx.cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    rows = tx.all("SELECT MAX(version) FROM schema_version")
    version = int(rows[0][0]) if rows and rows[0][0] is not None else 0
    if version > LATEST_VERSION:
        raise StoreError(f"schema version {version} is newer than this sentrail ({LATEST_VERSION})")
    for number, statements in MIGRATIONS:
        if number > version:
            for stmt in statements:
                tx.cur.execute(stmt.format(blob=blob, int=integer))
            tx.all("INSERT INTO schema_version (version) VALUES (?) RETURNING version", (number,))
            version = number
    return version
