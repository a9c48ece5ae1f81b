"""Decision point latency in process: ``decide_p50_us`` / ``decide_p99_us``.

A realistic bundle is generated: 200 registered tools across every risk class, 50 CEL
rules of the shapes policies use (tool and environment conditions, parameter checks,
history counters), profiles with approved-tool globs and boundaries. Then 20,000
decisions over 400 runs of 50 calls each (reads, writes, sends, a few denials), each call
followed by its result (``observe``), are timed one by one (``perf_counter_ns``, and the
thread's CPU time: ``decide_cpu_*``) with signing on and an in-memory recorder. The same
calls are then decided by a decision point with no detector (``decide_no_detectors_*``:
the floor under them), and one Ed25519 signature is timed alone (``sign_cpu_p50_us``).
Nothing is asserted; prints JSON.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sentrail import _native
from sentrail.detect.registry import DETECTORS
from sentrail.enforce.model import DecisionRequest
from sentrail.enforce.pdp import DecisionPoint
from sentrail.engine.engine import Engine
from sentrail.evidence.note import Signer
from sentrail.model.trace import ToolResult
from sentrail.policy.compiled import Policy
from sentrail.policy.load import load_policy

SERVICES = ["db", "files", "http", "email", "payments", "iam", "k8s", "s3", "ticket", "crm"]
VERBS = {
    "read_only": ["get", "list", "query", "read", "search", "describe"],
    "low_risk_write": ["create", "comment", "tag"],
    "sensitive_write": ["update", "send", "post", "transfer"],
    "destructive": ["delete", "drop", "terminate"],
    "privileged_admin": ["attach_policy", "grant_role"],
}


def bundle() -> dict[str, Any]:
    tools = []
    for i in range(200):
        risk = list(VERBS)[i % len(VERBS)]
        svc = SERVICES[i % len(SERVICES)]
        verb = VERBS[risk][i % len(VERBS[risk])]
        tools.append({"name": f"{svc}.{verb}_{i}", "risk": risk})
    shapes = [
        'tool.risk == "destructive" && step.environment == "prod" && !step.has_approval',
        'tool.name.startsWith("{svc}.") && history.writes > 20',
        '"{svc}" in params && size(string(params["{svc}"])) > 200',
        'history.failures > 5 && tool.risk != "read_only"',
        'step.environment == "prod" && tool.verb == "send" && !step.has_approval',
        "has(params.amount) && double(params.amount) > 10000.0",
        'run.runtime_mode == "autonomous" && tool.risk == "privileged_admin"',
        'history.injection_seen && tool.risk == "sensitive_write"',
        "size(step.permissions) > 4",
        'tool.name.endsWith("_{n}") && step.environment == "staging"',
    ]
    rules = []
    for i in range(50):
        svc = SERVICES[i % len(SERVICES)]
        cond = shapes[i % len(shapes)].replace("{svc}", svc).replace("{n}", str(i))
        rules.append(
            {
                "id": f"rule-{i}",
                "condition": cond,
                "severity": "critical" if i % 3 == 0 else "warning",
            }
        )
    agents = [
        {
            "id": f"agent-{svc}-*",
            "approved_tools": [f"{svc}.*", "http.*", "ticket.*"],
            "permission_boundary": [f"{svc}:*", "net:egress", "ticket:*"],
            "trusted_domains": ["corp.example.com"],
        }
        for svc in SERVICES
    ]
    return {"version": 1, "name": "bench", "agents": agents, "tools": tools, "rules": rules}


def calls(rng: random.Random, tools: list[dict[str, Any]]) -> list[DecisionRequest]:
    out = []
    for r in range(400):
        svc = SERVICES[r % len(SERVICES)]
        mine = [t for t in tools if t["name"].startswith(svc + ".")]
        agent = f"agent-{svc}-{r}"
        for k in range(50):
            t = rng.choice(mine) if rng.random() < 0.9 else rng.choice(tools)
            params = {"id": rng.randrange(10**6), "note": "routine maintenance step"}
            if rng.random() < 0.2:
                params["url"] = rng.choice(
                    ["https://corp.example.com/x", "https://api.corp.example.com/y"]
                )
            if rng.random() < 0.1:
                params["amount"] = rng.randrange(20000)
            out.append(
                DecisionRequest(
                    t["name"],
                    params,
                    agent_id=agent,
                    run_id=f"run-{r}",
                    environment=rng.choice(["prod", "staging"]),
                    permissions=[f"{svc}:{'read' if k % 3 else 'write'}"],
                )
            )
    return out


def timed(
    policy: Policy, signer: Signer, reqs: list[DecisionRequest], detectors: bool
) -> tuple[list[int], list[int], dict[str, int]]:
    """Wall and thread CPU ns of each decision (sorted), and the outcomes, after a warm-up
    on a decision point of its own (the rule memo, the registry)."""
    chosen = tuple(DETECTORS.values()) if detectors else ()
    recorded: list[Any] = []
    result = ToolResult(status="success", data={"rows": 3, "ok": True})
    warm = DecisionPoint(Engine(policy, detectors=chosen), signer, recorder=recorded.append)
    for r in reqs[:500]:
        warm.decide(r)
    pdp = DecisionPoint(Engine(policy, detectors=chosen), signer, recorder=recorded.append)
    times: list[int] = []
    cpu: list[int] = []
    outcomes: dict[str, int] = {}
    for r in reqs:
        c0 = time.thread_time_ns()
        t0 = time.perf_counter_ns()
        dec = pdp.decide(r)
        times.append(time.perf_counter_ns() - t0)
        cpu.append(time.thread_time_ns() - c0)
        outcomes[dec.outcome.value] = outcomes.get(dec.outcome.value, 0) + 1
        assert r.run_id is not None
        pdp.observe("default", r.run_id, result, r.agent_id)
    times.sort()
    cpu.sort()
    return times, cpu, outcomes


def p50(ns: list[int]) -> float:
    return round(statistics.median(ns) / 1000, 1)


def p99(ns: list[int]) -> float:
    return round(ns[int(len(ns) * 0.99) - 1] / 1000, 1)


def main() -> None:
    rng = random.Random(11)
    spec = bundle()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "bundle.yaml"
        path.write_text(yaml.safe_dump(spec))
        policy = Policy(load_policy(str(path)))
    signer = Signer("bench.local/log", Ed25519PrivateKey.generate())
    reqs = calls(rng, spec["tools"])
    times, cpu, outcomes = timed(policy, signer, reqs, detectors=True)
    _, bare_cpu, _ = timed(policy, signer, reqs, detectors=False)
    body = b"x" * 420  # about the size of an encoded decision
    sign_cpu = []
    for _ in range(5000):
        c0 = time.thread_time_ns()
        signer.sign(body)
        sign_cpu.append(time.thread_time_ns() - c0)
    print(
        json.dumps(
            {
                "build": _native.running(),
                "decide_calls": len(times),
                "decide_rules": len(spec["rules"]),
                "decide_tools": len(spec["tools"]),
                "decide_p50_us": p50(times),
                "decide_p99_us": p99(times),
                "decide_max_us": round(times[-1] / 1000, 1),
                # CPU time of the deciding thread: what the wall clock shows without the
                # waits for a core on a shared machine.
                "decide_cpu_p50_us": p50(cpu),
                "decide_cpu_p99_us": p99(cpu),
                "decide_outcomes": outcomes,
                # The floor under the detectors: the same calls decided, signed and
                # recorded by a decision point that runs none; and one Ed25519 signature.
                "decide_no_detectors_cpu_p50_us": p50(bare_cpu),
                "decide_no_detectors_cpu_p99_us": p99(bare_cpu),
                "sign_cpu_p50_us": p50(sorted(sign_cpu)),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
