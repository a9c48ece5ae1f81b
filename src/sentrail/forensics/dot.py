"""A graph as Graphviz DOT text (``sentrail graph --format dot | dot -Tsvg``).

Labels come from traces and are hostile: every id and label is written as a DOT quoted
string with ``\\`` and ``"`` escaped (so a label cannot end its string, open an HTML label or
smuggle a Graphviz escape such as ``\\N`` or ``\\l``), control, bidi and zero-width
characters shown as visible escapes, and newlines folded. Attribute names and values that
sentrail writes itself come from fixed tables.
"""

from __future__ import annotations

from sentrail.forensics.graph import Graph
from sentrail.report.escape import safe_text

_SHAPES = {
    "run": "doubleoctagon",
    "agent": "house",
    "attestation": "note",
    "policy": "component",
    "trigger": "cds",
    "step": "box",
    "result": "folder",
    "value": "ellipse",
    "finding": "octagon",
    "decision": "diamond",
    "approval": "invhouse",
    "app": "tab",
}
_EDGE_STYLES = {
    "next": "bold",
    "data_flow": "bold",
    "argument": "solid",
    "contains": "dashed",
    "mentions": "dashed",
    "cause": "bold",
    "flags": "dotted",
    "source": "dotted",
}
_EDGE_COLOURS = {"data_flow": "blue", "cause": "red", "flags": "red", "source": "orange"}


def quote(text: object) -> str:
    """``text`` as a DOT quoted string that renders as written."""
    s = safe_text(text, limit=200)  # controls and bidi made visible, newlines folded
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_dot(graph: Graph, name: str = "sentrail") -> str:
    lines = [f"digraph {quote(name)} {{", "  rankdir=LR;", '  node [fontname="Helvetica"];']
    for n in graph.nodes:
        shape = _SHAPES.get(n.kind, "box")
        lines.append(f"  {quote(n.id)} [label={quote(n.label)}, shape={shape}];")
    for e in graph.edges:
        attrs = [f"label={quote(e.label or e.kind)}"]
        attrs.append(f"style={_EDGE_STYLES.get(e.kind, 'solid')}")
        if e.kind in _EDGE_COLOURS:
            attrs.append(f"color={_EDGE_COLOURS[e.kind]}")
        lines.append(f"  {quote(e.source)} -> {quote(e.target)} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
