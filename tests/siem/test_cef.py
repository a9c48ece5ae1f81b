from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from sentrail.model.finding import Category, Finding, Severity
from sentrail.siem.cef import cef_line, cef_record, escape_header, escape_value
from sentrail.siem.records import FindingRecord, Record, RunSummary, ToolCallRecord


def parse_cef(line: str) -> tuple[list[str], dict[str, str]]:
    """An independent reader: 7 header fields split on unescaped pipes, then ``key=value``
    pairs where a key starts after a space and a value runs to the next unescaped key."""
    assert line.startswith("CEF:0|")
    assert "\n" not in line and "\r" not in line
    fields: list[str] = []
    cur, i = "", 0
    while len(fields) < 7:
        c = line[i]
        if c == "\\":
            cur += line[i + 1]
            i += 2
            continue
        if c == "|":
            fields.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    ext = line[i:]
    pairs: dict[str, str] = {}
    starts = [m for m in re.finditer(r"(?:^| )(\w+)=", ext) if not _escaped(ext, m.end() - 1)]
    for n, m in enumerate(starts):
        end = starts[n + 1].start() if n + 1 < len(starts) else len(ext)
        raw = ext[m.end() : end]
        pairs[m.group(1)] = re.sub(
            r"\\(.)", lambda e: {"n": "\n", "r": "\r"}.get(e.group(1), e.group(1)), raw
        )
    return fields, pairs


def _escaped(text: str, pos: int) -> bool:
    n = 0
    while pos - 1 - n >= 0 and text[pos - 1 - n] == "\\":
        n += 1
    return n % 2 == 1


def test_finding_line_shape(example_records: list[Record]) -> None:
    record = next(r for r in example_records if isinstance(r, FindingRecord))
    header, ext = parse_cef(cef_record(record))
    assert header[:4] == ["CEF:0", "Sentrail", "sentrail", "0.1.0"]
    assert header[4] == record.finding.rule
    assert header[5] == record.finding.message[:512]
    assert header[6] in {"3", "6", "9"}
    assert ext["externalId"] == record.finding.id
    assert ext["rt"] == str(record.time_ms)
    assert ext["cs1Label"] == "runId" and ext["cs1"] == record.run.run_id
    assert ext["suser"] == record.run.agent_id
    assert ext["cat"] == record.finding.category.value


def test_tool_call_line_carries_the_verdict(example_records: list[Record]) -> None:
    for record in example_records:
        if isinstance(record, ToolCallRecord):
            header, ext = parse_cef(cef_record(record))
            assert header[4] == "tool_call"
            assert ext["act"] == record.tool
            assert ext["outcome"] == record.verdict.value
            assert int(header[6]) in range(11)


def test_every_example_line_parses(example_records: list[Record]) -> None:
    for record in example_records:
        parse_cef(cef_record(record))


_hostile = st.lists(
    st.sampled_from([*"ab =|\\\n\r\t:/é", "\\n", "==", "x=y", " k=v"]), max_size=20
).map("".join)


@given(signature=_hostile, name=_hostile, value=_hostile, other=_hostile)
def test_escaping_round_trips(signature: str, name: str, value: str, other: str) -> None:
    line = cef_line(signature, name, 5, [("msg", value), ("cs1Label", "x"), ("cs1", other)])
    header, ext = parse_cef(line)
    flat = lambda s: re.sub(r"\r\n|\r|\n", " ", s)  # noqa: E731 - header line breaks
    assert header[4] == flat(signature) and header[5] == flat(name)
    assert ext.get("msg", "") == value
    assert ext.get("cs1", "") == other


@given(st.text(max_size=60))
def test_escaped_values_have_no_bare_separator(text: str) -> None:
    out = escape_value(text)
    assert "\n" not in out and "\r" not in out
    for m in re.finditer("=", out):
        assert _escaped(out, m.start())
    head = escape_header(text)
    assert "\n" not in head and "\r" not in head
    for m in re.finditer(r"\|", head):
        assert _escaped(head, m.start())


def test_long_values_are_cut() -> None:
    record = FindingRecord(
        time_ms=1,
        run=RunSummary(run_id="r", agent_id="a"),
        finding=Finding(
            id="F-1",
            rule="r" * 2000,
            category=Category.POLICY_VIOLATION,
            severity=Severity.CRITICAL,
            step_index=None,
            message="m" * 5000,
        ),
    )
    header, ext = parse_cef(cef_record(record))
    assert len(header[4]) == 512 and len(ext["msg"]) == 1023
    assert header[6] == "9"
