"""Reading a policy bundle from YAML: located errors, duplicate-key refusal, a content hash."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from pathlib import Path
from typing import Any

import msgspec
import yaml

from sentrail.errors import PolicyError
from sentrail.model.finding import Severity
from sentrail.policy.bundle import PolicyBundle
from sentrail.policy.rules import compile_condition

MAX_POLICY_BYTES = 4 * 1024 * 1024
_PATH_PART = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]")

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # C loader where built


class LoadedBundle(msgspec.Struct):
    bundle: PolicyBundle
    sha256: str
    path: str | None


def _node_at(root: yaml.Node, path: str) -> yaml.Node:
    """The YAML node for a msgspec path such as ``$.agents[0].retry_threshold``."""
    node = root
    for key, index in _PATH_PART.findall(path):
        if key and isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == key:
                    node = v
                    break
            else:
                return node
        elif index and isinstance(node, yaml.SequenceNode):
            i = int(index)
            if i >= len(node.value):
                return node
            node = node.value[i]
        else:
            return node
    return node


def _line(node: yaml.Node) -> str:
    return f"line {node.start_mark.line + 1}"


def _refuse_duplicate_keys(node: yaml.Node, where: str) -> None:
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, yaml.MappingNode):
            seen: set[str] = set()
            for k, v in n.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in seen:
                        raise PolicyError(f"duplicate key {k.value!r}", f"{where}:{_line(k)}")
                    seen.add(k.value)
                stack.append(v)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)


def parse_policy(text: bytes, where: str = "<policy>") -> LoadedBundle:
    """Validate a policy document. Errors name the file, the YAML path and the line."""
    if len(text) > MAX_POLICY_BYTES:
        raise PolicyError(f"policy file larger than {MAX_POLICY_BYTES} bytes", where)
    try:
        root = yaml.compose(text, Loader=_Loader)
        data: Any = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f"{where}:line {mark.line + 1}" if mark is not None else where
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(f"not valid YAML: {problem}", loc) from None
    if root is None or data is None:
        data, root = {}, yaml.MappingNode("tag:yaml.org,2002:map", [])
    _refuse_duplicate_keys(root, where)
    try:
        bundle = msgspec.convert(data, PolicyBundle)
    except msgspec.ValidationError as exc:
        text_ = str(exc)
        msg, _, path = text_.partition(" - at `")
        path = path.rstrip("`")
        node = _node_at(root, path)
        dotted = path.removeprefix("$").lstrip(".") or "(top level)"
        raise PolicyError(
            _sentence(msg.replace("`", "").rstrip()), f"{where}:{_line(node)}: {dotted}"
        ) from None
    _check_semantics(bundle, root, where)
    return LoadedBundle(bundle=bundle, sha256=hashlib.sha256(text).hexdigest(), path=where)


def _sentence(msg: str) -> str:
    return msg[:1].lower() + msg[1:]


def _check_semantics(bundle: PolicyBundle, root: yaml.Node, where: str) -> None:
    def fail(msg: str, path: str) -> PolicyError:
        return PolicyError(msg, f"{where}:{_line(_node_at(root, path))}: {path[2:]}")

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
