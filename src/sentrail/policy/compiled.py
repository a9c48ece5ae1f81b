"""The policy as the engine uses it: profiles resolved per agent, matchers compiled once."""

from __future__ import annotations

import datetime as dt
import re
from fnmatch import fnmatchcase

from sentrail.model.finding import Severity
from sentrail.policy.bundle import ActionPattern, AgentProfile, PolicyBundle, Rule, Suppression
from sentrail.policy.dangerous import DEFAULT_DANGEROUS_ACTIONS, merge
from sentrail.policy.load import LoadedBundle
from sentrail.policy.match import GlobSet, TrustedDestinations
from sentrail.policy.risk import ToolRegistry
from sentrail.policy.rules import CompiledRule, RulePlan, StepVariables

BUILTIN_RULES = (
    Rule(
        id="builtin.no-unapproved-prod-destruction",
        description="No destructive action in production without an approval",
        severity="critical",
        condition='tool.risk == "destructive" && step.environment == "prod" && !step.has_approval',
        tags=["OWASP-ASI02", "AML.T0048"],
    ),
)


MAX_PLANS = 20_000  # rule plans (and agents' filter results) cached per policy


class CompiledAction:
    """A dangerous-action pattern, compiled once (case-insensitive, multi-line)."""

    __slots__ = ("hints", "pattern", "regex", "requested", "severity")

    def __init__(self, pattern: ActionPattern) -> None:
        self.pattern = pattern
        self.regex = re.compile(pattern.pattern, re.I | re.M)
        self.hints = tuple(h.lower() for h in pattern.hints)
        self.requested = tuple(w.lower() for w in pattern.requested_words)
        self.severity = Severity.parse(pattern.severity)


class Profile:
    """One agent's resolved profile."""

    __slots__ = (
        "approved_tools",
        "boundary",
        "environments",
        "etl_destinations",
        "matched",
        "profile",
        "sensitive_permissions",
        "trusted",
        "untrusted_triggers",
    )

    def __init__(self, profile: AgentProfile, matched: bool) -> None:
        self.profile = profile
        self.matched = matched
        pb = profile.permission_boundary
        self.boundary = GlobSet(pb) if pb is not None else None
        at = profile.approved_tools
        self.approved_tools = GlobSet(at) if at is not None else None
        self.environments = frozenset(profile.environments) if profile.environments else None
        self.trusted = TrustedDestinations(profile.trusted_networks, profile.trusted_domains)
        self.sensitive_permissions = GlobSet(profile.exfiltration.sensitive_permissions)
        self.etl_destinations = GlobSet(a.destination for a in profile.etl_allowances)
        ut = profile.untrusted_triggers
        self.untrusted_triggers = GlobSet(ut) if ut else None

    @property
    def name(self) -> str:
        return self.profile.name or self.profile.id


class Policy:
    """A loaded bundle (or the built-in defaults when ``loaded`` is None)."""

    def __init__(self, loaded: LoadedBundle | None = None) -> None:
        bundle = loaded.bundle if loaded is not None else PolicyBundle(name="built-in defaults")
        self.bundle = bundle
        self.sha256 = loaded.sha256 if loaded is not None else None
        self.path = loaded.path if loaded is not None else None
        self.name = bundle.name
        self.registry = ToolRegistry(bundle.tools)
        rules = bundle.rules if loaded is not None else list(BUILTIN_RULES)
        self.rules = [CompiledRule(r) for r in rules]
        # The rules that can hold for a tool, given the run's fields that static conjuncts
        # read: shared by every run of the process (a run used to filter on its own).
        self._run_fields = _static_run_fields(self.rules)
        self._for_tool: dict[tuple[object, ...], RulePlan] = {}
        self._agent_filtered = tuple(
            (n, r.agents) for n, r in enumerate(self.rules) if r.agents is not None
        )
        self._by_agent: dict[str, tuple[int, ...]] = {}
        self.suppressions = list(bundle.exceptions)
        self.dangerous = [
            CompiledAction(p) for p in merge(DEFAULT_DANGEROUS_ACTIONS, bundle.dangerous_actions)
        ]
        self.tool_patterns = [a for a in self.dangerous if a.pattern.scope == "tool"]
        # Tool name -> the first tool pattern it matches and the matched words (None: none).
        # Tool names repeat across calls and runs: each is read once (bounded).
        self.tool_pattern_hits: dict[str, tuple[CompiledAction, str] | None] = {}
        # One search for any pattern's hints: most calls have none and skip the pack.
        hints = {h for a in self.dangerous if a.pattern.scope != "tool" for h in a.hints}
        no_hint = any(not a.hints for a in self.dangerous if a.pattern.scope != "tool")
        self.dangerous_hints: re.Pattern[str] | None = (
            None if no_hint or not hints else re.compile("|".join(map(re.escape, sorted(hints))))
        )
        self._profiles = [(GlobSet([p.id]), p) for p in bundle.agents]
        self._default = Profile(bundle.default_profile or AgentProfile(id="*"), matched=False)
        self._cache: dict[str, Profile] = {}

    def rules_for(
        self, tool: str, agent_id: str, run: dict[str, object], variables: StepVariables
    ) -> list[CompiledRule]:
        """The rules whose tool/agent filters and static conjuncts admit ``tool`` in a run
        with these ``run`` fields (cached per tool, agent and the fields read)."""
        return self.rule_plan(tool, agent_id, run, variables).rules

    def rule_plan(
        self, tool: str, agent_id: str, run: dict[str, object], variables: StepVariables
    ) -> RulePlan:
        """:meth:`rules_for` as a :class:`RulePlan` (the rules grouped by what they read).

        Cached on what the filter reads, so runs of many agents share one plan: the tool's
        ``tool`` variable (its ``approved`` field is the agent's profile's), which agent
        globs admit ``agent_id``, and the ``run`` fields static conjuncts read."""
        fields = self._run_fields
        run_key = tuple(run.items()) if fields is None else tuple(run.get(f) for f in fields)
        tool_var = variables.value("tool")
        tool_key = tuple(tool_var.items()) if isinstance(tool_var, dict) else tool_var
        key = (tool, tool_key, self._agent_rules(agent_id), run_key)
        hit = self._for_tool.get(key)
        if hit is None:
            rules = [
                r
                for r in self.rules
                if r.applies(tool, agent_id)
                and (r.static is None or r.static.matches(variables, errors_hold=True))
            ]
            hit = RulePlan(
                rules,
                [
                    r.rest
                    if r.rest is not None
                    and r.static_exact is not None
                    and r.static_exact.matches(variables)
                    else r
                    for r in rules
                ],
            )
            if len(self._for_tool) >= MAX_PLANS:
                self._for_tool.clear()
            self._for_tool[key] = hit
        return hit

    def _agent_rules(self, agent_id: str) -> tuple[int, ...]:
        """The positions of the rules with an ``agents`` filter that admits ``agent_id``
        (the only way the agent's id enters the filter besides its profile)."""
        if not self._agent_filtered:
            return ()
        hit = self._by_agent.get(agent_id)
        if hit is None:
            hit = tuple(n for n, globs in self._agent_filtered if agent_id in globs)
            if len(self._by_agent) >= MAX_PLANS:
                self._by_agent.clear()
            self._by_agent[agent_id] = hit
        return hit

    def profile_for(self, agent_id: str) -> Profile:
        hit = self._cache.get(agent_id)
        if hit is None:
            hit = self._default
            for globs, prof in self._profiles:
                if agent_id in globs:
                    hit = Profile(prof, matched=True)
                    break
            if len(self._cache) < 10_000:
                self._cache[agent_id] = hit
        return hit

    def suppression_for(
        self, rule: str, category: str, agent_id: str, tool: str, on: dt.date | None
    ) -> Suppression | None:
        """The suppression (the bundle's ``exceptions:``) that applies to this finding on
        date ``on``, if any."""
        for exc in self.suppressions:
            if on is not None and on > exc.expires:
                continue
            # A rule id may be given bare ("no-prod-delete") or as the finding's rule
            # ("policy.rule.no-prod-delete", "excessive_retries.*"), or be a category.
            if not (
                fnmatchcase(rule, exc.rule)
                or fnmatchcase(rule, f"policy.rule.{exc.rule}")
                or exc.rule == category
            ):
                continue
            if fnmatchcase(agent_id, exc.agent) and fnmatchcase(tool, exc.tool):
                return exc
        return None


def _static_run_fields(rules: list[CompiledRule]) -> tuple[str, ...] | None:
    """The ``run`` fields any static conjunct reads (None: a conjunct reads all of it)."""
    fields: set[str] = set()
    for r in rules:
        if r.static is None:
            continue
        for name, used in r.static.signature:
            if name == "run":
                if used is None:
                    return None
                fields.update(used)
    return tuple(sorted(fields))
