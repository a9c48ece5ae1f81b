"""Lists have a header, and an empty list says so (issue 10, item 16)."""

from __future__ import annotations

from tests.cli.conftest import Cli

WHO = ["--tenant", "acme", "--by", "soc", "--reason", "INC-1"]


def test_an_empty_containment_log_says_so_and_a_full_one_has_a_header(cli: Cli) -> None:
    empty = cli("contain", "list")
    assert empty.exit_code == 0 and empty.output == "no containment actions\n"
    assert cli("contain", "quarantine", "bot-1", *WHO).exit_code == 0
    assert cli("contain", "freeze-run", "run-7", *WHO).exit_code == 0
    header, *rows = cli("contain", "list").output.splitlines()
    assert header.split() == ["WHEN", "TENANT", "ACTION", "TARGET", "BY", "REASON"]
    assert [r.split()[2:4] for r in rows] == [["quarantine", "bot-1"], ["freeze_run", "run-7"]]
    assert all(r.index("acme") == header.index("TENANT") for r in rows)  # aligned
    other = cli("contain", "list", "--tenant", "someone-else")
    assert other.output == "no containment actions\n"


def test_api_keys_are_listed_under_a_header(cli: Cli) -> None:
    assert cli("apikey", "list").output.startswith("no API keys")
    made = cli("apikey", "create", "--tenant", "acme", "--app", "pay")
    assert made.exit_code == 0, made.output
    header, row = cli("apikey", "list").output.splitlines()
    assert header.split() == ["KEY", "ID", "TENANT", "APP", "SCOPES", "CREATED", "STATE"]
    assert row.split()[1:4] == ["acme", "pay", "ingest,read"] and row.endswith("active")


def test_pending_approvals_are_listed_under_a_header(cli: Cli) -> None:
    assert cli("approvals", "list").output == "no pending approvals\n"


def test_an_empty_run_list_names_where_it_looked(cli: Cli) -> None:
    assert cli("runs", "list", "--tenant", "other").output == "No runs stored for tenant other.\n"
    scoped = cli("runs", "list", "--tenant", "acme", "--app", "pay", "--verdict", "unauthorized")
    assert scoped.output == "No runs stored for tenant acme, app pay that match the filters.\n"


def test_an_empty_finding_list_names_where_it_looked_and_empty_filters_count(cli: Cli) -> None:
    assert cli("findings", "list", "--tenant", "x").output == ("No findings stored for tenant x.\n")
    assert cli("findings", "list", "--open").output == (
        "No findings stored for tenant default that match the filters.\n"
    )
    assert cli("runs", "list", "--agent", "").output == (
        "No runs stored for tenant default that match the filters.\n"
    )
