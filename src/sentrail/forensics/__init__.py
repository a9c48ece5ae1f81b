"""The investigator's view of a run: why a step was judged as it was, and where its values
came from and went.

Entry points (all pure: they take a run, its result and its decisions, whatever produced
them — ``trace analyze``, the store, or a replay):

- :func:`sentrail.forensics.explain.explain` — one :class:`Explanation` per blocked, held,
  modified or flagged step, built from facts only (docs/forensics.md);
- :func:`sentrail.forensics.graph.run_graph` — the execution graph of one run, and
  :func:`sentrail.forensics.graph.value_graph` — runs, agents and apps linked by a value;
- :func:`sentrail.forensics.values.run_values` — the values a run's calls carry
  (recipients, URLs, accounts, paths, commands, credentials), what the cross-run index holds;
- :func:`sentrail.forensics.summary.evidence_summary` — the responder's summary document
  that an evidence bundle carries.

The package is pure (no store, no I/O); :mod:`sentrail.runtime.logged_runs` reads runs
back from the evidence store for it and keeps the value index.
"""
