"""Record tables of triage: which apps hold a finding id, resolutions and their audit.

A mixin of :class:`sentrail.store.records.RecordTx` (the same transaction). A resolution
change is also a ``triage`` event in the log (:mod:`sentrail.store.triage`), written in
the transaction that calls :meth:`FindingRecords.resolve_finding`.
"""

from __future__ import annotations

import msgspec

from sentrail.store.rowcheck import req_f as _f
from sentrail.store.rowcheck import req_s as _s
from sentrail.store.sql import SqlTx


class AuditRow(msgspec.Struct, frozen=True):
    finding_id: str
    at: float
    actor: str
    action: str
    comment: str


class FindingRecords:
    tx: SqlTx

    def finding_apps(self, tenant: str, finding_id: str) -> list[str]:
        """The apps of ``tenant`` that hold a finding ``finding_id`` (finding ids derive
        from run ids, and two apps may use one run id)."""
        rows = self.tx.all(
            "SELECT app_id FROM findings WHERE tenant_id = ? AND finding_id = ? ORDER BY 1",
            (tenant, finding_id),
        )
        return [_s(r[0], "findings.app_id") for r in rows]

    def resolve_finding(
        self,
        tenant: str,
        app: str,
        finding_id: str,
        resolved: bool,
        actor: str,
        comment: str,
        now: float,
    ) -> None:
        """Set the resolution status and append the audit row, in this transaction."""
        self.tx.all(
            "UPDATE findings SET resolved = ?, resolved_at = ?, resolved_by = ? "
            "WHERE tenant_id = ? AND app_id = ? AND finding_id = ? RETURNING finding_id",
            (
                int(resolved),
                now if resolved else None,
                actor if resolved else None,
                tenant,
                app,
                finding_id,
            ),
        )
        self.tx.all(
            "INSERT INTO finding_audit (tenant_id, app_id, finding_id, at, actor, action, "
            "comment) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING finding_id",
            (tenant, app, finding_id, now, actor, "resolve" if resolved else "reopen", comment),
        )

    def audit(self, tenant: str, app: str, finding_id: str) -> list[AuditRow]:
        rows = self.tx.all(
            "SELECT finding_id, at, actor, action, comment FROM finding_audit "
            "WHERE tenant_id = ? AND app_id = ? AND finding_id = ? ORDER BY at",
            (tenant, app, finding_id),
        )
        return [
            AuditRow(
                _s(r[0], "audit.finding_id"),
                _f(r[1], "audit.at"),
                _s(r[2], "audit.actor"),
                _s(r[3], "audit.action"),
                _s(r[4], "audit.comment"),
            )
            for r in rows
        ]
