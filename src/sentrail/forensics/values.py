"""The values a run's calls carry: who received something, where it went, what ran.

An investigator follows values, not steps: "every run that paid this IBAN", "every agent that
read from this URL". This module names the values in a run's tool-call parameters (and the
steps' ``resource``) by kind, with one normalised *key* per value so that the same IBAN
written ``DE44 5001 …`` in one run and ``de445001…`` in another links the two:

- ``recipient`` — an e-mail address or phone number;
- ``url`` and ``host`` — where a call reads from or sends to (a URL also names its host);
- ``account`` — an IBAN or a long account number (key: letters and digits only);
- ``path`` — a file or directory path;
- ``command`` — the command line of a shell-like parameter (``command``, ``cmd``, ...);
- ``credential`` — a secret-looking value. Its key is ``sha256:<hex>`` of the value and its
  display is masked: the index never holds a secret, yet two runs that used the same one
  are still linked.

Values are found with the same candidate extraction the taint detector uses
(:mod:`sentrail.detect.content_values`), so a value the graph shows is one the detectors
could see. Everything is bounded: strings per call, values per run, characters per value.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any

import msgspec

from sentrail.detect.content_values import candidates, secrets_in
from sentrail.detect.text import bounded, iter_strings, json_text
from sentrail.model.trace import Run, Step

MAX_VALUES = 500  # per run
MAX_STRINGS = 500  # per call's parameters
MAX_DISPLAY = 200
MAX_KEY = 512
KINDS = ("recipient", "url", "host", "account", "path", "command", "credential")
COMMAND_KEYS = frozenset({"command", "cmd", "script", "shell", "commandline", "command_line"})
_CANDIDATE_KIND = {
    "email": "recipient",
    "phone": "recipient",
    "url": "url",
    "host": "host",
    "ip": "host",
    "account": "account",
    "path": "path",
}
_ACCOUNT_NOISE = re.compile(r"[^0-9a-z]")


class FlowValue(msgspec.Struct, frozen=True, omit_defaults=True):
    """One value in one step's call. ``field`` is where: ``params.to_account``, ``resource``."""

    kind: str
    key: str
    display: str
    step_index: int
    field: str
    tool: str | None = None


def credential_key(secret: str) -> str:
    """The index key of a secret: its SHA-256, so the index links without holding it."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def mask(secret: str) -> str:
    return secret[:4] + "…" if len(secret) > 8 else "…"


def _norm_key(kind: str, key: str) -> str:
    if kind == "account":
        return _ACCOUNT_NOISE.sub("", key.lower())
    return key.lower()[:MAX_KEY]


def values_in(text: str, field: str, step: int, tool: str | None) -> Iterator[FlowValue]:
    """The values in one parameter string (``field`` names the parameter)."""
    text = bounded(text)
    last = field.rsplit(".", 1)[-1].split("[", 1)[0].lower()
    if last in COMMAND_KEYS and text.strip():
        command = text.strip()
        yield FlowValue(
            "command", command.lower()[:MAX_KEY], command[:MAX_DISPLAY], step, field, tool
        )
    for secret in secrets_in(text, limit=4):
        yield FlowValue("credential", credential_key(secret), mask(secret), step, field, tool)
    for c in candidates(text):
        kind = _CANDIDATE_KIND.get(c.kind)
        if kind is None:
            continue
        key = _norm_key(kind, c.key)
        if len(key) >= 3:
            yield FlowValue(kind, key, c.raw[:MAX_DISPLAY], step, field, tool)


def step_values(step: Step) -> list[FlowValue]:
    """The values of one step's call parameters and resource, each (kind, key) once."""
    call = step.tool_call
    tool = call.tool if call is not None else None
    out: list[FlowValue] = []
    seen: set[tuple[str, str]] = set()

    def add(found: Iterator[FlowValue]) -> None:
        for v in found:
            if (v.kind, v.key) not in seen:
                seen.add((v.kind, v.key))
                out.append(v)

    if call is not None:
        for n, (path, text) in enumerate(iter_strings(call.parameters)):
            if n >= MAX_STRINGS:
                break
            add(values_in(text, f"params.{path}" if path else "params", step.step_index, tool))
    if step.resource:
        add(values_in(step.resource, "resource", step.step_index, tool))
    return out


def run_values(run: Run) -> list[FlowValue]:
    """Every value the run's calls carried, in step order, at most ``MAX_VALUES``."""
    out: list[FlowValue] = []
    for step in run.steps:
        out.extend(step_values(step))
        if len(out) >= MAX_VALUES:
            return out[:MAX_VALUES]
    return out


def query_keys(value: str) -> list[tuple[str, str]]:
    """The (kind, key) pairs a user's ``--value`` can mean: the value read as a parameter
    would be, plus its credential key (so a pasted secret finds its runs, hashed)."""
    found = {(v.kind, v.key) for v in values_in(value, "query", 0, None)}
    text = value.strip()
    if text:
        found.add(("credential", credential_key(text)))
        for kind in ("account", "recipient", "url", "host", "path", "command"):
            key = _norm_key(kind, text)
            if kind == "url":
                key = key.rstrip("/")
            if len(key) >= 3:
                found.add((kind, key))
    return sorted(found)


def searchable(value: Any) -> tuple[str, str]:
    """A result's text, lower case, and again with spaces and dashes removed (where an
    account number written in groups is found by its compact key)."""
    text = json_text(value).lower()
    return text, _COMPACT.sub("", text)


_COMPACT = re.compile(r"[\s-]+")
