"""``trace analyze --format json`` is as inert on a terminal as the text output."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from sentrail.cli.app import app
from sentrail.report.json_report import terminal_safe_json

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# CSI (U+009B), another C1, DEL, bidi override / isolate, zero-width space, BOM, annotation.
HOSTILE = "\u009b31m\u0085\u007f\u202egnp.exe\u2066x\u2069\u200b\ufeff\ufff9"
RAW = [c.encode() for c in "\u009b\u0085\u007f\u202e\u2066\u2069\u200b\ufeff\ufff9"]


def test_the_json_report_escapes_c1_controls_and_bidi_overrides(tmp_path: Path) -> None:
    doc = json.loads((EXAMPLES / "traces" / "prod-delete.json").read_text())
    doc["agent_id"] = "agent-" + HOSTILE
    doc["steps"][0]["tool_call"]["tool"] = "db." + HOSTILE
    trace = tmp_path / ("t" + "\u202e" + ".json")
    trace.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    r = CliRunner().invoke(app, ["trace", "analyze", str(trace), "--format", "json"])
    out = r.stdout_bytes
    assert out, r.output
    for raw in RAW:
        assert raw not in out, raw
    report = json.loads(out)
    (run,) = report["runs"]
    assert run["agent_id"] == doc["agent_id"]  # a JSON reader gets the same strings back
    assert run["path"] == str(trace)


@given(st.text())
def test_escaping_never_changes_what_a_json_reader_reads(text: str) -> None:
    encoded = terminal_safe_json(json.dumps({"k": text}, ensure_ascii=False).encode())
    assert json.loads(encoded) == {"k": text}
    assert not any(raw in encoded for raw in RAW)


def test_the_json_report_escapes_exactly_what_the_text_report_escapes() -> None:
    """Both lists of characters a terminal could act on, or that draw nothing, agree:
    every character of the basic plane and of the astral blocks in the set, but the C0
    controls (JSON escapes them itself) and lone surrogates (JSON never holds them)."""
    from sentrail.report.escape import safe_text

    astral = [range(0x1BC90, 0x1BCB0), range(0x1D160, 0x1D180), range(0xE0000, 0xE1010)]
    for cp in [*range(0x20, 0xD800), *range(0xE000, 0x10000), *(c for r in astral for c in r)]:
        c = chr(cp)
        encoded = terminal_safe_json(json.dumps(c, ensure_ascii=False).encode())
        shown = safe_text(c, one_line=False)
        assert (c.encode() in encoded) == (shown == c), hex(cp)
        assert json.loads(encoded) == c
