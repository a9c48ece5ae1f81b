"""The proxy end to end: the official MCP client -> sentrail mcp-proxy -> a real MCP server."""

from __future__ import annotations

import sys
from typing import Any

import msgspec
from mcp import Client, StdioServerParameters
from mcp.types import TextContent

from sentrail.enforce.model import Decision
from sentrail.enforce.pdp import verify_decision
from sentrail.evidence.keys import KeyStore, default_key_dir
from tests.gateway.conftest import FAULTY, SERVER, Box, run
from tests.gateway.mcp_server import ATTACKER_ACCOUNT


def text_of(result: Any) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def test_tools_are_listed_exactly_as_the_server_lists_them(box: Box) -> None:
    direct = StdioServerParameters(command=sys.executable, args=[str(SERVER)], env=box.env)
    listed: dict[str, Any] = {}

    async def go() -> None:
        for name, params in (("direct", direct), ("proxied", box.params())):
            async with Client(params, mode="legacy") as client:
                tools = await client.list_tools()
                listed[name] = [t.model_dump() for t in tools.tools]

    run(go)
    assert listed["proxied"] == listed["direct"]
    assert {t["name"] for t in listed["direct"]} >= {"read_file", "send_money", "fetch_url"}
    assert box.decision_lines() == []  # listing is not a tool call


def test_an_allowed_call_returns_the_servers_result_and_is_logged_signed(box: Box) -> None:
    async def go() -> None:
        async with Client(box.params(), mode="legacy") as client:
            result = await client.call_tool("read_file", {"path": "/etc/motd"})
            assert not result.is_error
            assert text_of(result) == "contents of /etc/motd: hello"

    run(go)
    assert box.server_calls() == [{"tool": "read_file", "arguments": {"path": "/etc/motd"}}]
    [line] = box.decision_lines()
    assert line["outcome"] == "allow" and line["tool"] == "read_file"
    assert line["agent_id"] == "payments-agent" and line["run_id"].startswith("mcp-")
    assert box.decisions.stat().st_mode & 0o777 == 0o600
    decision = msgspec.convert(line, Decision)
    verifiers = KeyStore(default_key_dir(box.home)).verifiers()
    assert any(verify_decision(decision, v) for v in verifiers)


def test_a_denied_call_gets_the_explanation_and_never_reaches_the_server(box: Box) -> None:
    async def go() -> None:
        async with Client(box.params(), mode="legacy") as client:
            denied = await client.call_tool("send_money", {"account": "12345678", "amount": 50000})
            assert denied.is_error
            text = text_of(denied)
            assert "denied" in text and "no-large-transfers" in text
            small = await client.call_tool("send_money", {"account": "12345678", "amount": 20})
            assert not small.is_error and text_of(small) == "sent 20 to 12345678"

    run(go)
    assert box.server_calls() == [
        {"tool": "send_money", "arguments": {"account": "12345678", "amount": 20.0}}
    ]
    outcomes = [(d["tool"], d["outcome"]) for d in box.decision_lines()]
    assert outcomes == [("send_money", "deny"), ("send_money", "allow")]
    assert "policy.rule.no-large-transfers" in box.decision_lines()[0]["rule_ids"]


def test_approval_required_names_the_approval_and_blocks_the_call(box: Box) -> None:
    async def go() -> None:
        async with Client(box.params(), mode="legacy") as client:
            result = await client.call_tool("delete_file", {"path": "/srv/data"})
            assert result.is_error
            assert "needs an approval" in text_of(result)
            [line] = box.decision_lines()
            assert line["outcome"] == "approval_required"
            assert line["approval_id"].startswith("apr_")
            assert line["approval_id"] in text_of(result)

    run(go)
    assert box.server_calls() == []


def test_an_injected_instruction_blocks_the_transfer_it_asks_for(box: Box) -> None:
    async def go() -> None:
        async with Client(box.params(), mode="legacy") as client:
            page = await client.call_tool("fetch_url", {"url": "https://news.example.net/q3"})
            assert not page.is_error and "ignore previous instructions" in text_of(page)
            attack = await client.call_tool(
                "send_money", {"account": ATTACKER_ACCOUNT, "amount": 5000}
            )
            assert attack.is_error
            assert ATTACKER_ACCOUNT in text_of(attack) and "result of step" in text_of(attack)
            twin = await client.call_tool("send_money", {"account": "12345678", "amount": 50})
            assert not twin.is_error, text_of(twin)

    run(go)
    assert [c["tool"] for c in box.server_calls()] == ["fetch_url", "send_money"]
    assert all(c["arguments"].get("account") != ATTACKER_ACCOUNT for c in box.server_calls())
    attack = box.decision_lines()[1]
    assert attack["outcome"] != "allow"
    assert "tainted_action.untrusted_value" in attack["rule_ids"]


def test_the_stateless_revision_without_initialize(box: Box) -> None:
    async def go() -> None:
        async with Client(box.params(), mode="2026-07-28") as client:
            tools = await client.list_tools()
            assert "send_money" in {t.name for t in tools.tools}
            ok = await client.call_tool("read_file", {"path": "/a"})
            assert not ok.is_error and text_of(ok) == "contents of /a: hello"
            denied = await client.call_tool("send_money", {"account": "1", "amount": 99999})
            assert denied.is_error and "no-large-transfers" in text_of(denied)
            assert denied.result_type == "complete"

    run(go)
    assert [c["tool"] for c in box.server_calls()] == ["read_file"]


def test_monitor_mode_records_what_it_would_have_done_and_lets_the_call_run(box: Box) -> None:
    async def go() -> None:
        async with Client(box.params("--monitor"), mode="legacy") as client:
            result = await client.call_tool("send_money", {"account": "1", "amount": 50000})
            assert not result.is_error

    run(go)
    assert [c["tool"] for c in box.server_calls()] == ["send_money"]
    [line] = box.decision_lines()
    assert line["outcome"] == "allow" and line["enforced"] is False
    assert line["would_have"] == "deny"


def test_a_crashing_or_hanging_decision_point_denies(box: Box) -> None:
    async def go(mode: str) -> None:
        params = StdioServerParameters(
            command=sys.executable,
            args=[str(FAULTY), mode, str(box.decisions), "--", sys.executable, str(SERVER)],
            env=box.env,
        )
        async with Client(params, mode="legacy") as client:
            tools = await client.list_tools()  # everything else is relayed as usual
            assert "read_file" in {t.name for t in tools.tools}
            result = await client.call_tool("read_file", {"path": "/a"})
            assert result.is_error and "fail closed" in text_of(result)

    run(lambda: go("crash"))
    run(lambda: go("hang"))
    assert box.server_calls() == []
    crash, hang = box.decision_lines()
    assert crash["outcome"] == "deny" and crash["control"] == "error"
    assert "RuntimeError" in crash["explanation"]
    assert hang["outcome"] == "deny" and "timeout" in hang["explanation"]
    assert crash["signature"] and hang["signature"]


def test_an_approval_given_in_the_store_lets_the_same_call_through(box: Box) -> None:
    """With --database, a held call approved by a person (the CLI, the API) goes through
    when the agent repeats it with the same arguments; other arguments stay held."""
    from sentrail.enforce.persist import StoreApprovals
    from sentrail.store import open_store

    db = f"sqlite:///{box.root / 'evidence.db'}"
    params = box.params("--database", db, "--run-id", "run-approve")

    async def go() -> None:
        async with Client(params, mode="legacy") as client:
            first = await client.call_tool("delete_file", {"path": "/srv/old"})
            assert first.is_error and "needs an approval" in text_of(first)
            store = open_store(db)
            store.migrate()
            approvals = StoreApprovals(store)
            (held,) = approvals.pending("default")
            approvals.decide(held.approval_id, "default", True, by="alice", reason="cleanup")
            other = await client.call_tool("delete_file", {"path": "/srv/live"})
            assert other.is_error
            again = await client.call_tool("delete_file", {"path": "/srv/old"})
            assert not again.is_error, text_of(again)
            kinds = [e.kind for e in store.run_events("default", "default", "run-approve")]
            assert kinds.count("decision") == 3  # in the tamper-evident log too
            store.close()

    run(go)
    assert [c["arguments"] for c in box.server_calls()] == [{"path": "/srv/old"}]
