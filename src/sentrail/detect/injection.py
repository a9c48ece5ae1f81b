"""untrusted_instruction: instruction-like text inside a tool result (prompt injection).

Tool results are untrusted input. Every string of ``result.data`` (and ``result.error``)
long enough to hold an instruction is scored by :mod:`sentrail.detect.content_instructions`;
one finding per step names the best excerpt and its JSON path. Each injection is recorded
on ``ctx.injections`` for the taint and correlation detectors. Severity is a warning: an
injection the agent did not act on is suspicious, not harmful. Acting on it is judged by
``tainted_action`` (critical when the tainted value came from an injected step).
"""

from __future__ import annotations

from typing import Any, ClassVar

from sentrail.detect.base import Detector, StepFacts
from sentrail.detect.content_instructions import MIN_LEN, Instruction, has_cue, score_text
from sentrail.detect.text import SCAN_HEAD, SCAN_TAIL, bounded, iter_strings
from sentrail.model.finding import Category, Severity

MAX_STRINGS = 2_000  # strings scored per result


def scan_result(
    data: Any, root: str = "result.data", blob: str | None = None
) -> tuple[Instruction, str, int] | None:
    """The best instruction in a result value: (instruction, json path, scanned strings).

    ``blob`` (the result's JSON text) lets a benign result be dismissed with one search."""
    if data is None or isinstance(data, bool | int | float):
        return None
    if blob is not None and len(blob) < SCAN_HEAD and not has_cue(blob):
        return None
    if isinstance(data, str):
        if len(data) < MIN_LEN:
            return None
        found = score_text(bounded(data))
        return (found, root, 1) if found is not None else None
    best: tuple[Instruction, str, int] | None = None
    scanned = 0
    for path, text in iter_strings(data):
        if len(text) < MIN_LEN:
            continue
        scanned += 1
        if scanned > MAX_STRINGS:
            break
        found = score_text(bounded(text))
        if found is not None and (best is None or found.score > best[0].score):
            where = f"{root}.{path}" if path and not path.startswith("[") else f"{root}{path}"
            best = (found, where, scanned)
    return best


class UntrustedInstruction(Detector):
    name = "injection"
    category = Category.UNTRUSTED_INSTRUCTION
    rules: ClassVar[dict[str, tuple[Severity, ...]]] = {
        "untrusted_instruction.tool_result": (Severity.WARNING,),
    }

    def on_step(self, facts: StepFacts) -> None:
        res = facts.step.result
        if res is None:
            return
        blob = facts.result_text
        hit = scan_result(res.data, blob=blob)
        if hit is None and res.error is not None:
            hit = scan_result(res.error, "result.error", blob=blob)
        if hit is None:
            return
        found, path, _ = hit
        ctx = self.ctx
        ctx.injections.append((facts.index, found.excerpt))
        how = f" hidden in {found.concealment}" if found.concealment else ""
        evidence: dict[str, Any] = {
            "excerpt": found.excerpt,
            "path": path,
            "score": found.score,
            "features": found.features,
            "tool": facts.tool,
        }
        if found.concealment:
            evidence["concealment"] = found.concealment
        data = res.data
        if isinstance(data, str) and len(data) > SCAN_HEAD + SCAN_TAIL:
            evidence["scanned_chars"] = SCAN_HEAD + SCAN_TAIL
            evidence["total_chars"] = len(data)
        ctx.emit(
            "untrusted_instruction.tool_result",
            Category.UNTRUSTED_INSTRUCTION,
            Severity.WARNING,
            facts,
            f"Instruction-like text{how} in the result of {facts.tool or 'a step'} "
            f"({path}): {found.excerpt[:80]!r}",
            evidence,
        )
