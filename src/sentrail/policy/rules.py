"""Behavioural rules: CEL conditions compiled once, evaluated per tool call, memoised.

Evaluating CEL costs ~10 µs per call, mostly building the evaluation environment, so the
result of each rule is memoised on the exact values of the variables it references (a
rule that reads ``tool`` and ``step`` is evaluated once per distinct tool and step shape).
The variables are documented in docs/policy.md.
"""

from __future__ import annotations

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


class StepVariables:
    """The CEL variables of one step, each built (and encoded) only when a rule asks."""

    __slots__ = ("_builders", "_encoded", "_values")

    def __init__(self, builders: dict[str, Callable[[], Any]]) -> None:
        self._builders = builders
        self._values: dict[str, Any] = {}
        self._encoded: dict[str, bytes] = {}

    def value(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            v = self._values[name] = self._builders[name]()
            return v

    def encoded(self, name: str) -> bytes:
        try:
            return self._encoded[name]
        except KeyError:
            e = self._encoded[name] = _encode(self.value(name))
            return e


class CompiledRule:
    __slots__ = ("_memo", "_program", "_variables", "agents", "errors", "rule", "severity", "tools")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.severity = Severity.parse(rule.severity)
        self._program = compile_condition(rule.condition)
        self._variables = tuple(sorted(self._program.variables()))
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
        key = tuple(variables.encoded(v) for v in self._variables)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        try:
            result = self._program.execute({v: variables.value(v) for v in self._variables})
        except (RuntimeError, ValueError, TypeError):
            self.errors += 1
            result = False
        hit = result is True
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[key] = hit
        return hit
