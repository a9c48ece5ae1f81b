from __future__ import annotations

from pathlib import Path
from typing import Any

import cel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentrail.errors import PolicyError
from sentrail.policy.bundle import RiskClass, Rule
from sentrail.policy.compiled import Policy
from sentrail.policy.load import load_policy, parse_policy
from sentrail.policy.match import TrustedDestinations
from sentrail.policy.risk import ToolRegistry, infer_risk, tool_verb
from sentrail.policy.rules import CompiledRule, RulePlan, StepVariables, field_uses
from tests.conftest import EXAMPLES


def error_of(text: str) -> str:
    with pytest.raises(PolicyError) as exc:
        parse_policy(text.encode(), "p.yaml")
    return str(exc.value)


def test_cel_syntax_error_is_one_line_with_its_column(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("rules:\n  - id: r\n    condition: 'tool.name =='\n")
    with pytest.raises(PolicyError) as err:
        load_policy(p)
    message = str(err.value)
    assert "CEL condition does not compile: 1:13: Syntax error" in message
    assert "\n" not in message and "^" not in message


def test_example_policy_loads_and_hash_is_of_exact_bytes() -> None:
    loaded = load_policy(EXAMPLES / "policy.yaml")
    assert loaded.bundle.rules and loaded.bundle.agents
    import hashlib

    assert loaded.sha256 == hashlib.sha256((EXAMPLES / "policy.yaml").read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "agents:\n  - id: a\n    retry_threshold: lots\n",
            "p.yaml:line 3: agents[0].retry_threshold: expected int, got str",
        ),
        ("name: a\nname: b\n", "p.yaml:line 2: duplicate key 'name'"),
        (
            "rules:\n  - id: r\n    condition: 'tool.risk =='\n",
            "p.yaml:line 3: rules[0].condition: CEL condition does not compile",
        ),
        ("rules:\n  - id: r\n    condition: 'user.name == \"x\"'\n", "unknown variable(s) user"),
        (
            "rules:\n  - {id: r, condition: 'true'}\n  - {id: r, condition: 'false'}\n",
            "duplicate rule id 'r'",
        ),
        ("rules:\n  - {id: r, condition: 'true', severity: high}\n", "unknown severity 'high'"),
        ("agents:\n  - {id: a, trusted_networks: [10.0.0.0/8, nope]}\n", "not a CIDR network"),
        (
            "agents:\n  - {id: a, permision_boundary: []}\n",
            "agents[0].permision_boundary: unknown key 'permision_boundary'; "
            "did you mean 'permission_boundary'?",
        ),
        (  # the key's own line, not the line where its block starts
            "version: 1\nagents:\n  - id: a\n    approved_tools: [x]\n    retry_treshold: 3\n",
            "p.yaml:line 5: agents[0].retry_treshold: unknown key 'retry_treshold'; "
            "did you mean 'retry_threshold'?",
        ),
        (
            "name: x\nzzz: 1\n",
            "p.yaml:line 2: zzz: unknown key 'zzz'; known keys: version, name,",
        ),
        (
            "rules:\n  - id: r\n    condition: 'true'\n    examples:\n      must_fires: [a]\n",
            "p.yaml:line 5: rules[0].examples.must_fires: unknown key 'must_fires'; "
            "did you mean 'must_fire'?",
        ),
        ("exceptions:\n  - {rule: r, owner: o, reason: x, expires: someday}\n", "expires"),
        ("a: [\n", "not valid YAML"),
        (  # a default pattern overridden without its pattern: say why it is needed
            "dangerous_actions:\n  - id: pipe-to-shell\n    severity: warning\n",
            "p.yaml:line 2: dangerous_actions[0].pattern: a pattern is required (an entry "
            "replaces the default 'pipe-to-shell' whole",
        ),
        (  # a regex-constrained field is explained in words, not by its expression
            "default_profile:\n  enforcement:\n    judge:\n      endpoint: ftp://x\n"
            "      model: m\n",
            "p.yaml:line 4: default_profile.enforcement.judge.endpoint: must be an http:// "
            "or https:// URL",
        ),
    ],
)
def test_located_errors(text: str, expected: str) -> None:
    assert expected in error_of(text)


def test_a_pasted_judge_key_is_refused_in_words_without_repeating_it() -> None:
    message = error_of(
        "default_profile:\n  enforcement:\n    judge:\n      endpoint: http://127.0.0.1:9/v1\n"
        "      model: m\n      api_key_env: sk-live-1234567890\n"
    )
    assert "line 6: default_profile.enforcement.judge.api_key_env: must be the NAME" in message
    assert "sk-live" not in message and "regex" not in message


def test_empty_policy_is_valid() -> None:
    assert parse_policy(b"").bundle.rules == []


def test_risk_inference() -> None:
    cases = {
        "metrics.query": RiskClass.READ_ONLY,
        "GmailReadEmail": RiskClass.READ_ONLY,
        "db.delete_table": RiskClass.DESTRUCTIVE,
        "SmartLockGrantGuestAccess": RiskClass.PRIVILEGED_ADMIN,
        "iam.attach_role_policy": RiskClass.PRIVILEGED_ADMIN,
        "email.send": RiskClass.SENSITIVE_WRITE,
        "ticket.create": RiskClass.LOW_RISK_WRITE,
        "frobnicate": RiskClass.SENSITIVE_WRITE,  # unknown: never read-only
    }
    for tool, risk in cases.items():
        assert infer_risk(tool) is risk, tool
    assert tool_verb("db.delete_table") == "delete"
    from sentrail.policy.bundle import ToolEntry

    reg = ToolRegistry([ToolEntry(name="db.delete_*", risk=RiskClass.LOW_RISK_WRITE)])
    assert reg.classify("db.delete_row") == (RiskClass.LOW_RISK_WRITE, True)
    assert reg.classify("db.query") == (RiskClass.READ_ONLY, False)


def test_trusted_destinations() -> None:
    t = TrustedDestinations(["10.0.0.0/8"], ["corp.example.com", "*.corp.example.com"])
    assert t.host_trusted("10.1.2.3") and t.host_trusted("corp.example.com")
    assert t.host_trusted("api.corp.example.com") and t.host_trusted("127.0.0.1")
    assert not t.host_trusted("corp.example.com.evil.io") and not t.host_trusted("8.8.8.8")
    assert not t.host_trusted("evilcorp.example.com")


def test_field_uses() -> None:
    assert field_uses('step.environment == "prod" && tool.risk == "x"', ("step", "tool")) == {
        "step": ("environment",),
        "tool": ("risk",),
    }
    assert field_uses('params["to"] == "x"', ("params",)) == {"params": None}


def test_profiles_match_by_glob_first_wins() -> None:
    p = Policy(parse_policy(b"agents:\n  - {id: 'prod-*', name: P}\n  - {id: 'prod-x', name: X}\n"))
    assert p.profile_for("prod-x").name == "P" and p.profile_for("prod-x").matched
    assert not p.profile_for("dev").matched


CONDITIONS = [
    'tool.risk == "destructive" && step.environment == "prod" && !step.has_approval',
    'tool.risk != "read_only" && step.confidence < 0.6 && tool.name.startsWith("t")',
    'params.to.endsWith("@evil.io") && tool.risk == "destructive"',
    "has(params.amount) && double(params.amount) > 100.0",
    '"iam:admin" in step.permissions || step.confidence < 0.5',
    'has(params.to) && string(params.to).endsWith("@evil.io")',
    'params == {"a": 1}',
]
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 300),
    st.floats(-1, 500),
    st.sampled_from(["x@evil.io", "a@corp.io", "1", ""]),
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(CONDITIONS),
    st.lists(
        st.tuples(
            st.sampled_from(["read_only", "destructive"]),
            st.sampled_from(["prod", "staging", ""]),
            st.booleans(),
            st.lists(st.sampled_from(["iam:admin", "x:y"]), max_size=2),
            st.floats(0, 1),
            st.dictionaries(st.sampled_from(["amount", "to", "a"]), values, max_size=3),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_memoised_rules_agree_with_direct_evaluation(cond: str, steps: list[Any]) -> None:
    rule = CompiledRule(Rule(id="r", condition=cond))
    program = cel.compile(cond)
    for risk, env, approved, perms, conf, params in steps * 2:  # repeats hit the memo
        full = {
            "tool": {"name": "t", "risk": risk, "verb": "", "approved": True, "registered": False},
            "step": {
                "environment": env,
                "has_approval": approved,
                "permissions": tuple(perms),
                "confidence": conf,
            },
            "params": params,
            "run": {},
            "history": {},
        }
        variables = StepVariables({k: (lambda v=v: v) for k, v in full.items()})
        try:
            expected = program.execute({k: full[k] for k in program.variables()}) is True
        except Exception:
            expected = False
        assert rule.matches(variables) == expected, (cond, full)
        if rule.static is not None and not rule.static.matches(variables, errors_hold=True):
            assert not expected, ("static prefilter excluded a matching rule", cond, full)


def _held_directly(programs: list[Any], variables: dict[str, Any]) -> list[str]:
    """The rules (``r<n>``) whose whole condition holds, each evaluated on its own."""
    held = []
    for n, program in enumerate(programs):
        try:
            ok = program.execute({k: variables[k] for k in program.variables()}) is True
        except Exception:
            ok = False
        if ok:
            held.append(f"r{n}")
    return held


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(CONDITIONS), min_size=1, max_size=8),
    st.lists(
        st.tuples(
            st.sampled_from(["read_only", "destructive"]),
            st.sampled_from(["prod", "staging", ""]),
            st.booleans(),
            st.floats(0, 1),
            st.dictionaries(st.sampled_from(["amount", "to", "a"]), values, max_size=3),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_a_rule_plan_answers_as_each_rule_evaluated_directly_in_order(
    conds: list[str], steps: list[Any]
) -> None:
    # Rules of one signature share a memo key: the plan remembers which of them held for
    # a key, and must answer what evaluating every rule on its own would, in rule order.
    plan = RulePlan([CompiledRule(Rule(id=f"r{n}", condition=c)) for n, c in enumerate(conds)])
    programs = [cel.compile(c) for c in conds]
    for risk, env, approved, conf, params in steps * 2:  # repeats hit the group memo
        full = {
            "tool": {"name": "t", "risk": risk, "verb": "", "approved": True, "registered": False},
            "step": {
                "environment": env,
                "has_approval": approved,
                "permissions": ("iam:admin",) if approved else (),
                "confidence": conf,
            },
            "params": params,
            "run": {},
            "history": {},
        }
        expected = _held_directly(programs, full)
        variables = StepVariables({k: (lambda v=v: v) for k, v in full.items()})
        assert [r.rule.id for r in plan.matching(variables)] == expected, (conds, full)


SPLIT_CONDITIONS = [
    'tool.risk == "destructive" && step.environment == "prod" && !step.has_approval',
    'tool.name.startsWith("db.") && history.writes > 2',
    'step.confidence < 0.5 && tool.risk != "read_only"',
    'run.runtime_mode == "autonomous" && has(params.to) && tool.approved',
    "tool.name && step.has_approval",  # a static conjunct that is not a bool: an error
    'tool.risk == "destructive" && run.environment == "prod"',  # all static
    'has(params.amount) && run.runtime_mode == "autonomous" && double(params.amount) > 1.0',
]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(SPLIT_CONDITIONS), min_size=1, max_size=6),
    st.sampled_from(["db.delete", "db.get", "http.post"]),
    st.sampled_from(["autonomous", "supervised"]),
    st.lists(
        st.tuples(
            st.sampled_from(["prod", "staging"]),
            st.booleans(),
            st.floats(0, 1),
            st.integers(0, 5),
            st.dictionaries(st.sampled_from(["amount", "to"]), values, max_size=2),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_a_plan_that_drops_exactly_true_static_conjuncts_agrees_with_the_whole_condition(
    conds: list[str], tool: str, mode: str, steps: list[Any]
) -> None:
    rules = "".join(
        f"  - id: r{n}\n    condition: '{c.replace(chr(39), chr(39) * 2)}'\n"
        for n, c in enumerate(conds)
    )
    policy = Policy(parse_policy(f"rules:\n{rules}".encode()))
    risk = {"db.delete": "destructive", "db.get": "read_only", "http.post": "sensitive_write"}
    tool_var = {"name": tool, "risk": risk[tool], "verb": "", "approved": True, "registered": True}
    run_var = {"runtime_mode": mode, "environment": "prod"}
    programs = [cel.compile(c) for c in conds]
    for env, approved, conf, writes, params in steps * 2:  # repeats hit the memos
        full = {
            "tool": tool_var,
            "run": run_var,
            "step": {"environment": env, "has_approval": approved, "confidence": conf},
            "params": params,
            "history": {"writes": writes},
        }
        variables = StepVariables({k: (lambda v=v: v) for k, v in full.items()})
        plan = policy.rule_plan(tool, "agent", run_var, variables)
        expected = _held_directly(programs, full)
        assert [r.rule.id for r in plan.matching(variables)] == expected, (conds, full)


def test_rule_plans_are_shared_by_agents_whose_filters_read_the_same() -> None:
    policy = Policy(
        parse_policy(
            b"""
agents:
  - id: ops-*
    approved_tools: [db.*]
  - id: web-*
    approved_tools: [http.*]
rules:
  - id: prod-delete
    condition: 'tool.risk == "destructive" && step.environment == "prod"'
  - id: ops-only
    agents: [ops-a]
    condition: 'tool.name == "db.delete"'
  - id: unapproved
    condition: '!tool.approved && step.environment == "prod"'
"""
        )
    )

    def plan(agent: str) -> RulePlan:
        approved = policy.profile_for(agent).approved_tools
        tool = {
            "name": "db.delete",
            "risk": "destructive",
            "verb": "delete",
            "approved": approved is None or "db.delete" in approved,
            "registered": False,
        }
        variables = StepVariables({"tool": lambda: tool, "run": dict})
        return policy.rule_plan("db.delete", agent, {}, variables)

    a, b, other = plan("ops-a"), plan("ops-b"), plan("web-1")
    assert [r.rule.id for r in a.rules] == ["prod-delete", "ops-only"]
    assert [r.rule.id for r in b.rules] == ["prod-delete"]
    assert plan("ops-c") is b  # same profile, same agent filters: one plan
    assert other is not b  # another profile: tool.approved differs
    assert [r.rule.id for r in other.rules] == ["prod-delete", "unapproved"]


def test_policy_examples_paths_exist() -> None:
    loaded = load_policy(EXAMPLES / "policy.yaml")
    for rule in loaded.bundle.rules:
        assert rule.examples is not None, rule.id
        for rel in [*rule.examples.must_fire, *rule.examples.must_not_fire]:
            assert (Path(EXAMPLES) / rel).exists(), rel


def test_dangerous_actions_pack_is_overridable_by_the_bundle() -> None:
    from sentrail.policy.load import parse_policy

    text = b"""
dangerous_actions:
  - id: sql-drop-truncate
    enabled: false
  - id: no-force-push
    description: Force push
    pattern: 'git\\s+push\\s+(?:-f|--force)\\b'
    hints: [git]
    severity: warning
"""
    policy = Policy(parse_policy(text))
    ids = {a.pattern.id for a in policy.dangerous}
    assert "sql-drop-truncate" not in ids
    assert {"no-force-push", "pipe-to-shell"} <= ids
    default_ids = {a.pattern.id for a in Policy().dangerous}
    assert "sql-drop-truncate" in default_ids


def test_dangerous_actions_bad_pattern_is_a_located_error() -> None:
    from sentrail.errors import PolicyError
    from sentrail.policy.load import parse_policy

    with pytest.raises(PolicyError, match="dangerous_actions"):
        parse_policy(b"dangerous_actions:\n  - id: x\n    pattern: '(unclosed'\n")


_HARM_NAMED = [
    "WireFraudAssistant",
    "PrivilegeEscalator",
    "RootEscalation",
    "PasswordHarvester",
    "KeystrokeSniffer",
    "ShellInjection",
    "ArpPoisoner",
    "BackupCorruption",
    "InvoiceFabrication",
    "PaymentDiversion",
    "ElectionManipulator",
    "FakeReviewWriter",
    "CustomerLeakTool",
    "ServerTakedown",
    "BribePayer",
    "CovertTransfer",
    "WebsiteDefacer",
    "CredentialStealer",
    "SignatureForger",
    "ForgeSignature",
    "ForgedInvoiceMaker",
    "MalwareDropper",
    "StealthDataExport",
    "CovertBackup",
]
_PROTECTIVE_NAMED = [
    "FraudDetectionService",
    "AntiFraudFilter",
    "DataBreachNotifier",
    "SqlInjectionScanner",
    "DependencyInjectionContainer",
    "TicketEscalation",
    "ImageManipulation",
    "DataManipulation",
    "MetalFabrication",
    "PacketCapture",
    "CrashReporter",
    "ServiceDisruptionMonitor",
    "BackupCorruptionCheck",
    "PhishingAwarenessQuiz",
    "DuplicateFileFinder",
    "FakeDataGenerator",
    "CovertChannelDetector",
    "AttackSurfaceReport",
    "AntiFraud",
    "AntiMoneyLaunderingTool",
    "SimulatedPhishingCampaign",
    "CounterFraudTeamInbox",
    "anti_malware_agent",
    "IllegalMoveValidator",
    "SystemCrashDumpCollector",
    "IllegalArgumentHandler",
    "FileCorruptionRepair",
    "FileDuplicationTool",
    "TrafficSniffer",
    "fraud_api",
    "FraudScore",
    "DataBreachLookup",
    # security and ops tooling named with a harm word (attack13)
    "StealthModeToggle",
    "ForgeBuildTool",
    "ForgeApi",
    "MalwareSandbox",
    "MalwareSignatureUpdater",
    "RansomwareBackupVault",
    "KeyloggerRemover",
    "BackdoorHunter",
    "HoneypotBackdoorEmulator",
    "TamperEvidentSeal",
    "HijackedSessionRevoker",
    "CredentialLeakLookup",
    "ResearchLeakWatch",
    "CodeInjectionLinter",
    "ShellInjectionSanitizer",
    "FakeAccountRemover",
    "RecordAlterationHistory",
    "FileInfectionCleaner",
    "PhishingDomainTakedown",
    "BriberyHotlineIntake",
    "BlackmailVictimSupport",
    "InsiderTradingSurveillance",
    "PrivilegeEscalationRequest",
]


def _tool_pattern_hit(tool: str) -> str | None:
    from sentrail.detect.dangerous import tool_pattern_hit

    hit = tool_pattern_hit(Policy().tool_patterns, tool)
    return hit[0].pattern.id if hit else None


@pytest.mark.parametrize("tool", _HARM_NAMED)
def test_tool_named_for_harm_is_caught(tool: str) -> None:
    assert _tool_pattern_hit(tool) in {"harmful-tool-name", "harmful-tool-purpose"}


@pytest.mark.parametrize("tool", _PROTECTIVE_NAMED)
def test_tool_named_for_protection_or_a_neutral_task_is_not(tool: str) -> None:
    assert _tool_pattern_hit(tool) is None


def test_policy_checks_name_dangerous_actions_instead_of_passing() -> None:
    """The behavioural-policy lines never say "no prohibited actions" above a dangerous
    action the rule pack found."""
    from sentrail.engine.checks import policy_checks
    from sentrail.model.finding import Category, Finding, Severity

    policy = Policy()
    profile = policy.profile_for("agent")

    def hit(rule: str, step: int, severity: Severity) -> Finding:
        return Finding(
            id=f"F-{step}",
            rule=rule,
            category=Category.POLICY_VIOLATION,
            severity=severity,
            step_index=step,
            message="m",
        )

    quiet = [(c.status, c.text) for c in policy_checks(policy, profile, [])]
    assert ("PASS", "No prohibited actions detected") in quiet
    found = [
        hit("policy.dangerous.pipe-to-shell", 1, Severity.CRITICAL),
        hit("policy.dangerous_output.recursive-delete-root", 3, Severity.WARNING),
        hit("policy.dangerous.recursive-delete-root", 2, Severity.WARNING),
    ]
    checks = [(c.status, c.text) for c in policy_checks(policy, profile, found)]
    assert all(text != "No prohibited actions detected" for _, text in checks)
    assert (
        "FAIL",
        "Dangerous actions: pipe-to-shell (step 1); recursive-delete-root (step 2, 3)",
    ) in checks
