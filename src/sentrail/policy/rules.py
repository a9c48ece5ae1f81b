"""Behavioural rules: CEL conditions compiled once, evaluated per tool call, memoised.

Evaluating CEL costs ~10 µs per call, mostly building the evaluation environment, so the
result of each rule is memoised on the exact values of the variables it references (a
rule that reads ``tool`` and ``step`` is evaluated once per distinct tool and step shape).
The variables are documented in docs/policy.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from operator import itemgetter
from typing import Any

import cel
import msgspec

from sentrail.errors import PolicyError
from sentrail.model.finding import Severity
from sentrail.policy.bundle import Rule
from sentrail.policy.match import GlobSet

VARIABLES = ("tool", "params", "step", "run", "history")
_MEMO_LIMIT = 100_000
_encode = msgspec.json.Encoder(order="deterministic").encode


def compile_condition(source: str) -> Any:
    """Compile a CEL expression; the error says what is wrong, without a traceback."""
    try:
        program = cel.compile(source)
    except (ValueError, RuntimeError) as exc:
        detail = str(exc).split("ERROR: <input>:", 1)[-1].strip()
        # cel draws the place under the source on extra lines ("| src", "| ...^"): the
        # error is printed on one line, so keep its first ("1:13: Syntax error: ...").
        detail = detail.splitlines()[0] if detail else detail
        raise PolicyError(f"CEL condition does not compile: {detail}") from None
    unknown = sorted(set(program.variables()) - set(VARIABLES))
    if unknown:
        raise PolicyError(
            f"CEL condition uses unknown variable(s) {', '.join(unknown)}; "
            f"available: {', '.join(VARIABLES)}"
        )
    return program


STATIC_VARIABLES = frozenset({"tool", "run"})  # fixed for one tool within one run


def top_level_conjuncts(source: str) -> list[str] | None:
    """``a && (b || c) && d`` -> ``["a", "(b || c)", "d"]``; None when the expression is not a
    plain conjunction at the top level (a top-level ``||`` or ``?:``, or text this simple
    scanner does not follow, such as triple-quoted strings)."""
    if '"""' in source or "'''" in source:
        return None
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    quote = ""
    while i < len(source):
        ch = source[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and source.startswith("&&", i):
            parts.append(source[start:i].strip())
            start = i + 2
            i += 2
            continue
        elif depth == 0 and (source.startswith("||", i) or ch == "?"):
            return None
        i += 1
    if quote or depth != 0:
        return None
    parts.append(source[start:].strip())
    return parts if all(parts) else None


def field_uses(source: str, variables: tuple[str, ...]) -> dict[str, tuple[str, ...] | None]:
    """For each variable, the fields the expression reads (``step.environment``), or None
    when the variable is also used whole (then the whole value matters)."""
    uses: dict[str, tuple[str, ...] | None] = {}
    for var in variables:
        whole = re.compile(rf"(?<![\w.]){re.escape(var)}\b(?!\s*\.\s*[A-Za-z_])")
        if whole.search(source):
            uses[var] = None
        else:
            fields = re.findall(rf"(?<![\w.]){re.escape(var)}\s*\.\s*([A-Za-z_]\w*)", source)
            uses[var] = tuple(sorted(set(fields)))
    return uses


Signature = tuple[tuple[str, tuple[str, ...] | None], ...]
# Variables sentrail builds itself, with one type per field and hashable values (tuples, not
# lists); ``params`` is the agent's data and is keyed with type tags.
TYPED_VARIABLES = frozenset({"tool", "step", "run", "history"})


@lru_cache(maxsize=1024)
def _getter(fields: tuple[str, ...]) -> Callable[[dict[str, Any]], Any]:
    return itemgetter(*fields)


_SCALARS = (str, int, float, bool, type(None))


def _key_part(value: Any) -> Any:
    """A hashable, type-exact stand-in for a value (``1``, ``1.0`` and ``true`` differ)."""
    if isinstance(value, _SCALARS) or value is _MISSING:
        return (value.__class__, value)
    return (bytes, _encode(value))


class StepVariables:
    """The CEL variables of one step, each built only when a rule asks for it.

    ``key(signature)`` is the memo key for the fields a rule reads (``step.environment``
    rather than the whole step), cached per step so rules that read the same fields share it.
    """

    __slots__ = ("_builders", "_keys", "_values")

    def __init__(self, builders: dict[str, Callable[[], Any]] | None = None) -> None:
        self._builders = builders or {}
        self._values: dict[str, Any] = {}
        self._keys: dict[Signature, tuple[Any, ...]] = {}

    def build(self, name: str) -> Any:
        """Build the variable ``name`` (asked once per step). A subclass may build the
        variables itself instead of taking a closure per variable and step."""
        return self._builders[name]()

    def value(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            v = self._values[name] = self.build(name)
            return v

    def key(self, signature: Signature) -> tuple[Any, ...]:
        hit = self._keys.get(signature)
        if hit is None:
            parts: list[Any] = []
            for name, fields in signature:
                full = self.value(name)
                if fields is None or not isinstance(full, dict):
                    parts.append(_key_part(full))
                elif name in TYPED_VARIABLES and fields:
                    try:  # fixed types and hashable values: the values are the key
                        parts.append(_getter(fields)(full))
                    except KeyError:  # a field the variable does not have
                        parts.extend(_key_part(full.get(f, _MISSING)) for f in fields)
                else:
                    parts.extend(_key_part(full.get(f, _MISSING)) for f in fields)
            hit = self._keys[signature] = tuple(parts)
        return hit

    def context(self, signature: Signature) -> dict[str, Any]:
        """The variables cut down to the fields read (absent fields stay absent: ``has()``)."""
        out: dict[str, Any] = {}
        for name, fields in signature:
            full = self.value(name)
            if fields is not None and isinstance(full, dict):
                full = {f: full[f] for f in fields if f in full}
            out[name] = full
        return out


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


class CompiledRule:
    __slots__ = (
        "_memo",
        "_owner",
        "_program",
        "_signature",
        "agents",
        "errors",
        "rest",
        "rule",
        "severity",
        "static",
        "static_exact",
        "tools",
    )

    def __init__(self, rule: Rule, *, prefilter: bool = True) -> None:
        self.rule = rule
        self.severity = Severity.parse(rule.severity)
        self._program = compile_condition(rule.condition)
        variables = tuple(sorted(self._program.variables()))
        fields = field_uses(rule.condition, variables)
        self._signature: Signature = tuple((v, fields[v]) for v in variables)
        self.static: CompiledRule | None = None
        # When the static conjuncts are exactly true for a tool in a run, the rule is its
        # other conjuncts (``rest``): keyed on fewer fields, its memo hits more often.
        self.static_exact: CompiledRule | None = None
        self.rest: CompiledRule | None = None
        self._owner = self  # whose ``errors`` an evaluation error counts in
        if prefilter:
            self.static, self.static_exact, self.rest = _split_rule(rule)
            if self.rest is not None:
                self.rest._owner = self  # the rest's errors are the rule's
        self.tools = GlobSet(rule.tools) if rule.tools else None
        self.agents = GlobSet(rule.agents) if rule.agents else None
        self._memo: dict[tuple[Any, ...], bool] = {}
        self.errors = 0

    @property
    def signature(self) -> Signature:
        """The variables and fields the condition reads."""
        return self._signature

    def applies(self, tool: str, agent_id: str) -> bool:
        if self.tools is not None and tool not in self.tools:
            return False
        return self.agents is None or agent_id in self.agents

    def matches(self, variables: StepVariables, *, errors_hold: bool = False) -> bool:
        """True when the condition holds. An evaluation error (a missing key, a type
        mismatch) counts as "does not hold" (as "may hold" with ``errors_hold``, for
        prefilters) and is counted in ``errors``."""
        key = variables.key(self._signature)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        try:
            result = self._program.execute(variables.context(self._signature))
        except Exception:  # any failure of a user's expression over hostile data
            self._owner.errors += 1
            result = errors_hold
        hit = result is True
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[key] = hit
        return hit


def _split_rule(
    rule: Rule,
) -> tuple[CompiledRule | None, CompiledRule | None, CompiledRule | None]:
    """The conjuncts of ``rule`` that read only ``tool`` and ``run``, as a rule of their own
    (twice: a prefilter where an error counts as "may hold", and an exact test), and the
    rule's other conjuncts as a rule.

    When the static conjuncts are false for a tool, the whole rule is false for every call
    of that tool in the run (``false && x`` is false in CEL even when ``x`` is an error), so
    the rule can be skipped without building its key. When they are exactly ``true``, the
    rule holds exactly when its other conjuncts do (CEL's ``&&`` is commutative, errors
    included: ``true && x`` is ``x``), so those alone are evaluated, memoised on the fewer
    fields they read."""
    parts = top_level_conjuncts(rule.condition)
    if parts is None or len(parts) < 2:
        return None, None, None
    static: list[str] = []
    rest: list[str] = []
    for part in parts:
        variables = set(compile_condition(part).variables())
        (static if variables <= STATIC_VARIABLES else rest).append(part)
    if not static:
        return None, None, None
    condition = " && ".join(f"({p})" for p in static)
    prefilter = CompiledRule(Rule(id=f"{rule.id}#static", condition=condition), prefilter=False)
    exact = CompiledRule(Rule(id=f"{rule.id}#static", condition=condition), prefilter=False)
    if not rest:
        return prefilter, exact, None
    condition = " && ".join(f"({p})" for p in rest)
    remainder = CompiledRule(Rule(id=f"{rule.id}#rest", condition=condition), prefilter=False)
    return prefilter, exact, remainder


_GROUP_MEMO_LIMIT = 16_384


class RulePlan:
    """The rules that can hold for one tool in one kind of run, grouped by the variables
    and fields they read (their signature).

    Each rule is judged by an evaluator: itself, or the rule's non-static conjuncts when
    its static ones are exactly true for this plan (:func:`_split_rule`). Evaluators of
    one signature have one memo key per step; the group remembers, per key, which of
    them hold. So a step costs one key and one lookup per signature, not one per rule
    (a bundle's rules are often a few shapes over many tools or values). The answer is
    that of :meth:`CompiledRule.matches` on each evaluator, in the rules' order: the
    group memo only remembers what those answers were for the same key.
    """

    __slots__ = ("_evaluators", "_groups", "rules")

    def __init__(
        self, rules: list[CompiledRule], evaluators: list[CompiledRule] | None = None
    ) -> None:
        self.rules = rules
        self._evaluators = rules if evaluators is None else evaluators
        assert len(self._evaluators) == len(rules)
        positions: dict[Signature, list[int]] = {}
        for n, compiled in enumerate(self._evaluators):
            positions.setdefault(compiled.signature, []).append(n)
        self._groups: list[tuple[Signature, tuple[int, ...], dict[tuple[Any, ...], Any]]] = [
            (signature, tuple(at), {}) for signature, at in positions.items()
        ]

    def matching(self, variables: StepVariables) -> list[CompiledRule]:
        """The rules whose condition holds for this step, in the plan's order."""
        hits: list[int] = []
        evaluators = self._evaluators
        for signature, at, memo in self._groups:
            key = variables.key(signature)
            held: tuple[int, ...] | None = memo.get(key)
            if held is None:
                held = _held(evaluators, at, variables)
                if len(memo) >= _GROUP_MEMO_LIMIT:
                    memo.clear()
                memo[key] = held
            if held:
                hits.extend(held)
        if not hits:
            return []
        if len(self._groups) > 1:
            hits.sort()
        rules = self.rules
        return [rules[n] for n in hits]


def _held(
    evaluators: list[CompiledRule], at: tuple[int, ...], variables: StepVariables
) -> tuple[int, ...]:
    """The positions in ``at`` whose evaluator holds for this step. Evaluators with the
    same condition text (rules that differ only in id, severity or tags) are evaluated
    once: a condition's answer depends only on its text and the variables."""
    if len(at) == 1:
        return at if evaluators[at[0]].matches(variables) else ()
    answers: dict[str, bool] = {}
    out: list[int] = []
    for n in at:
        compiled = evaluators[n]
        condition = compiled.rule.condition
        held = answers.get(condition)
        if held is None:
            held = answers[condition] = compiled.matches(variables)
        if held:
            out.append(n)
    return tuple(out)
