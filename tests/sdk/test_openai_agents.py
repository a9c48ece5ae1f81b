"""OpenAI Agents SDK tool guardrails, run by the SDK's own Runner with its ScriptedModel
(agents.testing): no API key, no network, tracing off."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from agents import Agent, RunConfig, Runner, function_tool
from agents.exceptions import ToolInputGuardrailTripwireTriggered
from agents.testing import ScriptedModel, assistant_message, function_call

from sentrail.enforce.model import Decision
from sentrail.enforce.pdp import DecisionPoint
from sentrail.sdk import run_context
from sentrail.sdk.openai_agents import SentrailToolGuardrails, guard_agent
from tests.sdk.conftest import AGENT, INJECTED, TRIGGER, make_pdp

NAMES = {"fetch_invoice": "http.get", "transfer": "payments.transfer"}
NO_TRACING = RunConfig(tracing_disabled=True)


def build(
    rails: SentrailToolGuardrails, steps: list[Any], ran: list[Any]
) -> tuple[Agent[Any], ScriptedModel]:
    @function_tool
    def fetch_invoice(url: str) -> str:
        """Fetch an invoice by URL."""
        ran.append(("fetch", url))
        return INJECTED

    @function_tool
    def transfer(account: str, amount: float) -> str:
        """Transfer money to an account."""
        ran.append(("transfer", account, amount))
        return "transferred"

    model = ScriptedModel(steps)
    agent = Agent(name="payments", tools=[fetch_invoice, transfer], model=model)
    return guard_agent(agent, rails), model


def outputs(model: ScriptedModel) -> dict[str, str]:
    """call id -> what the model was shown as that call's output, from its last input."""
    last = model.calls[-1].input
    return {i["call_id"]: i["output"] for i in last if i.get("type") == "function_call_output"}


def test_injection_withheld_hijack_rejected_and_requested_transfer_made() -> None:
    ran: list[Any] = []
    rails = SentrailToolGuardrails(
        tool_names=NAMES, permissions={"payments.transfer": ["payments:write"]}
    )
    agent, model = build(
        rails,
        [
            [
                function_call(
                    "fetch_invoice", {"url": "https://corp.example.com/inv/7"}, call_id="c1"
                )
            ],
            [function_call("transfer", {"account": "99887766", "amount": 5000}, call_id="c2")],
            [function_call("transfer", {"account": "12345678", "amount": 500}, call_id="c3")],
            [assistant_message("Paid INV-7.")],
        ],
        ran,
    )
    pdp = make_pdp()

    async def main() -> Any:
        with run_context(pdp, AGENT, "run-agents", trigger=TRIGGER):
            return await Runner.run(agent, TRIGGER, run_config=NO_TRACING)

    result = asyncio.run(main())
    assert result.final_output == "Paid INV-7."
    assert ran == [("fetch", "https://corp.example.com/inv/7"), ("transfer", "12345678", 500.0)]
    shown = outputs(model)
    assert shown["c1"].startswith("sentrail withheld the output of fetch_invoice")
    assert "99887766" not in shown["c1"]  # the notice does not repeat the injection
    assert shown["c2"].startswith("sentrail: transfer denied: ")
    assert "comes from the injected result" in shown["c2"]
    assert shown["c3"] == "transferred"
    behaviours = [r.output.behavior["type"] for r in result.tool_input_guardrail_results]
    assert behaviours == ["allow", "reject_content", "allow"]
    denied = result.tool_input_guardrail_results[1].output.output_info
    assert isinstance(denied, Decision) and denied.run_id == "run-agents"
    model.assert_complete()


def test_a_denial_can_stop_the_run(pdp: DecisionPoint) -> None:
    ran: list[Any] = []
    rails = SentrailToolGuardrails(pdp, agent_id="nobody-7", run_id="run-raise", on_deny="raise")
    agent, _ = build(
        rails, [[function_call("transfer", {"account": "1", "amount": 1}, call_id="c1")]], ran
    )
    with pytest.raises(ToolInputGuardrailTripwireTriggered) as info:
        asyncio.run(Runner.run(agent, "pay", run_config=NO_TRACING))
    decision = info.value.output.output_info
    assert isinstance(decision, Decision) and "capability.unknown_tool" in decision.rule_ids
    assert ran == []


def test_injected_output_can_be_let_through_and_without_a_decision_point_nothing_runs() -> None:
    ran: list[Any] = []
    pdp = make_pdp()
    rails = SentrailToolGuardrails(
        pdp, agent_id=AGENT, run_id="r", tool_names=NAMES, on_injection="allow"
    )
    agent, model = build(
        rails,
        [
            [function_call("fetch_invoice", {"url": "https://corp.example.com/x"}, call_id="c1")],
            [assistant_message("ok")],
        ],
        ran,
    )
    asyncio.run(Runner.run(agent, "fetch", run_config=NO_TRACING))
    assert outputs(model)["c1"] == INJECTED

    ran.clear()
    orphan = SentrailToolGuardrails(tool_names=NAMES)  # no pdp and no run_context
    agent, model = build(
        orphan,
        [
            [function_call("transfer", {"account": "1", "amount": 1}, call_id="c1")],
            [assistant_message("stopped")],
        ],
        ran,
    )
    asyncio.run(Runner.run(agent, "pay", run_config=NO_TRACING))
    assert ran == []
    assert "sentrail could not check transfer: no decision point" in outputs(model)["c1"]
