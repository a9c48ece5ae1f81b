"""Hypothesis strategies for traces and JSON values."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

TOOLS = [
    "metrics.query",
    "logs.search",
    "service.restart",
    "db.delete_table",
    "email.send",
    "http.post",
    "web.fetch",
    "iam.attach_role_policy",
    "auth.login",
    "bank.transfer",
    "GmailReadEmail",
    "ticket.create",
]
PERMS = ["metrics:read", "logs:read", "service:restart", "ssh:exec:write", "iam:admin", "db:drop"]

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=40)
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
param_values = st.one_of(
    st.text(max_size=30),
    st.integers(0, 100_000),
    st.sampled_from(["ops@corp.example.com", "x@evil.io", "https://paste.evil.io/u", "10.0.0.7"]),
)


@st.composite
def steps(draw: Any, index: int, second: int) -> dict[str, Any]:
    has_call = draw(st.booleans()) or True
    step: dict[str, Any] = {
        "step_index": index,
        "action": draw(st.sampled_from(["check", "fix", "respond", "lookup"])),
        "reasoning": draw(st.sampled_from(["", "Checking the alert per runbook."])),
        "permissions_used": draw(st.lists(st.sampled_from(PERMS), max_size=2)),
        "timestamp": f"2026-03-05T14:{second // 60 % 60:02d}:{second % 60:02d}.000Z",
        "duration_ms": draw(st.integers(1, 5000)),
    }
    if has_call and draw(st.integers(0, 9)) > 0:
        step["tool_call"] = {
            "tool": draw(st.sampled_from(TOOLS)),
            "parameters": draw(
                st.dictionaries(
                    st.sampled_from(["to", "q", "password", "host"]), param_values, max_size=3
                )
            ),
        }
        step["result"] = draw(
            st.none()
            | st.fixed_dictionaries(
                {"status": st.sampled_from(["success", "error", "denied"]), "data": json_values}
            )
        )
    else:
        step["tool_call"] = None
        step["result"] = None
    if draw(st.integers(0, 5)) == 0:
        step["environment"] = draw(st.sampled_from(["prod", "staging"]))
    if draw(st.integers(0, 5)) == 0:
        step["approval_id"] = "APR-1"
    return step


@st.composite
def traces(draw: Any) -> dict[str, Any]:
    n = draw(st.integers(0, 12))
    seconds = sorted(draw(st.lists(st.integers(0, 3000), min_size=n, max_size=n)))
    if draw(st.booleans()) and n > 1:  # sometimes out of order
        seconds = draw(st.permutations(seconds))
    indices = list(range(n))
    if draw(st.booleans()) and n > 2:  # sometimes gaps or duplicates
        indices[-1] = indices[-1] + draw(st.integers(-1, 3))
    doc: dict[str, Any] = {
        "run_id": "run-" + draw(st.text("abcdef0123456789", min_size=4, max_size=8)),
        "agent_id": draw(st.sampled_from(["prod-triage-au-east", "support-bot", "etl-nightly"])),
        "trigger": draw(st.sampled_from(["alert:cpu", "Email ops@corp.example.com the report"])),
        "started_at": "2026-03-05T14:00:00.000Z",
        "completed_at": "2026-03-05T15:00:00.000Z",
        "status": "completed",
        "steps": [draw(steps(i, s)) for i, s in zip(indices, seconds, strict=True)],
    }
    if draw(st.booleans()):
        granted = draw(st.lists(st.sampled_from(PERMS), max_size=4, unique=True))
        doc["permissions_summary"] = {
            "granted": granted,
            "denied": draw(st.lists(st.sampled_from(PERMS), max_size=1)),
            "escalated": granted[:1],
        }
    return doc
