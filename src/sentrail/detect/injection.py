"""untrusted_instruction: instruction-like text inside a tool result (prompt injection).

Tool results are untrusted input. Every string of ``result.data`` (and ``result.error``)
long enough to hold an instruction is scored by :mod:`sentrail.detect.content_instructions`;
one finding per step names the best excerpt and its JSON path. *Every* instruction found
in the step (not only the best) is recorded on ``ctx.injections`` with its whole window
text, and the fields it sat in on ``ctx.injected_fields``, for the taint and correlation
detectors. When no single string holds an instruction but some came close, the result's
strings are judged once more joined together (an instruction split across fields).

The trigger is read too. A trigger the trace or the policy marks as coming from an
untrusted channel (an e-mail, a ticket, a web form: ``trigger_source``, or the profile's
``untrusted_triggers``) is scanned like a tool result; any other trigger only for override
phrases and role markers, which no user types to their own agent.

Severity is a warning: an injection the agent did not act on is suspicious, not harmful.
Acting on it is judged by ``tainted_action``.

A step may carry the tool list the agent was offered (``tools``, as an MCP ``tools/list``
returns it). A tool whose description or input schema differs from an earlier listing in
the same run was changed mid-session (``tool_changed``): a warning, critical when the new
description holds an instruction (a rug pull: the server rewrote what the agent reads as
trusted). That instruction is recorded like one found in a result.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mypy_extensions import mypyc_attr

from sentrail.detect.base import TRIGGER_STEP, Detector, RunContext, StepFacts
from sentrail.detect.content_instructions import (
    MIN_LEN,
    THRESHOLD,
    Instruction,
    find_instructions,
)
from sentrail.detect.content_prefilter import has_cue
from sentrail.detect.text import SCAN_HEAD, SCAN_TAIL, bounded, iter_strings, iter_texts, json_text
from sentrail.model.finding import Category, Severity

MAX_STRINGS = 2_000  # strings scored per result
MAX_PER_STEP = 16  # instructions recorded per step
MAX_JOINED = 16 * 1024  # characters of a result's strings judged joined together
NEAR_MISS = 2
MAX_TOOLS = 1_000  # tools remembered per run
MAX_DESCRIPTION = 8 * 1024
# A result's JSON text is tested for a cue as a whole only when short: then it usually has
# none (a record, a status) and one test dismisses every string. Longer texts nearly always
# have one (prose says "you", "and", "i": every result of 1 KB or more in the content
# benchmark did), and each string is tested anyway.
BLOB_CUE_MAX = 1024


def scan_all(
    data: Any, root: str = "result.data", blob: str | None = None
) -> list[tuple[Instruction, str]]:
    """Every instruction in a result value, best first: (instruction, json path).

    ``blob`` (the result's JSON text) lets a benign result be dismissed with one search."""
    if data is None or isinstance(data, bool | int | float):
        return []
    if blob is not None and len(blob) < BLOB_CUE_MAX and not has_cue(blob):
        return []
    if isinstance(data, str):
        if len(data) < MIN_LEN:
            return []
        found, _ = find_instructions(bounded(data))
        return [(i, root) for i in found]
    out: list[tuple[Instruction, str]] = []
    scanned = 0
    near: list[str] = []
    strings = 0
    # Paths are built only as far as a string that needs its path (n only grows).
    walk = iter_strings(data)
    paths: list[str] = []
    for n, text in enumerate(iter_texts(data)):
        strings += 1
        if len(text) < MIN_LEN:
            continue
        scanned += 1
        if scanned > MAX_STRINGS:
            break
        found, best = find_instructions(bounded(text))
        if not found and best < NEAR_MISS:
            continue
        while len(paths) <= n:
            paths.append(next(walk)[0])
        path = paths[n]
        where = f"{root}.{path}" if path and not path.startswith("[") else f"{root}{path}"
        out.extend((i, where) for i in found)
        if not found and best >= NEAR_MISS:
            near.append(where)
    if not out and near and strings > 1:
        joined, _ = find_instructions(_joined(data))
        for ins in joined:
            ins.features.append("split across fields")
        out.extend((i, root) for i in joined if i.score >= THRESHOLD)
    out.sort(key=lambda h: -h[0].score)
    return out


def _joined(data: Any) -> str:
    """The strings of a result joined by newlines, bounded (fields judged together)."""
    parts: list[str] = []
    size = 0
    for text in iter_texts(data):
        if len(text) >= 3:
            parts.append(text[: MAX_JOINED - size])
            size += len(parts[-1])
            if size >= MAX_JOINED:
                break
    return "\n".join(parts)


def scan_result(
    data: Any, root: str = "result.data", blob: str | None = None
) -> tuple[Instruction, str, int] | None:
    """The best instruction in a result value: (instruction, json path, how many found)."""
    hits = scan_all(data, root, blob)
    if not hits:
        return None
    return hits[0][0], hits[0][1], len(hits)


@mypyc_attr(allow_interpreted_subclasses=True)  # the hooks' RecordedInstruction
class UntrustedInstruction(Detector):
    name = "injection"
    category = Category.UNTRUSTED_INSTRUCTION
    rules: ClassVar[dict[str, tuple[Severity, ...]]] = {
        "untrusted_instruction.tool_result": (Severity.WARNING,),
        "untrusted_instruction.task_text": (Severity.WARNING,),
        "untrusted_instruction.tool_changed": (Severity.WARNING, Severity.CRITICAL),
    }

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self._trigger_done = False
        self._tools: dict[str, tuple[str, str]] = {}  # name -> (description, schema text)

    def on_step(self, facts: StepFacts) -> None:
        if not self._trigger_done:
            self._trigger_done = True
            self._scan_trigger(facts)
        if facts.step.tools is not None:
            self._tools_listed(facts)
        res = facts.step.result
        if res is None:
            return
        blob = facts.result_text
        hits = scan_all(res.data, blob=blob)
        if res.error is not None:
            hits.extend(scan_all(res.error, "result.error", blob=blob))
        if not hits:
            return
        ctx = self.ctx
        for ins, path in hits[:MAX_PER_STEP]:
            ctx.add_injection(facts.index, ins.text, path)
        found, path = hits[0]
        how = f" hidden in {found.concealment}" if found.concealment else ""
        evidence: dict[str, Any] = {
            "excerpt": found.excerpt,
            "path": path,
            "score": found.score,
            "features": found.features,
            "tool": facts.tool,
            "instructions": len(hits),
            "paths": sorted({p for _, p in hits})[:8],
        }
        if found.concealment:
            evidence["concealment"] = found.concealment
        data = res.data
        if isinstance(data, str) and len(data) > SCAN_HEAD + SCAN_TAIL:
            evidence["scanned_chars"] = SCAN_HEAD + SCAN_TAIL
            evidence["total_chars"] = len(data)
        tool = facts.tool or facts.result_of or "a step"
        ctx.emit(
            "untrusted_instruction.tool_result",
            Category.UNTRUSTED_INSTRUCTION,
            Severity.WARNING,
            facts,
            f"Instruction-like text{how} in the result of {tool} ({path}): {found.excerpt[:80]!r}",
            evidence,
        )

    def _tools_listed(self, facts: StepFacts) -> None:
        known = self._tools
        for tool in (facts.step.tools or [])[:MAX_TOOLS]:
            description = (tool.description or "")[:MAX_DESCRIPTION]
            schema = json_text(tool.input_schema)[:MAX_DESCRIPTION] if tool.input_schema else ""
            before = known.get(tool.name)
            if before is None:
                if len(known) < MAX_TOOLS:
                    known[tool.name] = (description, schema)
                continue
            if before == (description, schema):
                continue
            known[tool.name] = (description, schema)
            found, _ = find_instructions(description) if len(description) >= MIN_LEN else ([], 0)
            path = f"tools[{tool.name}].description"
            for ins in found[:MAX_PER_STEP]:
                self.ctx.add_injection(facts.index, ins.text, path)
            what = "description" if before[0] != description else "input schema"
            evidence: dict[str, Any] = {
                "tool": tool.name,
                "changed": what,
                "instruction": bool(found),
                "before": before[0][:200],
                "after": description[:200],
            }
            if found:
                evidence["excerpt"] = found[0].excerpt
            self.ctx.emit(
                "untrusted_instruction.tool_changed",
                Category.UNTRUSTED_INSTRUCTION,
                Severity.CRITICAL if found else Severity.WARNING,
                facts,
                f"The {what} of tool {tool.name} changed mid-session"
                + (f", and now holds an instruction: {found[0].excerpt[:80]!r}" if found else ""),
                evidence,
                key=tool.name,
            )

    def _scan_trigger(self, facts: StepFacts) -> None:
        ctx = self.ctx
        trigger = ctx.header.trigger
        if not trigger or len(trigger) < MIN_LEN:
            return
        untrusted = ctx.trigger_untrusted
        found, _ = find_instructions(bounded(trigger))
        if not untrusted:
            found = [i for i in found if i.features[0] == "override"]
        if not found:
            return
        for ins in found[:MAX_PER_STEP]:
            ctx.add_injection(TRIGGER_STEP, ins.text, "trigger")
        best = found[0]
        why = "from an untrusted channel" if untrusted else "with an override or role marker"
        ctx.emit(
            "untrusted_instruction.task_text",
            Category.UNTRUSTED_INSTRUCTION,
            Severity.WARNING,
            None,
            f"Instruction-like text in the task text ({why}): {best.excerpt[:80]!r}",
            {
                "excerpt": best.excerpt,
                "path": "trigger",
                "score": best.score,
                "features": best.features,
                "untrusted_channel": untrusted,
                "instructions": len(found),
            },
        )
