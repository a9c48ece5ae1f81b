"""YAML configuration documents with located errors (the policy bundle, the alert policy).

``read_yaml`` bounds the size, parses with the safe loader, refuses duplicate keys (one of
them would silently win) and keeps the node tree, so that every later error can name the
file, the line and the key path: ``policy.yaml:line 12: agents[0].retry_threshold``.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
import yaml

from sentrail.errors import SentrailError

T = TypeVar("T")
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # C loader where built
_PATH_PART = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]")


class YamlDoc:
    """A parsed document: its data, its node tree and where it came from."""

    def __init__(self, data: Any, root: yaml.Node, where: str, error: type[SentrailError]):
        self.data = data
        self.root = root
        self.where = where
        self.error = error

    def node_at(self, path: str) -> yaml.Node:
        """The node of a msgspec path such as ``$.agents[0].retry_threshold`` (the
        deepest one that exists)."""
        node = self.root
        for key, index in _PATH_PART.findall(path):
            if key and isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if isinstance(k, yaml.ScalarNode) and k.value == key:
                        node = v
                        break
                else:
                    return node
            elif index and isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
                node = node.value[int(index)]
            else:
                return node
        return node

    def fail(self, message: str, path: str) -> SentrailError:
        """The document's error for ``message`` at ``path``, located by line and key path."""
        line = self.node_at(path).start_mark.line + 1
        dotted = path.removeprefix("$").lstrip(".") or "(top level)"
        return self.error(message, f"{self.where}:line {line}: {dotted}")

    def convert(self, kind: type[T], data: Any = None) -> T:
        """The data (or ``data``) as ``kind``; a located error for the first bad field."""
        try:
            return msgspec.convert(self.data if data is None else data, kind)
        except msgspec.ValidationError as exc:
            msg, _, path = str(exc).partition(" - at `")
            msg = msg.replace("`", "").rstrip()
            raise self.fail(msg[:1].lower() + msg[1:], path.rstrip("`") or "$") from None


def read_yaml(
    text: bytes, where: str, error: type[SentrailError], limit: int, what: str = "document"
) -> YamlDoc:
    """Parse ``text`` (at most ``limit`` bytes); errors are ``error`` and name the line."""
    if len(text) > limit:
        raise error(f"{what} larger than {limit} bytes", where)
    try:
        root = yaml.compose(text, Loader=_Loader)
        data: Any = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f"{where}:line {mark.line + 1}" if mark is not None else where
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"not valid YAML: {problem}", loc) from None
    if root is None or data is None:
        data, root = {}, yaml.MappingNode("tag:yaml.org,2002:map", [])
    _refuse_duplicate_keys(root, where, error)
    return YamlDoc(data, root, where, error)


def _refuse_duplicate_keys(node: yaml.Node, where: str, error: type[SentrailError]) -> None:
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, yaml.MappingNode):
            seen: set[str] = set()
            for k, v in n.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in seen:
                        line = k.start_mark.line + 1
                        raise error(f"duplicate key {k.value!r}", f"{where}:line {line}")
                    seen.add(k.value)
                stack.append(v)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
