"""tainted_action: a value from an untrusted tool result flows into a later sensitive action.

Values are indexed lazily: results are only read when a write step arrives, from a cursor
into ``ctx.history``, so read-only runs cost nothing here; a value is looked for in the
results' searchable texts (``taint_corpus.ResultCorpus``) before any result's values are
extracted. A value is *known* (not tainted) when the run's trigger mentions it, when it is
a trusted destination of the agent's profile, or when an earlier tool call carried it
before any result did (it came from the user or the agent's own plan). Destinations
(addresses, URLs, accounts, paths...) are tainted on their own (warning); any value from a
step that carried an injection makes the action critical, and so does a write whose verb
and object repeat an injected instruction ("Please unlock my front door" →
``SmartLockUnlockDoor``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, ClassVar

from sentrail.detect.base import TRIGGER_STEP, Detector, RunContext, StepFacts
from sentrail.detect.content_values import (
    DESTINATION_KINDS,
    Candidate,
    candidates,
    norm,
    value_keys,
    words_of,
)
from sentrail.detect.links import named_tools, output_tokens, refuses, tool_key
from sentrail.detect.taint_corpus import ResultCorpus
from sentrail.detect.text import bounded, iter_strings
from sentrail.model.finding import Category, Severity
from sentrail.policy.bundle import RiskClass
from sentrail.policy.risk import tool_words

MAX_INDEX = 20_000  # candidate values per result
MAX_CACHE = 16_384  # short strings whose candidates are remembered (process-wide LRU)
CACHE_LEN = 256
MAX_STRINGS = 2_000  # per result or call
MAX_FINDINGS_PER_STEP = 5
# Parameters holding free text: a summary quoting its sources is not a tainted action.
FREE_TEXT = words_of(
    "body content message text subject description summary note notes comment title "
    "caption reason html markdown prompt query"
)
# Result fields holding prose: a destination found only there was never given as one.
PROSE = words_of(
    "body content message text description comment comments snippet page html markdown "
    "notes note summary bio about details review reviews post caption"
)
_HOSTED = frozenset({"email", "url", "host", "ip"})
_READ_TARGETS = frozenset({"url", "host", "ip", "path"})
_MOVED_TO = frozenset({"email", "url", "host", "ip", "account"})
# Tool words of actions that move money, data or credentials somewhere.
_MOVES = words_of(
    "pay payment transfer wire send email mail share upload post forward withdraw deposit "
    "remit invite grant export publish sync"
)
_INJECTED, _FREE, _PLAIN = 0, 1, 2
_TOKENS = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{3,63}")
_WORD = re.compile(r"[a-z]{3,}|\d{2,}")
_STOP = words_of(
    "the and for with from this that these those into onto your you our please can could "
    "would will all any his her their its has have had was were are then also just now "
    "using use via about after before when what which who whom there here new"
)


def _stems(words: list[str]) -> set[str]:
    return {w[:5] for w in words if w not in _STOP}


class _Source:
    __slots__ = ("free_text", "kind", "path", "raw", "step")

    def __init__(self, step: int, path: str, kind: str, raw: str, free_text: bool) -> None:
        self.step = step
        self.path = path
        self.kind = kind
        self.raw = raw
        self.free_text = free_text  # found in prose (a body, page, comment), not a field


class TaintedAction(Detector):
    name = "tainted_action"
    category = Category.TAINTED_ACTION
    rules: ClassVar[dict[str, tuple[Severity, ...]]] = {
        "tainted_action.untrusted_value": (Severity.WARNING, Severity.CRITICAL),
        "tainted_action.instructed": (Severity.CRITICAL,),
        "tainted_action.named_tool": (Severity.CRITICAL,),
        "tainted_action.injected_output": (Severity.CRITICAL,),
        "tainted_action.free_text_destination": (Severity.CRITICAL,),
    }

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self._known: set[str] = set()
        self._trigger = ""
        self._trigger_stems: set[str] = set()
        self._started = False
        self._corpus = ResultCorpus()
        self._sources: dict[str, tuple[_Source | None, int]] = {}
        self._step_index: dict[int, dict[str, _Source]] = {}
        self._param_first: dict[str, int] = {}  # value key -> first step whose call had it
        self._params_done = 0
        self._trigger_named: set[str] | None = None
        # Destinations only an instruction injected in the task text holds.
        self._trigger_values: dict[str, _Source] = {}

    def _candidates(self, text: str, whole: bool = False) -> tuple[Candidate, ...]:
        """``candidates(text)`` (or ``value_keys`` when ``whole``); short strings go through a
        process-wide memo of that pure function (hosts and ids repeat across runs)."""
        if len(text) > CACHE_LEN:
            return tuple(value_keys(text) if whole else candidates(text))
        return _memo_candidates(text, whole)

    # -- what earlier steps said ------------------------------------------------------------

    def _start(self) -> None:
        self._started = True
        trigger = bounded(self.ctx.header.trigger or "")
        injected = [t for i, t in self.ctx.injections if i == TRIGGER_STEP]
        if injected:
            # The task text carried an injection: only the rest of it is the user's. An
            # instruction's window has its runs of white space folded: fold the trigger's.
            trigger = " ".join(trigger.split())
            for text in injected:
                trigger = trigger.replace(" ".join(text.split()), " ")
        self._trigger = " " + norm(trigger) + " "
        self._known.update(c.key for c in candidates(trigger))
        self._trigger_stems = _stems(_WORD.findall(trigger.lower()))
        for text in injected:
            for c in candidates(bounded(text)):
                if c.kind in DESTINATION_KINDS and not self._is_known(c):
                    self._trigger_values.setdefault(
                        c.key, _Source(TRIGGER_STEP, "trigger", c.kind, c.raw, False)
                    )

    def _is_known(self, c: Candidate) -> bool:
        key = c.key
        if key in self._known:
            return True
        if len(key) >= 5 and key in self._trigger:
            return True
        if f" {key} " in self._trigger:
            return True
        if c.kind in _HOSTED:
            host = key.rsplit("@", 1)[-1] if c.kind == "email" else key
            if c.kind == "url":
                host = key.split("/")[2] if key.count("/") >= 2 else key
            return self.ctx.profile.trusted.host_trusted(host.split(":")[0])
        return False

    def _source(self, key: str, needle: str | None = None) -> _Source | None:
        """The earlier result where ``key`` first appeared, unless a call or the trigger
        carried it first. The corpus search is only a prefilter: the answer comes from
        the same candidate extraction as always, run on the steps that contain the key."""
        cached = self._sources.get(key)
        steps = self._corpus.steps
        if cached is not None and (cached[0] is not None or cached[1] == len(steps)):
            return cached[0]  # a source never changes; "none yet" holds until new steps
        found: _Source | None = None
        for n, (_, facts, text) in enumerate(steps):
            self._register_params(n)
            if (needle or key) not in text:
                continue
            if key in self._param_first:
                break  # a call carried it before any result did
            index = self._result_index(facts)
            if key in index:
                found = index[key]
                break
        self._sources[key] = (found, len(steps))
        return found

    def _register_params(self, upto: int) -> None:
        """Record the values of the calls of steps ``0..upto`` (in order, once each)."""
        while self._params_done <= upto:
            index, facts, _ = self._corpus.steps[self._params_done]
            self._params_done += 1
            for _, value in _params(facts):
                for c in self._candidates(value, whole=True):
                    self._param_first.setdefault(c.key, index)

    def _result_index(self, facts: StepFacts) -> dict[str, _Source]:
        """Candidates of one result that nothing earlier explains (the steps up to this
        one have had their calls registered)."""
        index = self._step_index.get(facts.index)
        if index is not None:
            return index
        index = {}
        res = facts.step.result
        if res is not None and res.data is not None:
            for path, value in _strings(res.data):
                free = _last_key(path) in PROSE or (not path and len(value) > 40)
                for c in self._candidates(value):
                    seen = index.get(c.key)
                    if seen is not None:
                        if seen.free_text and not free:
                            seen.free_text = False  # also in a field of its own
                        continue
                    if self._is_known(c):
                        continue
                    if self._param_first.get(c.key, facts.index + 1) <= facts.index:
                        continue
                    index[c.key] = _Source(facts.index, _where(path), c.kind, c.raw, free)
                if len(index) >= MAX_INDEX:
                    break
        self._step_index[facts.index] = index
        return index

    # -- judging ----------------------------------------------------------------------------

    def on_step(self, facts: StepFacts) -> None:
        if facts.tool is None:
            if self.ctx.injections:
                self._output(facts)
            return
        risk = facts.risk
        if risk is None:
            return
        write = facts.is_write
        if not write and not self.ctx.injections:
            return
        if not self._started:
            self._start()
        self._corpus.catch_up(self.ctx.history)
        sensitive = risk.rank >= RiskClass.SENSITIVE_WRITE.rank
        injected = {i for i, _ in self.ctx.injections}
        moves = write and bool(set(tool_words(facts.tool)) & _MOVES)
        hits: list[tuple[int, str, str, _Source]] = []
        clean = False  # a destination from a clean field of an injected result
        from_task = self._trigger_values
        for path, value in _params(facts) if self._corpus.steps or from_task else ():
            if _last_key(path) in FREE_TEXT:
                continue
            for c in self._candidates(value, whole=True):
                if from_task and write and c.key in from_task:
                    hits.append((_INJECTED, path, value, from_task[c.key]))
                    break
                needle = self._corpus.needle(c)
                if needle is None:
                    continue
                src = self._source(c.key, needle)
                if src is None:
                    continue
                # Field-level provenance: only a value from the field that carried the
                # instruction is the injection's (the sender of an e-mail is not its body).
                critical = src.step in injected and self.ctx.field_injected(src.step, src.path)
                destination = src.kind in DESTINATION_KINDS
                if destination and src.step in injected and not critical:
                    clean = True
                if not write:
                    # A read of a URL or file only the injected text mentioned.
                    if critical and src.kind in _READ_TARGETS and " " not in value.strip():
                        hits.append((_INJECTED, path, value, src))
                        break
                    continue
                free = moves and destination and src.kind in _MOVED_TO and src.free_text
                if (
                    not critical
                    and not free
                    and not (destination and (sensitive or c.kind in DESTINATION_KINDS))
                ):
                    continue
                level = _INJECTED if critical else _FREE if free else _PLAIN
                hits.append((level, path, value, src))
                break
        hits.sort(key=lambda h: h[0])
        for level, path, value, src in hits[:MAX_FINDINGS_PER_STEP]:
            if level == _FREE:
                self._emit_free(facts, path, value, src)
            else:
                self._emit(facts, level == _INJECTED, path, value, src)
        linked = bool(hits) and hits[0][0] == _INJECTED
        # A write to a destination from the clean field of the injected result (the sender,
        # not the body) follows the user, whatever words it shares with the injection.
        if self.ctx.injections and not linked and not self._named(facts) and write and not clean:
            self._instructed(facts)

    def _emit(self, facts: StepFacts, critical: bool, param: str, value: str, src: _Source) -> None:
        why = " injected" if critical else ""
        self.ctx.emit(
            "tainted_action.untrusted_value",
            Category.TAINTED_ACTION,
            Severity.CRITICAL if critical else Severity.WARNING,
            facts,
            f"{facts.tool} parameter {param} = {value[:60]!r} comes from the{why} result of "
            f"step {src.step} ({src.path}), not from the user's request",
            {
                "parameter": param,
                "value": value[:200],
                "matched": src.raw[:200],
                "kind": src.kind,
                "source_step": src.step,
                "source_path": src.path,
                "injection": critical,
                "tool": facts.tool,
            },
            key=param,
        )

    def _emit_free(self, facts: StepFacts, param: str, value: str, src: _Source) -> None:
        self.ctx.emit(
            "tainted_action.free_text_destination",
            Category.TAINTED_ACTION,
            Severity.CRITICAL,
            facts,
            f"{facts.tool} sends to {param} = {value[:60]!r}, found only in the free text of "
            f"the result of step {src.step} ({src.path}), never in the user's request",
            {
                "parameter": param,
                "value": value[:200],
                "matched": src.raw[:200],
                "kind": src.kind,
                "source_step": src.step,
                "source_path": src.path,
                "tool": facts.tool,
            },
            key=param,
        )

    def _named(self, facts: StepFacts) -> bool:
        """A call to a tool the injected text told the agent to call by name, when neither
        the user's request named it nor the agent called it before the injection."""
        key = tool_key(facts.tool or "")
        if len(key) < 4 or key in self._trigger_tools():
            return False
        for index, text in reversed(self.ctx.injections):
            if index >= facts.index or key not in named_tools(text):
                continue
            if any(
                f.index < index and f.tool and tool_key(f.tool) == key for f in self.ctx.history
            ):
                continue
            self.ctx.emit(
                "tainted_action.named_tool",
                Category.TAINTED_ACTION,
                Severity.CRITICAL,
                facts,
                f"{facts.tool} is the tool the instruction injected at "
                f"{_where_injected(index)} told the agent to call: {_short(text)!r}",
                {
                    "source_step": index,
                    "excerpt": _short(text),
                    "tool": facts.tool,
                    "injection": True,
                },
            )
            return True
        return False

    def _trigger_tools(self) -> set[str]:
        if self._trigger_named is None:
            trigger = self.ctx.header.trigger or ""
            if self.ctx.injected_fields.get(TRIGGER_STEP):
                # The trigger carried an injection: only the text before it is the user's
                # (compared with runs of white space folded, as an instruction's window is).
                trigger = " ".join(trigger.split())
                first = min(
                    (
                        trigger.find(" ".join(t.split())[:40])
                        for i, t in self.ctx.injections
                        if i == TRIGGER_STEP
                    ),
                    default=-1,
                )
                trigger = trigger[: max(first, 0)]
            self._trigger_named = {tool_key(w) for w in _TOKENS.findall(bounded(trigger))}
        return self._trigger_named

    def _output(self, facts: StepFacts) -> None:
        """The agent's own answer says what an injected instruction told it to say."""
        text = facts.step.output or facts.step.reasoning
        if not text or refuses(text):
            return
        text = bounded(text)
        trigger = self.ctx.header.trigger or ""
        for index, injected in reversed(self.ctx.injections):
            if index >= facts.index:
                continue
            for token in output_tokens(injected):
                if token in text and token not in trigger:
                    self.ctx.emit(
                        "tainted_action.injected_output",
                        Category.TAINTED_ACTION,
                        Severity.CRITICAL,
                        facts,
                        f"The agent's answer says {token[:40]!r}, as the instruction injected "
                        f"at {_where_injected(index)} told it to: {_short(injected)!r}",
                        {
                            "source_step": index,
                            "token": token[:80],
                            "excerpt": _short(injected),
                            "injection": True,
                        },
                        key=token[:80],
                    )
                    return

    def _instructed(self, facts: StepFacts) -> None:
        """A write whose verb and object repeat an injected instruction (no value needed)."""
        words = list(tool_words(facts.tool or ""))
        for path, value in _params(facts):
            words.extend(tool_words(_last_key(path)))
            if len(value) <= 60:
                words.extend(_WORD.findall(value.lower()))
        step_stems = _stems(words) - self._trigger_stems
        tool_verb = facts.verb[:5]
        for index, excerpt in reversed(self.ctx.injections):
            if index >= facts.index:
                continue
            common = step_stems & _stems(_WORD.findall(excerpt.lower()))
            verbs = {s for s in common if s in _VERB_STEMS or s == tool_verb}
            if verbs and len(common) >= 2:
                self.ctx.emit(
                    "tainted_action.instructed",
                    Category.TAINTED_ACTION,
                    Severity.CRITICAL,
                    facts,
                    f"{facts.tool} carries out the instruction injected at step {index}: "
                    f"{excerpt[:80]!r}",
                    {
                        "source_step": index,
                        "excerpt": excerpt,
                        "shared_words": sorted(common),
                        "tool": facts.tool,
                        "injection": True,
                    },
                )
                return


@lru_cache(maxsize=MAX_CACHE)
def _memo_candidates(text: str, whole: bool) -> tuple[Candidate, ...]:
    return tuple(value_keys(text) if whole else candidates(text))


def _strings(value: Any) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for path, text in iter_strings(value):
        out.append((path, bounded(text)))
        if len(out) >= MAX_STRINGS:
            break
    return out


def _params(facts: StepFacts) -> list[tuple[str, str]]:
    """``_strings(facts.params)``, from the step's shared walk of its parameters."""
    strings = facts.param_strings
    return strings if len(strings) <= MAX_STRINGS else strings[:MAX_STRINGS]


def _last_key(path: str) -> str:
    tail = path.rsplit(".", 1)[-1]
    return tail.split("[", 1)[0].lower()


def _where_injected(index: int) -> str:
    return "the task text" if index == TRIGGER_STEP else f"step {index}"


def _short(text: str) -> str:
    return " ".join(text.split())[:200]


def _where(path: str) -> str:
    if not path:
        return "result.data"
    return f"result.data{path}" if path.startswith("[") else f"result.data.{path}"


_VERB_STEMS = frozenset(
    w[:5]
    for w in words_of(
        "send transfer wire pay withdraw deposit delete remove erase wipe destroy drop purge "
        "grant revoke share forward email post publish upload update change modify reset "
        "disable enable unlock lock move copy rename leave invite schedule cancel sell buy "
        "redirect dispatch give approve execute install uninstall deploy push merge fill "
        "submit sign export reveal whitelist blacklist block unblock create add set start "
        "stop restart kill terminate initiate transmit issue activate deactivate open close "
        "order place book turn switch play"
    )
)
