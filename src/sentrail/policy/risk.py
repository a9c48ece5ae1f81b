"""Tool risk classes: from the registry when listed, otherwise inferred from the tool's verb."""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import fnmatchcase
from functools import lru_cache

from sentrail.policy.bundle import RiskClass, ToolEntry

_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")

# Ordered: the most dangerous class whose verb appears in the tool name wins.
_VERBS: tuple[tuple[RiskClass, frozenset[str]], ...] = (
    (
        RiskClass.PRIVILEGED_ADMIN,
        frozenset(
            [
                "sudo",
                "admin",
                "grant",
                "revoke",
                "impersonate",
                "assume",
                "escalate",
                "elevate",
                "chmod",
                "chown",
                "setpolicy",
                "attach",
                "detach",
                "rotate",
            ]
        ),
    ),
    (
        RiskClass.DESTRUCTIVE,
        frozenset(
            [
                "delete",
                "drop",
                "remove",
                "rm",
                "destroy",
                "purge",
                "wipe",
                "truncate",
                "erase",
                "terminate",
                "kill",
                "shred",
                "uninstall",
                "revert",
                "reset",
                "disable",
                "cancel",
            ]
        ),
    ),
    (
        RiskClass.SENSITIVE_WRITE,
        frozenset(
            [
                "send",
                "transfer",
                "pay",
                "withdraw",
                "deposit",
                "exec",
                "execute",
                "run",
                "shell",
                "eval",
                "deploy",
                "push",
                "publish",
                "share",
                "upload",
                "email",
                "mail",
                "post",
                "tweet",
                "sms",
                "message",
                "invoke",
                "restart",
                "stop",
                "start",
                "update",
                "modify",
                "set",
                "change",
                "write",
                "patch",
                "put",
                "move",
                "rename",
                "approve",
                "unlock",
                "lock",
                "buy",
                "sell",
                "order",
                "place",
                "book",
                "install",
                "manage",
                "commit",
                "merge",
                "forward",
                "invite",
                "submit",
                "sign",
            ]
        ),
    ),
    (
        RiskClass.LOW_RISK_WRITE,
        frozenset(
            [
                "create",
                "add",
                "insert",
                "append",
                "save",
                "store",
                "schedule",
                "tag",
                "label",
                "comment",
                "note",
                "draft",
                "reply",
                "ack",
                "acknowledge",
                "annotate",
                "generate",
            ]
        ),
    ),
    (
        RiskClass.READ_ONLY,
        frozenset(
            [
                "get",
                "read",
                "list",
                "query",
                "search",
                "find",
                "fetch",
                "view",
                "describe",
                "show",
                "lookup",
                "check",
                "browse",
                "count",
                "inspect",
                "scan",
                "retrieve",
                "download",
                "analyze",
                "analyse",
                "summarize",
                "summarise",
                "status",
                "health",
                "watch",
                "monitor",
                "open",
                "load",
                "ping",
                "validate",
                "verify",
            ]
        ),
    ),
)


_VERB_CLASS: dict[str, RiskClass] = {
    verb: risk for risk, verbs in reversed(_VERBS) for verb in verbs
}


@lru_cache(maxsize=8192)
def tool_words(name: str) -> tuple[str, ...]:
    """Split ``BankManagerTransferFunds`` / ``db.delete_table`` into lower-case words."""
    return tuple(w.lower() for w in _WORDS.findall(name))


@lru_cache(maxsize=8192)
def tool_verb(name: str) -> str:
    """The first known verb word of a tool name (``db.delete_table`` -> ``delete``), or ""."""
    return next((w for w in tool_words(name) if w in _VERB_CLASS), "")


def infer_risk(name: str) -> RiskClass:
    """Risk class from the tool's verb; unknown verbs are sensitive writes.

    The verb is the first known verb word (``GmailReadEmail`` reads, though "email" is
    also a verb); a destructive or privileged verb anywhere in the name raises the class
    (``SmartLockGrantGuestAccess`` grants). Failing towards "sensitive write" keeps an
    unknown tool from passing as read-only.
    """
    words = tool_words(name)
    first: RiskClass | None = None
    for word in words:
        first = _VERB_CLASS.get(word)
        if first is not None:
            break
    worst = max(
        (_VERB_CLASS[w] for w in words if _VERB_CLASS.get(w, RiskClass.READ_ONLY).rank >= 3),
        key=lambda r: r.rank,
        default=None,
    )
    if first is None:
        return worst or RiskClass.SENSITIVE_WRITE
    if worst is not None and worst.rank > first.rank:
        return worst
    return first


class ToolRegistry:
    """Risk class per tool name, cached. Registry entries may be globs; first match wins."""

    def __init__(self, entries: Iterable[ToolEntry] = ()) -> None:
        self._exact: dict[str, RiskClass] = {}
        self._globs: list[tuple[str, RiskClass]] = []
        for e in entries:
            if any(c in e.name for c in "*?["):
                self._globs.append((e.name, e.risk))
            else:
                self._exact.setdefault(e.name, e.risk)
        self._cache: dict[str, tuple[RiskClass, bool]] = {}

    def classify(self, name: str) -> tuple[RiskClass, bool]:
        """(risk class, whether it came from the registry rather than inference)."""
        hit = self._cache.get(name)
        if hit is None:
            hit = self._lookup(name)
            if len(self._cache) < 100_000:
                self._cache[name] = hit
        return hit

    def risk(self, name: str) -> RiskClass:
        return self.classify(name)[0]

    def _lookup(self, name: str) -> tuple[RiskClass, bool]:
        if name in self._exact:
            return self._exact[name], True
        for pattern, risk in self._globs:
            if fnmatchcase(name, pattern):
                return risk, True
        return infer_risk(name), False
