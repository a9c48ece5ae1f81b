"""policy_violation (dangerous actions): a call whose arguments match the rule pack.

The pack is data in the policy bundle (:mod:`sentrail.policy.dangerous`): recursive
deletes, DROP/TRUNCATE, remote content piped into a shell, reverse shells, persistence,
permission and sudoers changes, disabling logging or security controls, credential files,
and secrets sent out. Each call's argument strings are read once, bounded; free-text
fields (an e-mail body, a post) count only for ``outgoing`` patterns and only when the tool
sends something out. A pattern runs only when one of its literal hints is present.
"""

from __future__ import annotations

import re
from typing import ClassVar

from sentrail.detect.base import Detector, RunContext, StepFacts
from sentrail.detect.content_values import words_of
from sentrail.detect.text import hint_view
from sentrail.model.finding import Category, Severity
from sentrail.policy.compiled import CompiledAction
from sentrail.policy.risk import tool_words

MAX_TEXT = 16 * 1024  # characters of arguments read per call
MAX_PER_STEP = 3
# A word up to two before a tool name's harm words that turns them around.
_DEFUSING = frozenset({"anti", "counter", "simulated", "mock"})
MAX_TOOL_MEMO = 4096  # tool names whose pattern hit a policy remembers
FREE_TEXT = words_of(
    "body content message text subject description summary note notes comment title "
    "caption reason html markdown"
)
# What a shell removes before it runs a command, and a writer can put in to dodge the
# pack: ${IFS} and tabs for spaces, empty quotes ("r''m"), a backslash before a letter
# ("r\m") or a newline (a continued line). Read as the shell reads them.
_SHELL_NOISE = re.compile(r"\$\{IFS\}|\$IFS\b|\t|''|\"\"|\\(?=[a-z])|\\\n", re.I)
_NOISE_CHARS = ("$", "\t", "''", '""', "\\")


def _unnoise(m: re.Match[str]) -> str:
    return " " if m.group(0)[0] in "$\t" else ""


def shell_read(text: str) -> str:
    """``text`` with what a shell would remove or read as a space taken out."""
    if not any(c in text for c in _NOISE_CHARS):
        return text
    read, n = _SHELL_NOISE.subn(_unnoise, text)
    return read if n else text


_SENDS = words_of(
    "send post upload email mail share forward publish tweet sms message transmit export "
    "webhook http request"
)


def _texts(strings: list[tuple[str, str]]) -> tuple[str, str, bool]:
    """(arguments outside free-text fields as a shell reads them, all arguments, whether
    the shell's reading changed anything), each bounded, from the parameters' (path, text)
    list (``StepFacts.param_strings``); the same object twice when they are the same text."""
    code: list[str] = []
    everything: list[str] = []
    size = 0
    for path, value in strings:
        value = value[:MAX_TEXT]
        key = path.rsplit(".", 1)[-1].split("[", 1)[0].lower()
        everything.append(value)
        if key not in FREE_TEXT:
            code.append(value)
        size += len(value)
        if size >= MAX_TEXT:
            break
    all_text = "\n".join(everything)
    joined = "\n".join(code)
    read = shell_read(joined)
    if read is joined and len(code) == len(everything):
        return all_text, all_text, False
    return read, all_text, read is not joined


class DangerousActions(Detector):
    name = "dangerous_action"
    category = Category.POLICY_VIOLATION
    rules: ClassVar[dict[str, tuple[Severity, ...]]] = {
        "policy.dangerous.*": (Severity.INFO, Severity.WARNING, Severity.CRITICAL),
    }

    def __init__(self, ctx: RunContext) -> None:
        # Not inherited: see Detector (compiled, an inherited __init__ leaks ctx).
        super().__init__(ctx)

    def on_step(self, facts: StepFacts) -> None:
        if facts.tool is None:
            return
        pack = self.ctx.policy.dangerous
        if not pack:
            return
        if self.ctx.policy.tool_patterns and self._tool_named(facts):
            return
        if not facts.params:
            return
        code, everything, noisy = _texts(facts.param_strings)
        if not everything:
            return
        # Hints are literals with single spaces; the expressions read any run of white space
        # (``\s+``): the hints are looked for with each run one space ("bash  -i").
        low_all = hint_view(everything)
        hints = self.ctx.policy.dangerous_hints
        # the hints in the arguments, or as the shell reads them ("rm${IFS}-rf")
        low_code = low_all if code is everything else hint_view(code)
        if (
            hints is not None
            and hints.search(low_all) is None
            and (not noisy or hints.search(low_code) is None)
        ):
            return
        sends = bool(set(tool_words(facts.tool)) & _SENDS) and facts.is_write
        trigger = self._requested_by()
        fired = 0
        for action in pack:
            if action.pattern.scope == "tool":
                continue
            outgoing = action.pattern.scope == "outgoing"
            if outgoing and not sends:
                continue
            text, low = (everything, low_all) if outgoing else (code, low_code)
            if action.hints and not any(h in low for h in action.hints):
                continue
            m = action.regex.search(text)
            if m is None:
                continue
            self._report(facts, action, m.group(0), m.group(0).strip()[:80], trigger)
            fired += 1
            if fired >= MAX_PER_STEP:
                return

    def _tool_named(self, facts: StepFacts) -> bool:
        """``scope: tool`` patterns against the tool's name read as words."""
        tool = (facts.tool or "")[:200]
        policy = self.ctx.policy
        memo = policy.tool_pattern_hits
        if tool in memo:
            hit = memo[tool]
        else:
            hit = tool_pattern_hit(policy.tool_patterns, tool)
            if len(memo) >= MAX_TOOL_MEMO:
                memo.clear()
            memo[tool] = hit
        if hit is None:
            return False
        action, matched = hit
        trigger = self._requested_by()
        self._report(facts, action, matched, matched, trigger)
        return True

    def _requested_by(self) -> str:
        """The user's request, lower-cased: none when the task text came from an untrusted
        channel (a ticket's or an e-mail's words are the sender's, and asking for the
        action in them must not make it a warning)."""
        if self.ctx.trigger_untrusted:
            return ""
        return (self.ctx.header.trigger or "").lower()

    def _report(
        self, facts: StepFacts, action: CompiledAction, matched: str, shown: str, trigger: str
    ) -> None:
        """One finding of a pattern: critical unless the user's request asked for it."""
        severity = action.severity
        requested = next((w for w in action.requested if w in trigger), None)
        if requested and severity is Severity.CRITICAL:
            severity = Severity.WARNING
        p = action.pattern
        self.ctx.emit(
            f"policy.dangerous.{p.id}",
            Category.POLICY_VIOLATION,
            severity,
            facts,
            f"Dangerous action {p.id} — {p.description} ({facts.tool}: {shown!r})",
            {
                "pattern_id": p.id,
                "matched": matched[:200],
                "tool": facts.tool,
                "requested_by_user": requested,
                "status": facts.status,
            },
            tags=["OWASP-ASI02", "AML.T0048"],
            key=p.id,
        )


def tool_pattern_hit(
    patterns: list[CompiledAction], tool: str
) -> tuple[CompiledAction, str] | None:
    """The first ``scope: tool`` pattern the tool's name, read as words, matches, and the
    words it matched."""
    words = " ".join(tool_words(tool[:200]))
    for action in patterns:
        if action.hints and not any(h in words for h in action.hints):
            continue
        for m in action.regex.finditer(words):
            # "anti money laundering", "simulated phishing": a name against the harm.
            if _DEFUSING.isdisjoint(words[: m.start()].split()[-2:]):
                return action, m.group(0)
    return None
