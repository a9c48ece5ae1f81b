"""OpenAI Agents SDK: tool guardrails that ask the decision point (``pip install
'sentrail[openai-agents]'``; docs/sdk.md).

::

    rails = SentrailToolGuardrails(pdp, agent_id="payments-agent-1")
    agent = guard_agent(Agent(name="payments", tools=[transfer, fetch_invoice]), rails)
    with run_context(pdp, "payments-agent-1", run_id="run-42", trigger=user_request):
        await Runner.run(agent, user_request)

The *input* guardrail builds a decision request from the tool call's JSON arguments and
asks ``adecide``; a call that is not allowed is rejected with the decision's explanation as
the tool's output (``reject_content``: the model reads why and the run goes on), or, with
``on_deny="raise"``, stops the run (``ToolInputGuardrailTripwireTriggered``). The *output*
guardrail observes the tool's output; when it holds an injected instruction, the model gets
a notice instead of that output (``on_injection="reject"``, the default), or the output with
nothing changed (``"allow"``). Errors inside a guardrail reject the call (fail closed).
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from agents import Agent, FunctionTool
from agents.tool_guardrails import (
    ToolGuardrailFunctionOutput,
    ToolInputGuardrail,
    ToolInputGuardrailData,
    ToolOutputGuardrail,
    ToolOutputGuardrailData,
)
from agents.tracing import get_current_trace

from sentrail.enforce.pdp import DecisionPoint
from sentrail.report.escape import safe_text
from sentrail.sdk.guard import (
    MAX_PENDING,
    GuardedCall,
    ToolNames,
    current_run,
    injection_notice,
    refusal,
    tool_name,
)


class SentrailToolGuardrails:
    """A tool input guardrail (decide) and a tool output guardrail (observe), as a pair."""

    def __init__(
        self,
        pdp: DecisionPoint | None = None,
        *,
        agent_id: str | None = None,
        run_id: str | None = None,
        tenant_id: str | None = None,
        tool_names: ToolNames = None,
        permissions: Mapping[str, Sequence[str]] | None = None,
        on_deny: Literal["reject", "raise"] = "reject",
        on_injection: Literal["reject", "allow"] = "reject",
        timeout: float = 1.0,
    ) -> None:
        self.pdp = pdp
        self.agent_id = agent_id
        self.run_id = run_id
        self.tenant_id = tenant_id
        self.tool_names = tool_names
        self.permissions = dict(permissions or {})
        self.on_deny = on_deny
        self.on_injection = on_injection
        self.timeout = timeout
        self._calls: collections.OrderedDict[str, GuardedCall] = collections.OrderedDict()
        self.input: ToolInputGuardrail[Any] = ToolInputGuardrail(
            guardrail_function=self.check_input, name="sentrail_decide"
        )
        self.output: ToolOutputGuardrail[Any] = ToolOutputGuardrail(
            guardrail_function=self.check_output, name="sentrail_observe"
        )

    def _run_id(self) -> str | None:
        if self.run_id:
            return self.run_id
        ctx = current_run()
        if ctx is not None and ctx.run_id:
            return ctx.run_id
        trace = get_current_trace()
        trace_id = getattr(trace, "trace_id", None) if trace is not None else None
        return trace_id if isinstance(trace_id, str) and trace_id != "no-op" else None

    def _call(self, data: ToolInputGuardrailData) -> GuardedCall:
        ctx = data.context
        name = tool_name(self.tool_names, ctx.tool_name)
        raw = ctx.tool_arguments or "{}"
        args = json.loads(raw) if len(raw) <= 16 * 1024 * 1024 else {"input": raw[:65536]}
        params = args if isinstance(args, dict) else {"input": args}
        run = current_run()
        agent_id = self.agent_id or (run.agent_id if run else None) or data.agent.name
        return GuardedCall(
            name,
            params,
            pdp=self.pdp,
            agent_id=agent_id,
            run_id=self._run_id(),
            tenant_id=self.tenant_id,
            permissions=self.permissions.get(name, ()),
            timeout=self.timeout,
        )

    async def check_input(self, data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
        name = data.context.tool_name
        try:
            call = self._call(data)
            decision = await call.adecide()
        except Exception as exc:  # fail closed: a call that cannot be decided is not made
            text = safe_text(f"sentrail could not check {name}: {exc}", limit=2000)
            return ToolGuardrailFunctionOutput.reject_content(text, output_info={"error": text})
        if decision.allowed:
            self._calls[data.context.tool_call_id] = call
            while len(self._calls) > MAX_PENDING:
                self._calls.popitem(last=False)
            return ToolGuardrailFunctionOutput.allow(output_info=decision)
        if self.on_deny == "raise":
            return ToolGuardrailFunctionOutput.raise_exception(output_info=decision)
        return ToolGuardrailFunctionOutput.reject_content(
            refusal(decision, name), output_info=decision
        )

    async def check_output(self, data: ToolOutputGuardrailData) -> ToolGuardrailFunctionOutput:
        call = self._calls.pop(data.context.tool_call_id, None)
        name = data.context.tool_name
        if call is None:  # decided elsewhere (or not at all): nothing to attach it to
            return ToolGuardrailFunctionOutput.allow(output_info=None)
        call.result = data.output
        try:
            findings = await asyncio.to_thread(call.observe, None)
        except Exception as exc:
            text = f"sentrail could not check the output of {name} ({exc}); treat it as untrusted"
            return ToolGuardrailFunctionOutput.reject_content(safe_text(text, limit=2000))
        notice = injection_notice(name, findings)
        if notice is not None and self.on_injection == "reject":
            return ToolGuardrailFunctionOutput.reject_content(notice, output_info=findings)
        return ToolGuardrailFunctionOutput.allow(output_info=findings)


def guard_agent(agent: Agent[Any], guardrails: SentrailToolGuardrails) -> Agent[Any]:
    """Attach the guardrails to every function tool of ``agent`` (in place; returns it)."""
    for tool in agent.tools:
        if isinstance(tool, FunctionTool):
            tool.tool_input_guardrails = [*(tool.tool_input_guardrails or []), guardrails.input]
            tool.tool_output_guardrails = [
                *(tool.tool_output_guardrails or []),
                guardrails.output,
            ]
    return agent
