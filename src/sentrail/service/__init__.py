"""The HTTP service (``sentrail serve``): ingest, query and prove, per tenant and app.

- :mod:`.app` — ``create_app``: the shared services, errors, metrics, operations routes.
- :mod:`.ingestion` — traces and events, run off the event loop under :mod:`.admission`.
- :mod:`.queries` — runs (:mod:`.run_pages` for agent globs), a run's detail with proofs,
  findings and triage, log proofs.
- :mod:`.enforcement` — decide, observe, approvals, containment.
- :mod:`.deps`, :mod:`.auth`, :mod:`.ratelimit` — API keys (argon2id-hashed, bounded and
  rate-limited checks, a short keyed cache), scopes.
- :mod:`.http`, :mod:`.problems`, :mod:`.openapi` — bounded bodies, JSON, RFC 9457 problem
  details, the OpenAPI document.
- :mod:`.alerting` — the alert router's metrics (the 1-second checkpoint signer is the
  store's own timer, :mod:`sentrail.store.checkpoint_timer`, shared with every writer).
"""
