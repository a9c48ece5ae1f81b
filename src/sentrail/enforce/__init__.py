"""Enforcement: a policy decision point between an agent and its tools (docs/enforcement.md).

- :mod:`.model` — DecisionRequest, Decision, Approval.
- :mod:`.pdp` — DecisionPoint: decide (fail closed), observe, signatures.
- :mod:`.state` — containment (quarantine, revoked grants, disabled tools, frozen runs)
  and approvals bound to exact arguments.
"""
