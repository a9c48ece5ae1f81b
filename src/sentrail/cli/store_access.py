"""How the CLI opens the evidence store and the signing keys (shared by the commands).

Database: :func:`sentrail.cli.defaults.store_url` (``--database``, else
``$SENTRAIL_DATABASE``, else ``sqlite:///$SENTRAIL_HOME/sentrail.db``: one store for
every command); keys: ``$SENTRAIL_HOME/keys``.
A store opened with a signer signs a checkpoint within a second of every append (and when
it closes), so no command leaves events uncovered, and pushes every checkpoint it signs to
the witnesses named in ``$SENTRAIL_WITNESS`` (comma-separated: a file path, an http(s)
tlog-witness URL, or ``s3://BUCKET[/PREFIX]``; see :mod:`sentrail.store.witness`), so
every process that signs (``serve``, ``worker``, ``ingest``, ``redact``) keeps the
outside record current.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from sentrail.cli.common import fail
from sentrail.cli.defaults import store_url
from sentrail.errors import SentrailError
from sentrail.evidence.keys import KeyStore, default_home, default_key_dir
from sentrail.evidence.note import Signer
from sentrail.store import open_store, witness
from sentrail.store.core import LogStore
from sentrail.store.records import records

WITNESS_ENV = "SENTRAIL_WITNESS"

Database = Annotated[
    str | None,
    typer.Option(
        "--database",
        metavar="URL",
        help="sqlite:///REL/PATH, sqlite:////ABS/PATH or postgresql://HOST/DB (default: "
        "$SENTRAIL_DATABASE, else sentrail.db under $SENTRAIL_HOME)",
    ),
]


def key_store() -> KeyStore:
    return KeyStore(default_key_dir(default_home()))


def witness_specs() -> list[str]:
    return [s.strip() for s in os.environ.get(WITNESS_ENV, "").split(",") if s.strip()]


def open_migrated(database: str | None, signer: Signer | None = None) -> LogStore:
    """The migrated store; with a signer, its checkpoints go to ``$SENTRAIL_WITNESS``."""
    try:
        store = open_store(store_url(database), signer)
        store.migrate()
        if signer is not None:
            store.sign_automatically()
            witness.attach(store, witness_specs())
    except SentrailError as exc:
        fail(str(exc))
    return store


def keep_policy(store: LogStore, sha256: str | None, path: str | Path | None) -> None:
    """Keep the policy bundle at ``path`` in the store by its SHA-256: the runs judged
    with it cite that hash, and replay and ``log verify --deep`` find the bundle by it."""
    if path is None or sha256 is None:
        return
    try:
        body = Path(path).read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    with records(store, write=True) as rtx:
        rtx.put_policy(sha256, body, time.time())
