"""Behavioural rules: CEL conditions compiled once, evaluated per tool call, memoised.

Evaluating CEL costs ~10 µs per call, mostly building the evaluation environment, so the
result of each rule is memoised on the exact values of the variables it references (a
rule that reads ``tool`` and ``step`` is evaluated once per distinct tool and step shape).
The variables are documented in docs/policy.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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
        raise PolicyError(f"CEL condition does not compile: {detail}") from None
    unknown = sorted(set(program.variables()) - set(VARIABLES))
    if unknown:
        raise PolicyError(
            f"CEL condition uses unknown variable(s) {', '.join(unknown)}; "
            f"available: {', '.join(VARIABLES)}"
        )
    return program


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


class StepVariables:
    """The CEL variables of one step, each built only when a rule asks for it.

    ``view(name, fields)`` is the variable cut down to the fields a rule reads, with its
    canonical encoding (the memo key); both are cached for the step.
    """

    __slots__ = ("_builders", "_values", "_views")

    def __init__(self, builders: dict[str, Callable[[], Any]]) -> None:
        self._builders = builders
        self._values: dict[str, Any] = {}
        self._views: dict[tuple[str, tuple[str, ...] | None], tuple[Any, bytes]] = {}

    def value(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            v = self._values[name] = self._builders[name]()
            return v

    def view(self, name: str, fields: tuple[str, ...] | None) -> tuple[Any, bytes]:
        key = (name, fields)
        hit = self._views.get(key)
        if hit is None:
            full = self.value(name)
            if fields is not None and isinstance(full, dict):
                full = {f: full[f] for f in fields if f in full}
            hit = self._views[key] = (full, _encode(full))
        return hit


class CompiledRule:
    __slots__ = (
        "_fields",
        "_memo",
        "_program",
        "_variables",
        "agents",
        "errors",
        "rule",
        "severity",
        "tools",
    )

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.severity = Severity.parse(rule.severity)
        self._program = compile_condition(rule.condition)
        self._variables = tuple(sorted(self._program.variables()))
        self._fields = field_uses(rule.condition, self._variables)
        self.tools = GlobSet(rule.tools) if rule.tools else None
        self.agents = GlobSet(rule.agents) if rule.agents else None
        self._memo: dict[tuple[bytes, ...], bool] = {}
        self.errors = 0

    def applies(self, tool: str, agent_id: str) -> bool:
        if self.tools is not None and tool not in self.tools:
            return False
        return self.agents is None or agent_id in self.agents

    def matches(self, variables: StepVariables) -> bool:
        """True when the condition holds. An evaluation error (a missing key, a type
        mismatch) counts as "does not hold" and is counted in ``errors``."""
        views = [variables.view(v, self._fields[v]) for v in self._variables]
        key = tuple(encoded for _, encoded in views)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        try:
            context = {v: value for v, (value, _) in zip(self._variables, views, strict=True)}
            result = self._program.execute(context)
        except (RuntimeError, ValueError, TypeError):
            self.errors += 1
            result = False
        hit = result is True
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[key] = hit
        return hit
