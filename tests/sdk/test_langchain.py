"""LangChain: guarded tools and the callback handler, driven by langchain_core's own
GenericFakeChatModel (scripted AI messages with tool calls; no network)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool, tool

from sentrail.enforce.model import Outcome
from sentrail.enforce.pdp import DecisionPoint
from sentrail.sdk import ToolDenied, run_context
from sentrail.sdk.langchain import GuardedTool, SentrailCallbackHandler, guard_tools
from tests.sdk.conftest import AGENT, INJECTED, TRIGGER

NAMES = {"fetch_invoice": "http.get", "transfer": "payments.transfer"}


def make_tools(ran: list[Any]) -> list[BaseTool]:
    @tool
    def fetch_invoice(url: str) -> str:
        """Fetch an invoice by URL."""
        ran.append(("fetch", url))
        return INJECTED

    @tool
    def transfer(account: str, amount: float) -> str:
        """Transfer money to an account."""
        ran.append(("transfer", account, amount))
        return "transferred"

    return [fetch_invoice, transfer]


def calls(*steps: tuple[str, dict[str, Any]]) -> Iterator[AIMessage]:
    for n, (name, args) in enumerate(steps):
        yield AIMessage(
            content="",
            tool_calls=[{"name": name, "args": args, "id": f"c{n}", "type": "tool_call"}],
        )


def agent_loop(
    model: GenericFakeChatModel, tools: dict[str, BaseTool], turns: int
) -> list[ToolMessage]:
    """The minimal tool-calling loop: ask the model, run the tool calls it makes."""
    out: list[ToolMessage] = []
    for _ in range(turns):
        message = model.invoke("next")
        assert isinstance(message, AIMessage)
        for call in message.tool_calls:
            result = tools[call["name"]].invoke(call)
            assert isinstance(result, ToolMessage)
            out.append(result)
    return out


def test_guarded_tools_in_a_tool_calling_loop(pdp: DecisionPoint) -> None:
    ran: list[Any] = []
    tools = {t.name: t for t in guard_tools(make_tools(ran), tool_names=NAMES)}
    assert all(isinstance(t, GuardedTool) for t in tools.values())
    assert tools["transfer"].args == {
        "account": {"title": "Account", "type": "string"},
        "amount": {"title": "Amount", "type": "number"},
    }
    model = GenericFakeChatModel(
        messages=calls(
            ("fetch_invoice", {"url": "https://corp.example.com/inv/7"}),
            ("transfer", {"account": "99887766", "amount": 5000}),
            ("transfer", {"account": "12345678", "amount": 500}),
        )
    )
    with run_context(pdp, AGENT, "run-lc", trigger=TRIGGER):
        fetched, hijack, twin = agent_loop(model, tools, 3)
    assert fetched.status == "success"
    assert str(fetched.content).startswith("sentrail withheld the output of fetch_invoice")
    assert hijack.status == "error" and hijack.tool_call_id == "c1"
    assert str(hijack.content).startswith("sentrail: transfer denied: ")
    assert twin.status == "success" and twin.content == "transferred"
    assert ran == [("fetch", "https://corp.example.com/inv/7"), ("transfer", "12345678", 500.0)]


def test_guarded_tools_can_raise_and_run_async(pdp: DecisionPoint) -> None:
    ran: list[Any] = []
    strict = {
        t.name: t
        for t in guard_tools(
            make_tools(ran),
            pdp,
            agent_id=AGENT,
            run_id="run-lc-async",
            tool_names=NAMES,
            on_deny="raise",
            on_injection="allow",
        )
    }

    async def main() -> Any:
        fetched = await strict["fetch_invoice"].ainvoke({"url": "https://corp.example.com/inv/7"})
        assert fetched == INJECTED  # let through: on_injection="allow"
        return await strict["transfer"].ainvoke({"account": "99887766", "amount": 5000})

    with pytest.raises(ToolDenied) as info:
        asyncio.run(main())
    assert info.value.decision.outcome is Outcome.DENY
    assert ran == [("fetch", "https://corp.example.com/inv/7")]


def test_the_callback_handler_stops_a_denied_tool_before_it_runs(pdp: DecisionPoint) -> None:
    ran: list[Any] = []
    fetch_invoice, transfer = make_tools(ran)
    handler = SentrailCallbackHandler(pdp, agent_id=AGENT, run_id="run-cb", tool_names=NAMES)
    config: Any = {"callbacks": [handler]}
    with run_context(pdp, AGENT, "ignored", trigger=TRIGGER):
        assert fetch_invoice.invoke({"url": "https://corp.example.com/inv/7"}, config) == INJECTED
        with pytest.raises(ToolDenied) as info:
            transfer.invoke({"account": "99887766", "amount": 5000}, config)
        assert transfer.invoke({"account": "12345678", "amount": 500}, config) == "transferred"
    assert info.value.decision.run_id == "run-cb"
    assert ran == [("fetch", "https://corp.example.com/inv/7"), ("transfer", "12345678", 500.0)]
    rules = [f.rule for f in pdp.run_findings("default", "run-cb")]
    assert "untrusted_instruction.tool_result" in rules  # the output was observed


def test_the_callback_handler_observes_tool_errors(pdp: DecisionPoint) -> None:
    @tool
    def login(user: str, password: str) -> str:
        """Log in."""
        raise ValueError("invalid credentials")

    handler = SentrailCallbackHandler(
        pdp,
        agent_id=AGENT,
        run_id="run-cb-err",
        tool_names={"login": "auth.login"},
        permissions={"auth.login": ["auth:login"]},
    )
    outcomes: list[str] = []
    for i in range(5):
        try:
            login.invoke({"user": "admin", "password": f"guess{i}"}, {"callbacks": [handler]})
        except ValueError:
            outcomes.append("ran")
        except ToolDenied as exc:
            outcomes.append(exc.decision.outcome.value)
    assert outcomes[0] == "ran" and outcomes[-1] == "deny"
