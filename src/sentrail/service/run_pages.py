"""A page of runs for ``GET /v1/apps/{app}/traces``, with ``?agent=`` as a glob.

``agent`` means what it means to ``trace watch --agent``
(:func:`sentrail.runtime.watch.agent_matcher`): a glob (``prod-*``, ``*-au-?ast``), and a
value without glob characters matches as a prefix. SQL ``LIKE`` cannot say the same on
both backends (SQLite's is case-insensitive, neither knows ``[...]``), so the filter
runs here, over the app's runs in the keyset order the store pages in:

1. read runs after the cursor in batches, keep those whose agent matches;
2. stop when ``limit`` have matched and one more exists (the cursor is the last kept),
   when the runs run out (no cursor), or after examining ``SCAN_LIMIT`` runs: then the
   page may hold fewer than ``limit`` and the cursor is the last run examined, so a
   client paging on never misses a run and no request scans without bound.
"""

from __future__ import annotations

from sentrail.runtime.watch import agent_matcher
from sentrail.store.records import RecordTx, RunFilter, RunRow

BATCH = 500
SCAN_LIMIT = 10_000
Cursor = tuple[float, str]


def runs_page(
    rtx: RecordTx,
    tenant: str,
    app: str,
    flt: RunFilter,
    agent: str | None,
    limit: int,
    after: Cursor | None,
) -> tuple[list[RunRow], Cursor | None]:
    """Up to ``limit`` runs, newest first, and the cursor of the next page (or None)."""
    if agent is None:
        rows = rtx.list_runs(tenant, app, flt, limit + 1, after)
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (rows[-1].started_at, rows[-1].run_id) if more else None
    matches = agent_matcher(agent)
    kept: list[RunRow] = []
    examined = 0
    cursor = after
    while examined < SCAN_LIMIT:
        batch = rtx.list_runs(tenant, app, flt, BATCH, cursor)
        for row in batch:
            if matches(row.agent_id):
                if len(kept) == limit:
                    return kept, (kept[-1].started_at, kept[-1].run_id)
                kept.append(row)
        examined += len(batch)
        if len(batch) < BATCH:
            return kept, None
        cursor = (batch[-1].started_at, batch[-1].run_id)
    return kept, cursor
