"""The execution graph of a run, and the graph of runs that share a value.

A run's graph (``run_graph``) answers "how did this value get here?": nodes for the trigger,
the steps and their results, the values that flow (recipients, URLs, accounts, paths,
commands, credentials), the findings, decisions and approvals, the agent's identity and
attestation, and the policy; edges for order, data flow and cause:

=============  ===========================================================================
edge kind      meaning
=============  ===========================================================================
``next``       step order (the trigger starts the first step)
``returns``    a step's call returned this result
``argument``   a value is in a step's call parameters (label: the field)
``contains``   a value first appeared in this result (label: where) — with ``argument``,
               the path of a value from one step's result into a later step's call
``data_flow``  the same path as one edge: result of step *i* → step *j* (label: field)
``mentions``   the trigger names the value (the user asked for it)
``flags``      a finding is about this step; ``source`` its evidence came from this result
``cause``      a finding led to a decision; ``decides`` the decision is about this step
``approves``   an approval released this step or decision
``ran``        the agent ran the run; ``attests`` / ``governs``: attestation and policy
``holds``      (across runs) an app holds a run; ``uses``: a run's step used the value
=============  ===========================================================================

``value_graph`` links runs, agents and apps that used one value (from the value index).
The JSON shape (docs/forensics.md) is flat — node and edge lists with string ids, a kind and
a label each, and a ``step_index`` on step-like nodes — so a browser can lay it out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from sentrail.detect.content_values import secrets_in
from sentrail.forensics.explain import DecisionView
from sentrail.forensics.values import FlowValue, credential_key, run_values, searchable
from sentrail.model.finding import Finding, RunResult
from sentrail.model.trace import Run

GRAPH_FORMAT = "sentrail.graph/1"
MAX_STEPS = 2_000  # steps drawn per run
MAX_CORPUS = 8 * 1024 * 1024  # result text searched for data flow, per run
MAX_LABEL = 80


class Node(msgspec.Struct, omit_defaults=True):
    id: str
    kind: str  # run | agent | attestation | policy | trigger | step | result | value |
    #            finding | decision | approval | app
    label: str
    step_index: int | None = None
    attrs: dict[str, Any] = msgspec.field(default_factory=dict)


class Edge(msgspec.Struct, omit_defaults=True):
    source: str
    target: str
    kind: str
    label: str = ""


class Graph(msgspec.Struct):
    scope: dict[str, Any]
    nodes: list[Node]
    edges: list[Edge]
    format: str = GRAPH_FORMAT
    truncated: bool = False


class ValueUse(msgspec.Struct, frozen=True, omit_defaults=True):
    """One use of a value by one run (a row of the value index)."""

    app_id: str
    run_id: str
    agent_id: str
    step_index: int
    kind: str
    key: str
    display: str
    field: str
    tool: str | None = None
    started_at: float | None = None
    verdict: str | None = None


def _label(text: object) -> str:
    s = str(text)
    return s if len(s) <= MAX_LABEL else s[: MAX_LABEL - 1] + "…"


class _Builder:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.edges: dict[tuple[str, str, str, str], Edge] = {}

    def node(self, node: Node) -> str:
        self.nodes.setdefault(node.id, node)
        return node.id

    def edge(self, source: str, target: str, kind: str, label: str = "") -> None:
        if source in self.nodes and target in self.nodes:
            self.edges.setdefault((source, target, kind, label), Edge(source, target, kind, label))

    def graph(self, scope: dict[str, Any], truncated: bool = False) -> Graph:
        return Graph(
            scope, list(self.nodes.values()), list(self.edges.values()), truncated=truncated
        )


def value_id(kind: str, key: str) -> str:
    return f"value:{kind}:{key}"


# -- one run ------------------------------------------------------------------------------------
def run_graph(
    run: Run,
    result: RunResult | None = None,
    decisions: Iterable[DecisionView] = (),
    *,
    policy_sha256: str | None = None,
) -> Graph:
    """The execution graph of ``run`` (with its findings and decisions, when given)."""
    b = _Builder()
    run_id = b.node(
        Node(
            "run",
            "run",
            _label(run.run_id),
            attrs={
                "run_id": run.run_id,
                "status": run.status,
                **(
                    {"verdict": result.verdict.value, "risk_score": result.risk_score}
                    if result is not None
                    else {}
                ),
            },
        )
    )
    _identity(b, run, run_id, result, policy_sha256)
    steps = run.steps[:MAX_STEPS]
    previous = None
    if run.trigger:
        previous = b.node(
            Node("trigger", "trigger", _label(run.trigger), attrs={"text": run.trigger[:2000]})
        )
        b.edge(run_id, previous, "next")
    for step in steps:
        call = step.tool_call
        sid = b.node(
            Node(
                f"step:{step.step_index}",
                "step",
                _label(f"{step.step_index}: {call.tool if call else step.action or 'step'}"),
                step_index=step.step_index,
                attrs={
                    "action": step.action,
                    "tool": call.tool if call else None,
                    "status": step.result.status if step.result else None,
                    "permissions": step.permissions_used,
                    "environment": step.environment,
                    "resource": step.resource,
                },
            )
        )
        b.edge(previous or run_id, sid, "next")
        previous = sid
        if step.result is not None:
            rid = b.node(
                Node(
                    f"result:{step.step_index}",
                    "result",
                    _label(f"result {step.step_index}: {step.result.status or ''}".rstrip(": ")),
                    step_index=step.step_index,
                    attrs={"status": step.result.status},
                )
            )
            b.edge(sid, rid, "returns")
        if step.approval_id:
            aid = b.node(Node(f"approval:{step.approval_id}", "approval", _label(step.approval_id)))
            b.edge(aid, sid, "approves")
    _flows(b, run, steps)
    if result is not None:
        _findings(b, result.findings)
    _decisions(b, decisions, result.findings if result is not None else [])
    return b.graph({"run_id": run.run_id}, truncated=len(run.steps) > MAX_STEPS)


def _identity(
    b: _Builder, run: Run, run_id: str, result: RunResult | None, policy_sha256: str | None
) -> None:
    agent = b.node(
        Node(
            f"agent:{run.agent_id}",
            "agent",
            _label(run.agent_id),
            attrs={
                "agent_id": run.agent_id,
                "agent_type": run.agent_type,
                "tenant_id": run.tenant_id,
                "runtime_mode": run.runtime_mode,
            },
        )
    )
    b.edge(agent, run_id, "ran")
    if run.attestation is not None:
        att = b.node(
            Node(
                "attestation",
                "attestation",
                "attestation",
                attrs=msgspec.to_builtins(run.attestation),
            )
        )
        b.edge(att, agent, "attests")
    name = result.policy_name if result is not None else None
    if name or run.policy_version or policy_sha256:
        pol = b.node(
            Node(
                "policy",
                "policy",
                _label(name or run.policy_version or "policy"),
                attrs={"name": name, "version": run.policy_version, "sha256": policy_sha256},
            )
        )
        b.edge(pol, run_id, "governs")


def _flows(b: _Builder, run: Run, steps: Sequence[Any]) -> None:
    """Value nodes and the edges that say where each value came from."""
    trigger = run.trigger.lower() if run.trigger else ""
    texts: list[tuple[int, str, str, set[str]]] = []  # (step, text, compact, credential keys)
    corpus = 0
    values = [v for v in run_values(run) if v.step_index in {s.step_index for s in steps}]
    by_step: dict[int, list[FlowValue]] = {}
    for v in values:
        by_step.setdefault(v.step_index, []).append(v)
    for step in steps:
        for v in by_step.get(step.step_index, ()):
            vid = b.node(
                Node(value_id(v.kind, v.key), "value", _label(v.display), attrs={"kind": v.kind})
            )
            b.edge(vid, f"step:{step.step_index}", "argument", v.field)
            if v.kind != "credential" and trigger and v.key in trigger:
                b.edge("trigger", vid, "mentions")
                continue
            for index, text, compact, creds in texts:
                found = (
                    v.key in creds
                    if v.kind == "credential"
                    else v.key in (compact if v.kind == "account" else text)
                )
                if found:
                    b.edge(f"result:{index}", vid, "contains")
                    b.edge(f"result:{index}", f"step:{step.step_index}", "data_flow", v.field)
                    break
        res = step.result
        if (
            res is not None
            and corpus < MAX_CORPUS
            and (res.data is not None or res.error is not None)
        ):
            text, compact = searchable([res.data, res.error])
            corpus += len(text)
            creds = {credential_key(s) for s in secrets_in(text)} if text else set()
            texts.append((step.step_index, text, compact, creds))


def _findings(b: _Builder, findings: Sequence[Finding]) -> None:
    for f in findings:
        fid = b.node(
            Node(
                f"finding:{f.id}",
                "finding",
                _label(f"{f.severity.value}: {f.rule}"),
                step_index=f.step_index,
                attrs={"rule": f.rule, "severity": f.severity.value, "message": f.message[:500]},
            )
        )
        if f.step_index is not None:
            b.edge(fid, f"step:{f.step_index}", "flags")
        source = f.evidence.get("source_step")
        if isinstance(source, int) and not isinstance(source, bool):
            b.edge(f"result:{source}", fid, "source", str(f.evidence.get("source_path") or ""))
            param = f.evidence.get("parameter")
            if isinstance(param, str) and f.step_index is not None:  # a tainted value's path
                b.edge(f"result:{source}", f"step:{f.step_index}", "data_flow", f"params.{param}")


def _decisions(b: _Builder, decisions: Iterable[DecisionView], findings: Sequence[Finding]) -> None:
    for d in decisions:
        did = b.node(
            Node(
                f"decision:{d.decision_id}",
                "decision",
                _label(f"{d.outcome} ({d.control})"),
                step_index=d.step_index if d.step_index >= 0 else None,
                attrs={
                    "outcome": str(d.outcome),
                    "control": str(d.control),
                    "tool": d.tool,
                    "rule_ids": list(d.rule_ids),
                    "enforced": d.enforced,
                },
            )
        )
        b.edge(did, f"step:{d.step_index}", "decides")
        rules = set(d.rule_ids)
        for f in findings:
            if f.step_index == d.step_index and f.rule in rules:
                b.edge(f"finding:{f.id}", did, "cause")
        if d.approval_id:
            aid = b.node(Node(f"approval:{d.approval_id}", "approval", _label(d.approval_id)))
            b.edge(did, aid, "approves")


# -- across runs ------------------------------------------------------------------------------
def value_graph(value: str, uses: Sequence[ValueUse], *, truncated: bool = False) -> Graph:
    """Runs, agents and apps that used ``value`` (rows of the value index)."""
    b = _Builder()
    for u in uses:
        vid = b.node(
            Node(value_id(u.kind, u.key), "value", _label(u.display), attrs={"kind": u.kind})
        )
        app = b.node(Node(f"app:{u.app_id}", "app", _label(u.app_id)))
        run = b.node(
            Node(
                f"run:{u.app_id}/{u.run_id}",
                "run",
                _label(u.run_id),
                attrs={
                    "run_id": u.run_id,
                    "app_id": u.app_id,
                    "started_at": u.started_at,
                    "verdict": u.verdict,
                },
            )
        )
        agent = b.node(Node(f"agent:{u.agent_id}", "agent", _label(u.agent_id)))
        b.edge(app, run, "holds")
        b.edge(agent, run, "ran")
        b.edge(run, vid, "uses", f"step {u.step_index} {u.tool or ''} {u.field}".replace("  ", " "))
    return b.graph({"value": value}, truncated=truncated)
