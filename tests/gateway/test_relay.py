"""The relay in process: a real decision point, the messages as bytes, no processes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sentrail.enforce.model import Decision, DecisionRequest, Outcome
from sentrail.enforce.pdp import DecisionPoint, verify_decision
from sentrail.engine.engine import Engine
from sentrail.evidence.note import Signer
from sentrail.gateway.gate import DecisionLog, Gate, sign
from sentrail.gateway.lines import Oversized
from sentrail.gateway.relay import Relay
from sentrail.model.finding import Finding
from sentrail.model.trace import ToolResult
from sentrail.policy.compiled import Policy
from sentrail.policy.load import load_policy
from tests.gateway.conftest import POLICY
from tests.gateway.mcp_server import ATTACKER_ACCOUNT, INJECTED

SIGNER = Signer("test.sentrail.local/log", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


class Wire:
    """A relay with its two outputs captured."""

    def __init__(self, tmp: Path, point: Any = None, *, monitor: bool = False, log: Any = None):
        self.log_path = tmp / "decisions.ndjson"
        self.log = log or DecisionLog(self.log_path)
        self.point = point or DecisionPoint(Engine(Policy(load_policy(POLICY))), SIGNER)
        self.gate = Gate(
            self.point,
            self.log,
            SIGNER,
            tenant="default",
            agent_id="payments-agent",
            run_id="run-1",
            timeout=30,
        )
        self.client: list[bytes] = []
        self.server: list[bytes] = []
        self.notices: list[str] = []
        self.relay = Relay(
            self.gate,
            self._to_client,
            self._to_server,
            monitor=monitor,
            limit=4096,
            notice=self.notices.append,
        )
        self.logged_when_forwarded: list[int] = []

    async def _to_client(self, data: bytes) -> None:
        self.client.append(data)

    async def _to_server(self, data: bytes) -> None:
        lines = self.log_path.read_text().splitlines() if self.log_path.exists() else []
        self.logged_when_forwarded.append(len(lines))
        self.server.append(data)

    def up(self, *lines: bytes | Oversized) -> None:
        for line in lines:
            asyncio.run(self.relay.from_client(line))

    def down(self, *lines: bytes | Oversized) -> None:
        for line in lines:
            asyncio.run(self.relay.from_server(line))

    def replies(self) -> list[Any]:
        return [json.loads(b) for b in self.client]


def msg(**fields: Any) -> bytes:
    return msgspec.json.encode({"jsonrpc": "2.0", **fields})


def call(rid: Any, tool: str, **arguments: Any) -> bytes:
    return msg(id=rid, method="tools/call", params={"name": tool, "arguments": arguments})


def text_result(rid: Any, text: str, **extra: Any) -> bytes:
    return msg(id=rid, result={"content": [{"type": "text", "text": text}], **extra})


def test_a_decision_is_logged_before_the_call_is_forwarded(tmp_path: Path) -> None:
    w = Wire(tmp_path)
    w.up(call(1, "read_file", path="/a"), call(2, "read_file", path="/b"))
    assert w.server == [
        call(1, "read_file", path="/a") + b"\n",
        call(2, "read_file", path="/b") + b"\n",
    ]
    assert w.logged_when_forwarded == [1, 2]
    decisions = [
        msgspec.json.decode(x, type=Decision) for x in w.log_path.read_bytes().splitlines()
    ]
    assert all(verify_decision(d, SIGNER.verifier) for d in decisions)


def test_a_decision_that_cannot_be_recorded_is_a_deny(tmp_path: Path) -> None:
    class Broken(DecisionLog):
        def record(self, decision: Decision) -> None:
            raise OSError(28, "No space left on device")

    w = Wire(tmp_path, log=Broken(tmp_path / "unused.ndjson"))
    w.up(call(1, "read_file", path="/a"))
    assert w.server == []
    [reply] = w.replies()
    assert reply["result"]["isError"] is True
    assert "could not be recorded" in reply["result"]["content"][0]["text"]


def test_batches_are_governed_element_by_element_in_2025_03_26(tmp_path: Path) -> None:
    w = Wire(tmp_path)
    w.up(msg(id=0, method="initialize", params={"protocolVersion": "2025-03-26"}))
    w.down(msg(id=0, result={"protocolVersion": "2025-03-26", "capabilities": {}}))
    assert w.relay.protocol_version == "2025-03-26"
    allowed = (
        b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "read_file"}}'
    )
    note = (
        b'{"jsonrpc":"2.0","method":"notifications/progress",'
        b'"params":{"progressToken":1,"progress":1}}'
    )
    denied = call(2, "send_money", account="1", amount=50000)
    w.up(b"[" + allowed + b" , " + denied + b"," + note + b"]")
    assert w.server[-1] == b"[" + allowed + b"," + note + b"]\n"  # the elements' own bytes
    [replies] = [json.loads(c) for c in w.client[1:]]
    assert [r["id"] for r in replies] == [2] and replies[0]["result"]["isError"] is True
    all_allowed = b"[" + call(3, "read_file") + b"," + note + b"]"
    w.up(all_allowed)
    assert w.server[-1] == all_allowed + b"\n"  # unchanged


def test_batches_are_refused_where_the_revision_has_none(tmp_path: Path) -> None:
    w = Wire(tmp_path)
    w.up(msg(id=0, method="initialize", params={"protocolVersion": "2025-06-18"}))
    w.down(msg(id=0, result={"protocolVersion": "2025-06-18", "capabilities": {}}))
    w.up(b"[" + call(1, "read_file") + b"," + msg(id="x", method="ping") + b"]")
    assert w.server == [
        msg(id=0, method="initialize", params={"protocolVersion": "2025-06-18"}) + b"\n"
    ]
    [replies] = [json.loads(c) for c in w.client[1:]]
    assert [(r["id"], r["error"]["code"]) for r in replies] == [(1, -32600), ("x", -32600)]
    assert "2025-06-18" in replies[0]["error"]["message"]


def test_tool_results_are_observed_before_the_client_sees_them(tmp_path: Path) -> None:
    w = Wire(tmp_path)
    w.up(call(1, "fetch_url", url="https://news.example.net/"))
    result = text_result(1, INJECTED, isError=False)
    w.down(result)
    assert w.client == [result + b"\n"]  # unchanged
    assert any("untrusted_instruction" in n for n in w.notices)
    w.up(call(2, "send_money", account=ATTACKER_ACCOUNT, amount=5000))
    [_, reply] = w.replies()
    assert reply["id"] == 2 and reply["result"]["isError"] is True
    assert len(w.server) == 1


def test_a_value_from_an_injected_result_is_denied_outright(tmp_path: Path) -> None:
    w = Wire(tmp_path)
    w.up(call(1, "fetch_url", url="https://news.example.net/"))
    w.down(text_result(1, INJECTED))
    w.up(call(2, "send_money", account=ATTACKER_ACCOUNT, amount=5000))
    last = json.loads(w.log_path.read_text().splitlines()[-1])
    assert last["outcome"] == "deny"


class Blind:
    """A decision point that allows everything and cannot inspect results."""

    def decide(self, req: DecisionRequest) -> Decision:
        from sentrail.enforce.model import Control

        return sign(
            Decision(
                "dec_1",
                Outcome.ALLOW,
                Control.POLICY,
                "ok",
                req.tool,
                "default",
                "run-1",
                "payments-agent",
                "",
                0,
                0.0,
            ),
            SIGNER,
        )

    def observe(
        self,
        tenant: str,
        run_id: str,
        result: ToolResult,
        agent_id: str | None = None,
        step_index: int | None = None,
    ) -> list[Finding]:
        raise MemoryError("no room to look")


def test_a_result_that_cannot_be_inspected_is_withheld(tmp_path: Path) -> None:
    w = Wire(tmp_path, Blind())
    w.up(call("a", "read_file"))
    w.down(text_result("a", "anything"))
    [reply] = w.replies()
    assert reply["id"] == "a" and reply["result"]["isError"] is True
    assert "could not be inspected" in reply["result"]["content"][0]["text"]
    (tmp_path / "m").mkdir()
    monitored = Wire(tmp_path / "m", Blind(), monitor=True)
    monitored.up(call("a", "read_file"))
    monitored.down(text_result("a", "anything"))
    assert monitored.client == [text_result("a", "anything") + b"\n"]


def test_an_ambiguous_tool_result_is_withheld(tmp_path: Path) -> None:
    w = Wire(tmp_path)
    w.up(call(1, "read_file"))
    w.down(
        b'{"jsonrpc":"2.0","id":1,"result":{"content":[]},"result":{"content":[{"type":"text","text":"x"}]}}'
    )
    [reply] = w.replies()
    assert (
        reply["result"]["isError"] is True and "ambiguous" in reply["result"]["content"][0]["text"]
    )


def test_oversized_responses_are_answered_not_relayed(tmp_path: Path) -> None:
    w = Wire(tmp_path)
    w.up(call(7, "read_file"), msg(id=8, method="resources/read", params={"uri": "x"}))
    w.down(Oversized(b'{"jsonrpc":"2.0","id":7,"result":{"content":[{"text":"' + b"a" * 100, 10**8))
    w.down(Oversized(b'{"id": 8, "jsonrpc": "2.0", "result": {', 10**8))
    w.down(Oversized(b"garbage", 10**8))
    first, second = w.replies()
    assert first["id"] == 7 and first["result"]["isError"] is True
    assert second["id"] == 8 and second["error"]["code"] == -32603
    assert any("exceeds the limit" in n for n in w.notices)


def test_the_server_cannot_answer_a_call_twice(tmp_path: Path) -> None:
    w = Wire(tmp_path)
    w.up(call(1, "fetch_url", url="https://x.example.net"))
    w.down(text_result(1, "fine"), text_result(1, INJECTED))  # the second is not a tool result
    assert len(w.client) == 2
    assert not any("untrusted_instruction" in n for n in w.notices)


def test_a_reused_request_id_is_refused(tmp_path: Path) -> None:
    w = Wire(tmp_path)
    w.up(call(1, "read_file", path="/a"), call(1, "read_file", path="/b"))
    assert len(w.server) == 1
    [reply] = w.replies()
    assert reply["error"]["code"] == -32600 and "already in use" in reply["error"]["message"]


def test_task_results_are_observed_when_they_arrive(tmp_path: Path) -> None:
    w = Wire(tmp_path)
    w.up(
        msg(
            id=1,
            method="tools/call",
            params={"name": "fetch_url", "arguments": {"url": "u"}, "task": {}},
        )
    )
    w.down(msg(id=1, result={"task": {"taskId": "t-1", "status": "working"}}))
    assert not any("untrusted_instruction" in n for n in w.notices)
    w.up(msg(id=2, method="tasks/result", params={"taskId": "t-1"}))
    w.down(text_result(2, INJECTED))
    assert any("untrusted_instruction in the result of fetch_url" in n for n in w.notices)


def test_stateless_requests_get_a_stateless_result(tmp_path: Path) -> None:
    w = Wire(tmp_path)
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}
    params = {"name": "send_money", "arguments": {"account": "1", "amount": 50000}, "_meta": meta}
    w.up(msg(id=1, method="tools/call", params=params))
    w.up(call(2, "send_money", account="1", amount=50000))
    modern, legacy = w.replies()
    assert modern["result"]["resultType"] == "complete"
    assert "resultType" not in legacy["result"]
