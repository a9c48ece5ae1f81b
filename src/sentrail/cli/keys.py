"""``sentrail evidence key``: the public verifier key that ``evidence verify --key`` pins.

A bundle verified without ``--key`` is checked against the keys it carries itself, which
proves it intact but not who signed it. Pinning needs the signer's verifier key, kept
apart from the bundle; this command prints it, in the C2SP signed-note verifier format
(``name+keyid+base64(0x01 || Ed25519 public key)``) that ``--key`` takes, and nothing else
on stdout, so ``sentrail evidence key > verifier.key`` gives a file ``--key`` reads.
"""

from __future__ import annotations

from typing import Annotated

import typer

from sentrail.cli.common import fail
from sentrail.cli.defaults import sentrail_home
from sentrail.errors import SentrailError
from sentrail.evidence.keys import KeyStore, default_key_dir


def evidence_key(
    all_keys: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Every key that ever signed here, oldest first, retired ones included "
            "(to verify bundles signed before a rotation)",
        ),
    ] = False,
) -> None:
    """Print the verifier key of this sentrail home's signing key (for `evidence verify --key`)."""
    directory = default_key_dir(sentrail_home())
    keys = KeyStore(directory)
    try:
        records = keys.records()
        if not records:
            fail(
                f"no signing key in {directory} yet: the first command that signs (ingest, "
                "serve, worker, mcp-proxy, a hook) makes one; is SENTRAIL_HOME the one they use?"
            )
        lines = [r.verifier_key for r in records] if all_keys else [keys.active().verifier_key()]
    except SentrailError as exc:
        fail(str(exc))
    for line in lines:
        typer.echo(line)
