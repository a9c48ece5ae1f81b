"""Decision point latency in process: ``decide_p50_us`` / ``decide_p99_us``.

A realistic bundle is generated: 200 registered tools across every risk class, 50 CEL
rules of the shapes policies use (tool and environment conditions, parameter checks,
history counters), profiles with approved-tool globs and boundaries. Then 20,000
decisions over 400 runs of 50 calls each (reads, writes, sends, a few denials), each call
followed by its result (``observe``), are timed one by one (``perf_counter_ns``, and the
thread's CPU time: ``decide_cpu_*``) with signing on and an in-memory recorder. Nothing is
asserted; prints JSON.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sentrail import _native
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


def main() -> None:
    rng = random.Random(11)
    spec = bundle()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "bundle.yaml"
        path.write_text(yaml.safe_dump(spec))
        policy = Policy(load_policy(str(path)))
    recorded: list[Any] = []
    pdp = DecisionPoint(
        Engine(policy),
        Signer("bench.local/log", Ed25519PrivateKey.generate()),
        recorder=recorded.append,
    )
    reqs = calls(rng, spec["tools"])
    result = ToolResult(status="success", data={"rows": 3, "ok": True})
    for r in reqs[:500]:  # warm the caches (rule memo, registry)
        pdp.decide(r)
    pdp = DecisionPoint(Engine(policy), pdp.signer, recorder=recorded.append)
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
    print(
        json.dumps(
            {
                "build": _native.running(),
                "decide_calls": len(times),
                "decide_rules": len(spec["rules"]),
                "decide_tools": len(spec["tools"]),
                "decide_p50_us": round(statistics.median(times) / 1000, 1),
                "decide_p99_us": round(times[int(len(times) * 0.99) - 1] / 1000, 1),
                "decide_max_us": round(times[-1] / 1000, 1),
                # CPU time of the deciding thread: what the wall clock shows without the
                # waits for a core on a shared machine.
                "decide_cpu_p50_us": round(statistics.median(cpu) / 1000, 1),
                "decide_cpu_p99_us": round(cpu[int(len(cpu) * 0.99) - 1] / 1000, 1),
                "decide_outcomes": outcomes,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
