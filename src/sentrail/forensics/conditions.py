"""What each control and detector rule checks, in words: the *condition* half of an
explanation. A policy rule brings its own (its CEL expression, in the finding's evidence);
these are the built-in rules' conditions, as docs/detectors.md and docs/enforcement.md
state them. A rule not listed here is explained by its evidence alone.
"""

from __future__ import annotations

# Detector rules, by rule id.
DETECTOR_RULES: dict[str, str] = {
    "permission_escalation.outside_boundary": (
        "a permission the step used is outside the agent's boundary (the policy's "
        "permission_boundary, or the trace's granted minus escalated permissions)"
    ),
    "policy.unapproved_tool": "the tool is not on the agent profile's approved_tools",
    "policy.environment": "the step ran outside the agent profile's environments",
    "unusual_sequence.new_tool": "a tool the agent's baseline never saw it use",
    "unusual_sequence.new_transition": "a tool-to-tool transition absent from the baseline",
    "excessive_retries.identical": (
        "the same tool called repeatedly with identical parameters (at the profile's "
        "retry_threshold)"
    ),
    "excessive_retries.mutating": (
        "the same tool called repeatedly with changing parameters (critical when credential "
        "fields change or an authentication tool keeps failing)"
    ),
    "data_exfiltration.untrusted_transfer": (
        "a sensitive or large read followed by a transfer to a destination that is neither "
        "trusted by the profile nor an ETL allowance"
    ),
    "untrusted_instruction.tool_result": "instruction-like text inside a tool result",
    "untrusted_instruction.task_text": (
        "instruction-like text in the task text: an override or role marker, or any "
        "instruction when the trigger comes from an untrusted channel"
    ),
    "tainted_action.untrusted_value": (
        "a value in a write's parameters first appeared in an earlier tool result, not in "
        "the trigger, a trusted destination or an earlier call (critical when that result "
        "carried an injected instruction)"
    ),
    "tainted_action.instructed": (
        "a write whose verb and object repeat an instruction injected in an earlier result"
    ),
    "tainted_action.named_tool": (
        "a call to the tool an injected instruction told the agent to call by name"
    ),
    "tainted_action.injected_output": (
        "the agent's answer says the token an injected instruction told it to say"
    ),
    "tainted_action.free_text_destination": (
        "a destination found only in the free text of a result, never in the user's request, "
        "used by an action that moves money, data or credentials"
    ),
    "data_exfiltration.output_url": (
        "a markdown image or link in the agent's output whose URL carries a secret or a value "
        "read from an earlier tool result"
    ),
    "data_exfiltration.lookalike_link": (
        "a link in the agent's output on a domain imitating one the user named or the "
        "profile trusts"
    ),
    "data_exfiltration.secret_in_output": (
        "a secret-looking value in the agent's output that the user's request did not hold"
    ),
    "behavioural_correlation.failure_cascade": (
        "failing steps on several tools right after a denied step"
    ),
    "untrusted_instruction.tool_changed": (
        "a tool's description or input schema changed from an earlier listing in the run"
    ),
    "behavioural_correlation.repeated_denials": "three or more denied writes close together",
    "behavioural_correlation.escalation_after_denial": (
        "a permission escalation within three steps of a denied step"
    ),
    "behavioural_correlation.denied_rerouted": (
        "a denied write, then a successful write by another tool on the same target"
    ),
    "behavioural_correlation.low_confidence_action": (
        "a high-risk action right after a step whose confidence is below 0.5"
    ),
    "missing_telemetry.step_gap": "step_index jumps: steps are missing",
    "missing_telemetry.duplicate_step": "a step_index repeats",
    "missing_telemetry.step_order": "step_index goes backwards",
    "missing_telemetry.time_backwards": "a timestamp earlier than the previous step's",
    "missing_telemetry.bad_timestamp": "a timestamp that does not parse",
    "missing_telemetry.no_timestamp": "steps without timestamps",
    "missing_telemetry.before_start": "a step before the run's start",
    "missing_telemetry.after_completion": "a step after the run's completion",
    "missing_telemetry.no_result": "a sensitive write with no recorded result",
    "missing_telemetry.no_reasoning": "a sensitive write with no recorded reasoning",
    "missing_telemetry.unlisted_permission": (
        "a permission used but absent from permissions_summary.granted"
    ),
    "missing_telemetry.unused_escalation": "an escalated grant that was never used",
    "missing_telemetry.empty_run": "a completed run with no steps",
    "missing_telemetry.run_incomplete": "the run stopped before run_completed",
}

# Decision-point rules (docs/enforcement.md), by rule id or its prefix before the dot.
CONTROL_RULES: dict[str, str] = {
    "containment.frozen": "the run is frozen",
    "containment.quarantine": "the agent is quarantined (non-read-only calls are denied)",
    "containment.disabled_tool": "the tool is disabled for this agent or fleet-wide",
    "capability.unapproved": "the tool is not on the profile's approved_tools",
    "capability.unknown_tool": "an unknown tool (not in the registry) on a call that may write",
    "capability.write_scope": "a write outside the profile's write_scopes",
    "boundary.revoked": "the permission's grant was revoked",
    "boundary.escalation": (
        "a permission outside the permission boundary and the live time-bound grants"
    ),
    "budget.calls_per_run": "the run used its calls_per_run budget",
    "budget.writes_per_run": "the run used its writes_per_run budget",
    "budget.cost_per_run": "the call would exceed the run's cost_per_run budget",
    "budget.calls_per_minute": "the agent used its calls_per_minute budget",
    "attestation": (
        "for sensitive writes and above, the attested image digest, model id, policy bundle "
        "version and tool registry version must be in the allowed sets"
    ),
    "approval": "this risk class always needs an approval (approval_for)",
    "findings.retry_storm": "the tool was stopped by a retry storm earlier in the run",
    "fail_closed": "the decision point failed or could not record its decision: fail closed",
}


def condition_of(rule: str) -> str:
    """The condition of a built-in rule, or "" when it is not one sentrail knows."""
    if rule in DETECTOR_RULES:
        return DETECTOR_RULES[rule]
    if rule in CONTROL_RULES:
        return CONTROL_RULES[rule]
    return CONTROL_RULES.get(rule.split(".", 1)[0], "")
