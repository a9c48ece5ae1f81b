"""LangChain: guarded tools and a callback handler that decide before a tool runs and
observe its output (``pip install 'sentrail[langchain]'``; docs/sdk.md).

Two ways in, for two needs:

- :func:`guard_tools` wraps each ``BaseTool`` in a :class:`GuardedTool` with the same name,
  description and argument schema. A refused call does not run; its tool message carries
  the decision's explanation (``status="error"``, through LangChain's ``ToolException``
  handling) so the model can change course, or, with ``on_deny="raise"``, the call raises
  :class:`~sentrail.sdk.guard.ToolDenied`. An output that holds an injected instruction
  reaches the model as a notice instead (``on_injection="withhold"``, the default).
- :class:`SentrailCallbackHandler` guards every tool of a run without wrapping them: pass it
  in ``callbacks``. It raises ``ToolDenied`` from ``on_tool_start`` (``raise_error`` is set,
  so LangChain lets it through and the tool body never runs): a hard stop.

Both observe the tool's output, so an injected instruction in it taints later calls.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn
from uuid import UUID

from langchain_core.callbacks import (
    AsyncCallbackManagerForToolRun,
    BaseCallbackHandler,
    CallbackManagerForToolRun,
)
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, ToolException
from pydantic import ConfigDict, Field

from sentrail.enforce.model import Decision
from sentrail.enforce.pdp import DecisionPoint
from sentrail.model.finding import Finding
from sentrail.sdk.guard import (
    MAX_PENDING,
    GuardedCall,
    ToolDenied,
    ToolNames,
    injection_notice,
    refusal,
    tool_name,
)
from sentrail.sdk.values import jsonable


def _tool_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | dict[str, Any]:
    if kwargs:
        return kwargs
    if len(args) == 1 and isinstance(args[0], str | dict):
        return args[0]
    return {"input": list(args)}


def _params(tool_input: str | dict[str, Any]) -> dict[str, Any]:
    return tool_input if isinstance(tool_input, dict) else {"input": tool_input}


def _output(value: Any) -> Any:
    return value.content if isinstance(value, ToolMessage) else value


class GuardedTool(BaseTool):
    """A tool that asks the decision point before running ``inner``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    inner: BaseTool
    sentrail_tool: str
    pdp: DecisionPoint | None = None
    agent_id: str | None = None
    sentrail_run_id: str | None = None
    tenant_id: str | None = None
    permissions: list[str] = Field(default_factory=list)
    on_deny: str = "message"  # message: the refusal is the tool's output; raise: ToolDenied
    on_injection: str = "withhold"  # withhold: a notice replaces an injected output; allow
    timeout: float = 1.0

    def _call(self, tool_input: str | dict[str, Any]) -> GuardedCall:
        return GuardedCall(
            self.sentrail_tool,
            _params(tool_input),
            pdp=self.pdp,
            agent_id=self.agent_id,
            run_id=self.sentrail_run_id,
            tenant_id=self.tenant_id,
            permissions=self.permissions,
            timeout=self.timeout,
        )

    def _refuse(self, d: Decision) -> NoReturn:
        if self.on_deny == "raise":
            raise ToolDenied(d)
        raise ToolException(refusal(d, self.name))

    def _run(
        self, *args: Any, run_manager: CallbackManagerForToolRun | None = None, **kwargs: Any
    ) -> Any:
        tool_input = _tool_input(args, kwargs)
        call = self._call(tool_input)
        decision = call.decide()
        if not decision.allowed:
            self._refuse(decision)
        callbacks = run_manager.get_child() if run_manager is not None else None
        try:
            call.result = _output(self.inner.run(tool_input, callbacks=callbacks))
        except BaseException as exc:
            call.observe(exc)
            raise
        return self._checked(call, call.observe(None))

    async def _arun(
        self,
        *args: Any,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        tool_input = _tool_input(args, kwargs)
        call = self._call(tool_input)
        decision = await call.adecide()
        if not decision.allowed:
            self._refuse(decision)
        callbacks = run_manager.get_child() if run_manager is not None else None
        try:
            call.result = _output(await self.inner.arun(tool_input, callbacks=callbacks))
        except BaseException as exc:
            call.observe(exc)
            raise
        return self._checked(call, await asyncio.to_thread(call.observe, None))

    def _checked(self, call: GuardedCall, findings: list[Finding]) -> Any:
        notice = injection_notice(self.name, findings)
        if notice is None or self.on_injection != "withhold":
            return call.result
        return notice


def guard_tools(
    tools: Sequence[BaseTool],
    pdp: DecisionPoint | None = None,
    *,
    agent_id: str | None = None,
    run_id: str | None = None,
    tenant_id: str | None = None,
    tool_names: ToolNames = None,
    permissions: Mapping[str, Sequence[str]] | None = None,
    on_deny: str = "message",
    on_injection: str = "withhold",
    timeout: float = 1.0,
) -> list[GuardedTool]:
    """Each tool wrapped in a :class:`GuardedTool` (same name, description and schema)."""
    out: list[GuardedTool] = []
    for tool in tools:
        name = tool_name(tool_names, tool.name)
        out.append(
            GuardedTool(
                name=tool.name,
                description=tool.description,
                args_schema=tool.args_schema,
                return_direct=tool.return_direct,
                handle_tool_error=True,
                inner=tool,
                sentrail_tool=name,
                pdp=pdp,
                agent_id=agent_id,
                sentrail_run_id=run_id,
                tenant_id=tenant_id,
                permissions=list((permissions or {}).get(name, ())),
                on_deny=on_deny,
                on_injection=on_injection,
                timeout=timeout,
            )
        )
    return out


class SentrailCallbackHandler(BaseCallbackHandler):
    """Decides in ``on_tool_start`` (raising ``ToolDenied``), observes in ``on_tool_end``."""

    raise_error: bool = True
    run_inline: bool = True

    def __init__(
        self,
        pdp: DecisionPoint | None = None,
        *,
        agent_id: str | None = None,
        run_id: str | None = None,
        tenant_id: str | None = None,
        tool_names: ToolNames = None,
        permissions: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.pdp = pdp
        self.agent_id = agent_id
        self.sentrail_run_id = run_id
        self.tenant_id = tenant_id
        self.tool_names = tool_names
        self.permissions = dict(permissions or {})
        self._calls: collections.OrderedDict[UUID, GuardedCall] = collections.OrderedDict()

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        raw = (serialized or {}).get("name") or kwargs.get("name") or "tool"
        name = tool_name(self.tool_names, str(raw))
        params = jsonable(inputs) if isinstance(inputs, dict) else {"input": input_str}
        call = GuardedCall(
            name,
            params,
            pdp=self.pdp,
            agent_id=self.agent_id,
            run_id=self.sentrail_run_id,
            tenant_id=self.tenant_id,
            permissions=self.permissions.get(name, ()),
        )
        decision = call.decide()
        if not decision.allowed:
            raise ToolDenied(decision)
        self._calls[run_id] = call
        while len(self._calls) > MAX_PENDING:
            self._calls.popitem(last=False)

    def on_tool_end(
        self, output: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> Any:
        call = self._calls.pop(run_id, None)
        if call is not None:
            call.result = _output(output)
            call.observe(None)

    def on_tool_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> Any:
        call = self._calls.pop(run_id, None)
        if call is not None:
            call.observe(error)
