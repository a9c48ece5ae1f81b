"""Reading a policy bundle from YAML: located errors, duplicate-key refusal, a content hash."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from pathlib import Path

import msgspec

from sentrail.errors import PolicyError
from sentrail.model.finding import Severity
from sentrail.policy.bundle import PolicyBundle
from sentrail.policy.dangerous import DEFAULT_DANGEROUS_ACTIONS
from sentrail.policy.rules import compile_condition
from sentrail.yamldoc import YamlDoc, read_yaml

MAX_POLICY_BYTES = 4 * 1024 * 1024

_DEFAULT_IDS = frozenset(p.id for p in DEFAULT_DANGEROUS_ACTIONS)

# What the bundle's pattern-constrained strings must be, in words (not the expression).
_PATTERN_WORDS = {
    "api_key_env": "the NAME of the environment variable that holds the API key "
    "(letters, digits and _, e.g. SENTRAIL_JUDGE_API_KEY), never the key itself",
    "endpoint": "an http:// or https:// URL without spaces",
}


class LoadedBundle(msgspec.Struct):
    bundle: PolicyBundle
    sha256: str
    path: str | None


def parse_policy(text: bytes, where: str = "<policy>") -> LoadedBundle:
    """Validate a policy document. Errors name the file, the YAML path and the line."""
    doc = read_yaml(text, where, PolicyError, MAX_POLICY_BYTES, "policy file")
    bundle = doc.convert(PolicyBundle, patterns=_PATTERN_WORDS)
    _check_semantics(bundle, doc)
    return LoadedBundle(bundle=bundle, sha256=hashlib.sha256(text).hexdigest(), path=where)


def _check_semantics(bundle: PolicyBundle, doc: YamlDoc) -> None:
    fail = doc.fail

    ids: set[str] = set()
    for i, rule in enumerate(bundle.rules):
        if rule.id in ids:
            raise fail(f"duplicate rule id {rule.id!r}", f"$.rules[{i}].id")
        ids.add(rule.id)
        try:
            Severity.parse(rule.severity)
        except ValueError as exc:
            raise fail(str(exc), f"$.rules[{i}].severity") from None
        try:
            compile_condition(rule.condition)
        except PolicyError as exc:
            raise fail(exc.message, f"$.rules[{i}].condition") from None
    for i, action in enumerate(bundle.dangerous_actions):
        try:
            Severity.parse(action.severity)
        except ValueError as exc:
            raise fail(str(exc), f"$.dangerous_actions[{i}].severity") from None
        if action.enabled and not action.pattern:
            message = "a pattern is required"
            if action.id in _DEFAULT_IDS:
                message += (
                    f" (an entry replaces the default {action.id!r} whole: copy its pattern "
                    "and hints from the default pack, sentrail/policy/dangerous.py, or set "
                    "enabled: false)"
                )
            raise fail(message, f"$.dangerous_actions[{i}].pattern")
        try:
            re.compile(action.pattern)
        except re.error as exc:
            where = f"$.dangerous_actions[{i}].pattern"
            raise fail(f"bad regular expression: {exc}", where) from None
    profiles = [*bundle.agents, *([bundle.default_profile] if bundle.default_profile else [])]
    for i, prof in enumerate(profiles):
        base = f"$.agents[{i}]" if i < len(bundle.agents) else "$.default_profile"
        if prof.retry_threshold < 2:
            raise fail("retry_threshold must be at least 2", f"{base}.retry_threshold")
        for j, net in enumerate(prof.trusted_networks):
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise fail(
                    f"not a CIDR network: {net!r}", f"{base}.trusted_networks[{j}]"
                ) from None


def load_policy(path: str | Path) -> LoadedBundle:
    p = Path(path)
    try:
        with p.open("rb") as fh:
            text = fh.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(f"cannot read policy: {exc.strerror}", str(p)) from None
    return parse_policy(text, str(p))
