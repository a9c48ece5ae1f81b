"""The HTTP service (``sentrail serve``): ingest, query and prove, per tenant and app.

- :mod:`.auth` — API keys (argon2id-hashed), scopes and the key cache.
- :mod:`.problems` — RFC 9457 problem details.
- :mod:`.app` — the FastAPI application and its endpoints.
- :mod:`.background` — the 1-second checkpoint signer.
"""
