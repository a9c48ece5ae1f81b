"""Guarded re-enable: a quarantined agent is released only when it is clean again.

``release_agent`` requires, for the agent's profile:

1. a clean attestation — every allowed set the profile declares (image digest, model id,
   policy bundle version, tool registry version) contains the attested value; with no
   attestation policy, at least an image digest and a model id must be attested;
2. the current policy — the version the agent reports is the SHA-256 of the loaded bundle
   (or its name, for the built-in defaults);
3. a canary run of that agent that passes the policy — analysed by the same engine, with
   no warning or critical finding.

Only then is the release recorded (who and why) and the quarantine lifted.
"""

from __future__ import annotations

from sentrail.enforce.state import Containment, EnforcementError
from sentrail.engine.engine import Engine
from sentrail.model.trace import Attestation, Run


def release_problems(
    engine: Engine, agent: str, attestation: Attestation | None, policy_version: str, canary: Run
) -> list[str]:
    """Why ``agent`` may not be released yet (empty: it may)."""
    problems: list[str] = []
    policy = engine.policy
    allowed = policy.profile_for(agent).profile.enforcement.attestation
    att = attestation or Attestation()
    if allowed is None:
        if not att.image_digest or not att.model_id:
            problems.append("the attestation must name an image digest and a model id")
    else:
        for name, values, got in (
            ("image digest", allowed.image_digests, att.image_digest),
            ("model id", allowed.model_ids, att.model_id),
            ("policy bundle version", allowed.policy_versions, att.policy_bundle_version),
            ("tool registry version", allowed.tool_registry_versions, att.tool_registry_version),
        ):
            if values is not None and got not in values:
                problems.append(f"{name} {got or '(none)'} is not in the allowed set")
    current = policy.sha256 or policy.name
    if policy_version != current:
        problems.append(f"policy version {policy_version!r} is not the current {current!r}")
    if canary.agent_id != agent:
        problems.append(f"the canary run is of {canary.agent_id!r}, not {agent!r}")
    result = engine.analyze(canary)
    bad = [f for f in result.findings if f.severity.rank >= 2]
    if bad:
        problems.append(
            f"the canary run has {len(bad)} finding(s), first: {bad[0].rule}: {bad[0].message}"
        )
    if not canary.steps:
        problems.append("the canary run has no steps")
    return problems


def release_agent(
    containment: Containment,
    engine: Engine,
    tenant: str,
    agent: str,
    *,
    by: str,
    reason: str,
    attestation: Attestation | None,
    policy_version: str,
    canary: Run,
) -> bool:
    """Lift the quarantine when every condition holds; EnforcementError says what fails."""
    problems = release_problems(engine, agent, attestation, policy_version, canary)
    if problems:
        raise EnforcementError("not released: " + "; ".join(problems))
    return containment.release(tenant, agent, by=by, reason=reason)
