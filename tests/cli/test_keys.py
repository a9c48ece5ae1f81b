"""``sentrail evidence key`` prints what ``evidence verify --key`` takes (issue 10, item 14)."""

from __future__ import annotations

from pathlib import Path

from sentrail.evidence.keys import KeyStore, default_key_dir
from sentrail.evidence.note import Verifier
from tests.cli.conftest import Cli


def test_the_key_printed_is_the_signers_verifier_key_and_nothing_else(cli: Cli, home: Path) -> None:
    none_yet = cli("evidence", "key")
    assert none_yet.exit_code == 2 and "no signing key" in none_yet.output
    signer = KeyStore(default_key_dir(home)).ensure()
    r = cli("evidence", "key")
    assert r.exit_code == 0
    assert r.stdout == signer.verifier_key() + "\n"
    assert Verifier.parse(r.stdout.strip()).key_id == signer.key_id


def test_all_prints_the_retired_keys_too(cli: Cli, home: Path) -> None:
    keys = KeyStore(default_key_dir(home))
    first = keys.ensure()
    second = keys.rotate()
    assert cli("evidence", "key").stdout == second.verifier_key() + "\n"
    every = cli("evidence", "key", "--all").stdout.splitlines()
    assert every == [first.verifier_key(), second.verifier_key()]
