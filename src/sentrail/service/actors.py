"""Who did something, as an API response shows it (never another key's id)."""

from __future__ import annotations

import hashlib


def public_actor(actor: str | None) -> str | None:
    """An actor as an API response shows it: an API key as a pseudonym
    (``key-sha256:<12 hex of SHA-256 of its id>``), so that no response hands one app the
    key ids of another (key ids are half of a credential); anything else as recorded."""
    if actor is None or not actor.startswith("key:"):
        return actor
    return "key-sha256:" + hashlib.sha256(actor[4:].encode()).hexdigest()[:12]
