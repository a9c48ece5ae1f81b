"""The HTTP service (``sentrail serve``): ingest, query and prove, per tenant and app.

- :mod:`.app` — ``create_app``: the shared services, errors, metrics, ingest routes.
- :mod:`.queries` — runs, a run's detail with proofs, findings and triage, log proofs.
- :mod:`.enforcement` — decide, observe, approvals, containment.
- :mod:`.deps`, :mod:`.auth` — API keys (argon2id-hashed), scopes, the key cache.
- :mod:`.http`, :mod:`.problems` — bounded bodies, JSON, RFC 9457 problem details.
- :mod:`.background` — the 1-second checkpoint signer; :mod:`.alerting` — alert metrics.
"""
