"""Execution graphs: golden on every example trace; data flow; DOT that Graphviz's grammar
accepts however hostile the labels."""

from __future__ import annotations

import msgspec
import pydot
import pytest

from sentrail.forensics.dot import render_dot
from sentrail.forensics.graph import ValueUse, run_graph, value_graph
from sentrail.model.decode import decode_run
from tests.forensics.conftest import TRACES, check_golden, judged


@pytest.mark.parametrize("name", TRACES)
def test_every_example_trace_graphs_as_its_golden_file_and_renders_as_dot(name: str) -> None:
    run, result = judged(name)
    graph = run_graph(run, result, policy_sha256="f" * 64)
    ids = {n.id for n in graph.nodes}
    assert len(ids) == len(graph.nodes)
    assert all(e.source in ids and e.target in ids for e in graph.edges)
    check_golden(name.replace(".json", ".graph.json"), msgspec.to_builtins(graph))
    (parsed,) = pydot.graph_from_dot_data(render_dot(graph))
    assert len(parsed.get_nodes()) - _defaults(parsed) == len(graph.nodes)
    assert len(parsed.get_edges()) == len(graph.edges)


def _defaults(g: pydot.Dot) -> int:
    return sum(n.get_name() in ("node", "edge", "graph") for n in g.get_nodes())


def _edges(name: str, kind: str) -> set[tuple[str, str, str]]:
    run, result = judged(name)
    return {(e.source, e.target, e.label) for e in run_graph(run, result).edges if e.kind == kind}


def test_the_injected_iban_flows_from_step_0s_result_into_step_2s_transfer() -> None:
    flows = _edges("injected-transfer.json", "data_flow")
    assert ("result:0", "step:2", "params.to_account") in flows
    assert ("result:0", "value:account:de44500105175407324931", "") in _edges(
        "injected-transfer.json", "contains"
    )
    assert ("value:account:de44500105175407324931", "step:2", "params.to_account") in _edges(
        "injected-transfer.json", "argument"
    )


def test_a_value_the_user_asked_for_is_mentioned_by_the_trigger_not_a_data_flow() -> None:
    mentions = _edges("injected-transfer.json", "mentions")
    assert ("trigger", "value:url:https://vendor.example.com/invoices/7731", "") in mentions
    assert not [f for f in _edges("injected-transfer.json", "data_flow") if f[1] == "step:0"]


def test_order_identity_and_cause_edges_are_drawn() -> None:
    run, result = judged("prod-delete.json")
    g = run_graph(run, result, policy_sha256="a" * 64)
    kinds = {(e.source.split(":")[0], e.target.split(":")[0], e.kind) for e in g.edges}
    assert {
        ("agent", "run", "ran"),
        ("policy", "run", "governs"),
        ("step", "step", "next"),
    } <= kinds
    assert ("finding", "step", "flags") in kinds


HOSTILE = 'evil" -> "run" [label="pwn"]; x\\N\\l\n<b>html</b>\x1b[31m\u202edlrow'


def test_hostile_labels_stay_inside_their_dot_strings() -> None:
    doc = {
        "run_id": HOSTILE,
        "agent_id": HOSTILE,
        "trigger": HOSTILE,
        "steps": [
            {
                "step_index": 0,
                "action": HOSTILE,
                "tool_call": {"tool": HOSTILE, "parameters": {"to": "x@evil.example.com"}},
                "result": {"status": HOSTILE, "data": HOSTILE},
            }
        ],
    }
    run = decode_run(msgspec.json.encode(doc))
    graph = run_graph(run)
    dot = render_dot(graph)
    assert "\x1b" not in dot and "\u202e" not in dot and "\n<b>" not in dot
    (parsed,) = pydot.graph_from_dot_data(dot)
    assert len(parsed.get_edges()) == len(graph.edges)  # no edge smuggled in by a label
    labels = [n.get("label") for n in parsed.get_nodes() if n.get("label")]
    assert all(label.startswith('"') and label.endswith('"') for label in labels)
    assert not any("\\N" in label.replace("\\\\", "") for label in labels)


def test_runs_that_share_a_value_are_linked_with_their_agents_and_apps() -> None:
    uses = [
        ValueUse("pay", "r1", "ap-1", 2, "account", "de44", "DE44", "params.to", "bank.transfer"),
        ValueUse("pay", "r2", "ap-2", 5, "account", "de44", "DE44", "params.to", "bank.transfer"),
        ValueUse("crm", "r3", "ap-1", 1, "account", "de44", "DE44", "params.iban", "crm.update"),
    ]
    g = value_graph("DE44", uses)
    assert {n.id for n in g.nodes if n.kind == "run"} == {"run:pay/r1", "run:pay/r2", "run:crm/r3"}
    assert {n.id for n in g.nodes if n.kind == "agent"} == {"agent:ap-1", "agent:ap-2"}
    uses_edges = [e for e in g.edges if e.kind == "uses"]
    assert len(uses_edges) == 3 and {e.target for e in uses_edges} == {"value:account:de44"}
    pydot.graph_from_dot_data(render_dot(g))
