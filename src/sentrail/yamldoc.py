"""YAML configuration documents with located errors (the policy bundle, the alert policy).

``read_yaml`` bounds the size, parses with the safe loader, refuses duplicate keys (one of
them would silently win) and keeps the node tree, so that every later error can name the
file, the line and the key path: ``policy.yaml:line 12: agents[0].retry_threshold``.

A misspelt key is looked for before the document is converted, by walking the node tree
beside the target type (``msgspec.inspect``): the converter would name only the block the
key sits in, while the walk has the key's own node, so the error gives the key's line and
the closest known key (``did you mean 'retry_threshold'?``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
import msgspec.inspect as mi
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

    def convert(
        self, kind: type[T], data: Any = None, patterns: Mapping[str, str] | None = None
    ) -> T:
        """The data (or ``data``) as ``kind``; a located error for the first bad field.
        ``patterns`` says in words what a string field constrained by a regular expression
        must be (field name -> words), for the user instead of the expression."""
        unknown = _unknown_key(mi.type_info(kind), self.root, "")
        if unknown is not None:
            raise self._unknown(*unknown)
        try:
            return msgspec.convert(self.data if data is None else data, kind)
        except msgspec.ValidationError as exc:
            msg, _, path = str(exc).partition(" - at `")
            path = path.rstrip("`") or "$"
            field = path.rpartition(".")[2]
            if patterns and field in patterns and msg.startswith("Expected `str` matching regex"):
                # the value is not repeated: it may be a secret pasted in the wrong place
                raise self.fail(f"must be {patterns[field]}", path) from None
            msg = msg.replace("`", "").rstrip()
            raise self.fail(msg[:1].lower() + msg[1:], path) from None

    def _unknown(self, path: str, key: yaml.ScalarNode, known: list[str]) -> SentrailError:
        close = difflib.get_close_matches(key.value, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
        where = f"{self.where}:line {key.start_mark.line + 1}: {path.lstrip('.')}"
        return self.error(f"unknown key {key.value!r}; {hint}", where)


_Unknown = tuple[str, yaml.ScalarNode, list[str]]  # key path, key node, the keys allowed there


def _one_of(kind: mi.UnionType, node: yaml.Node) -> mi.Type | None:
    """The one member of a union that a node of this shape can be (None: no single one)."""
    if isinstance(node, yaml.MappingNode):
        shapes: tuple[type, ...] = (mi.StructType, mi.DictType)
    elif isinstance(node, yaml.SequenceNode):
        shapes = (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)
    else:
        return None
    members = [t for t in kind.types if isinstance(t, shapes)]
    return members[0] if len(members) == 1 else None


def _unknown_key(kind: mi.Type, node: yaml.Node, path: str) -> _Unknown | None:
    """The first key, in document order, that the struct it belongs to does not have."""
    if isinstance(kind, mi.UnionType):
        member = _one_of(kind, node)
        return None if member is None else _unknown_key(member, node, path)
    if isinstance(kind, mi.StructType) and isinstance(node, yaml.MappingNode):
        fields = {f.encode_name: f for f in kind.fields}
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                continue
            field = fields.get(k.value)
            if field is None:
                if kind.forbid_unknown_fields:
                    return f"{path}.{k.value}", k, list(fields)
                continue
            found = _unknown_key(field.type, v, f"{path}.{k.value}")
            if found is not None:
                return found
    elif isinstance(kind, mi.DictType) and isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            name = k.value if isinstance(k, yaml.ScalarNode) else "?"
            found = _unknown_key(kind.value_type, v, f"{path}.{name}")
            if found is not None:
                return found
    elif isinstance(
        kind, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)
    ) and isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found = _unknown_key(kind.item_type, item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


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
