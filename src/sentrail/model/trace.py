"""The run trace: the input contract described in docs/trace-format.md.

Unknown fields are accepted (never an error); the exact input bytes are kept alongside the
decoded run by the loader, so nothing a producer sent is lost.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

# Integers that are stored must fit a signed 64-bit column (SQLite INTEGER, PostgreSQL
# BIGINT); a larger one would pass decoding and fail in the store, far from its input.
# (A negative step index fits: it is odd telemetry, reported as such, not an error.)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
StepIndex = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]


class ToolCall(msgspec.Struct, omit_defaults=True):
    tool: str
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)


class ToolResult(msgspec.Struct, omit_defaults=True):
    status: str | None = None
    data: Any = None
    error: Any = None


class Alternative(msgspec.Struct, omit_defaults=True):
    action: str | None = None
    tool: str | None = None
    rejected_reason: str | None = None


class ToolInfo(msgspec.Struct, omit_defaults=True):
    """One tool as the agent was offered it (an MCP ``tools/list`` entry)."""

    name: str
    description: str | None = None
    input_schema: Any = None


class Step(msgspec.Struct, omit_defaults=True):
    step_index: StepIndex
    action: str | None = None
    reasoning: str | None = None
    # The agent's words to the user (an answer, a reply) in a step with no tool call.
    output: str | None = None
    tool_call: ToolCall | None = None
    result: ToolResult | None = None
    permissions_used: list[str] = msgspec.field(default_factory=list)
    timestamp: str | None = None
    duration_ms: float | None = None
    alternatives: list[Alternative] | None = None
    resource: str | None = None
    environment: str | None = None
    approval_id: str | None = None
    confidence: float | None = None
    # The tools the agent was offered, when the list was (re)read at this step (MCP
    # ``tools/list``, after ``notifications/tools/list_changed``).
    tools: list[ToolInfo] | None = None


class PermissionsSummary(msgspec.Struct, omit_defaults=True):
    granted: list[str] = msgspec.field(default_factory=list)
    denied: list[str] = msgspec.field(default_factory=list)
    escalated: list[str] = msgspec.field(default_factory=list)


class Attestation(msgspec.Struct, omit_defaults=True):
    image_digest: str | None = None
    model_id: str | None = None
    policy_bundle_version: str | None = None
    tool_registry_version: str | None = None


class RunHeader(msgspec.Struct, omit_defaults=True):
    """Everything about a run except its steps: what a live stream knows when a run starts."""

    run_id: str
    agent_id: str
    trigger: str | None = None
    # Where the trigger came from (``email``, ``ticket``, ``web_form``...): an untrusted
    # channel's task text is scanned like a tool result.
    trigger_source: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    status: str | None = None
    policy_version: str | None = None
    permissions_summary: PermissionsSummary | None = None
    tenant_id: str | None = None
    agent_type: str | None = None
    runtime_mode: str | None = None
    environment: str | None = None
    attestation: Attestation | None = None


class Run(RunHeader, omit_defaults=True):
    """A whole run trace document: the header fields plus the steps."""

    steps: list[Step] = msgspec.field(default_factory=list)

    def header(self) -> RunHeader:
        return RunHeader(**{f: getattr(self, f) for f in RunHeader.__struct_fields__})
