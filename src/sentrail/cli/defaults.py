"""Where sentrail keeps things when a command is not told: one answer for every command.

A quarantine made with ``sentrail contain`` must bind the MCP proxy and the hooks, and an
approval a proxy asks for must show in ``sentrail approvals list``; that only holds when
every command resolves the same store. So every command that opens a store gets its URL
from :func:`store_url`, in this order:

1. ``--database URL`` on the command line;
2. ``$SENTRAIL_DATABASE``;
3. ``sqlite:///<home>/sentrail.db``, where home is ``--home`` (the proxy and the hooks,
   which their clients start without the user's shell environment), else
   ``$SENTRAIL_HOME``, else ``~/.sentrail``.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sentrail.evidence.keys import default_home

DATABASE_ENV = "SENTRAIL_DATABASE"
HOME_ENV = "SENTRAIL_HOME"
STORE_FILE = "sentrail.db"


def sentrail_home(home: str | Path | None = None) -> Path:
    """``home`` (made absolute), else ``$SENTRAIL_HOME``, else ``~/.sentrail``."""
    chosen = Path(home).expanduser() if home else default_home()
    return chosen.absolute()


def store_url(database: str | None = None, home: str | Path | None = None) -> str:
    """The store every command uses unless told otherwise (see the module docstring)."""
    if database:
        return database
    from_env = os.environ.get(DATABASE_ENV, "").strip()
    if from_env:
        return from_env
    return f"sqlite:///{sentrail_home(home) / STORE_FILE}"


def pinned_store_url(database: str | None = None, home: str | Path | None = None) -> str:
    """:func:`store_url` fit to write into a client's config: a relative SQLite path made
    absolute (the client starts the command in a directory of its own)."""
    url = store_url(database, home)
    prefix = "sqlite:///"
    if url.startswith(prefix) and not Path(url.removeprefix(prefix)).is_absolute():
        return f"{prefix}{Path(url.removeprefix(prefix)).absolute()}"
    return url


def shown_url(url: str) -> str:
    """``url`` fit to print: a password in it is replaced by ``***``."""
    try:
        parts = urlsplit(url)
        if not parts.password:
            return url
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not a URL we can take apart: show none of its credentials
        return url.rsplit("@", 1)[-1]
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
