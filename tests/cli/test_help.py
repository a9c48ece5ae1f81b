"""``--help`` reads naturally and states the exit codes (issue 10, items 13 and 16)."""

from __future__ import annotations

import re

import pytest

from tests.cli.conftest import Cli
from tests.cli.test_exit_codes import leaf_commands

GROUPS = sorted({c[:1] for c in leaf_commands() if len(c) > 1})


@pytest.mark.parametrize("command", [(), *GROUPS, *leaf_commands()], ids=" ".join)
def test_help_has_no_type_on_a_flag_no_braces_and_the_exit_codes(
    cli: Cli, command: tuple[str, ...]
) -> None:
    r = cli(*command, "--help")
    assert r.exit_code == 0, r.output
    text = r.output
    assert "<bool>" not in text, text
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage, usage
    assert re.search(r"\bExit codes?:", text), text
    assert "--help" in text


def test_an_argument_is_named_in_capitals_and_a_flag_takes_no_value(cli: Cli) -> None:
    text = cli("trace", "analyze", "--help").output
    assert "Usage: sentrail trace analyze [OPTIONS] PATH" in text
    batch = next(line for line in text.splitlines() if "--batch" in line)
    assert "<" not in batch and "summary" in batch
    proxy = cli("mcp-proxy", "--help").output
    assert "Usage: sentrail mcp-proxy [OPTIONS] -- COMMAND [ARGS]..." in proxy


def test_a_missing_argument_is_named_as_help_shows_it(cli: Cli) -> None:
    r = cli("trace", "analyze")
    assert r.exit_code == 2 and "Missing argument 'PATH'" in r.output


def test_apikey_create_names_every_scope_a_key_can_have(cli: Cli) -> None:
    from sentrail.service.auth import Scope

    text = " ".join(cli("apikey", "create", "--help").output.split())
    for scope in Scope:
        assert scope.value in text, (scope, text)
