"""Harm in the agent's own output: steps with no tool call (an answer, a reply, a plan).

The text judged is the step's ``output`` (the agent's words to the user), or its
``reasoning`` when there is no ``output`` (the answer-in-reasoning convention). Each text
is read once, bounded, and every check runs only when a literal hint is present.

- ``policy.dangerous_output.<id>`` (policy_violation): a command of the dangerous-actions
  rule pack (:mod:`sentrail.policy.dangerous`, ``scope: arguments`` patterns) in the text,
  not framed as a warning ("never run …"). The pattern's severity (critical by default), a
  warning when the user's request holds one of its ``requested_words``.
- ``data_exfiltration.output_url``: a markdown image or link (or an HTML ``<img>``) whose
  URL carries data out in its query string or fragment: a secret-looking value, or a value
  read from an earlier tool result that the user never gave. Critical for a secret, and
  for an image (fetched with no click) carrying a read value after an injected instruction
  or a value that looks sensitive; otherwise a warning.
- ``data_exfiltration.lookalike_link``: a link on a domain that imitates one the user's
  request named or the profile trusts: look-alike letters or punycode (critical), the
  domain shown as the link text while the link goes elsewhere (critical), or one edit
  away (warning).
- ``data_exfiltration.secret_in_output``: a secret-looking value (key, token, private key,
  card or social-security number) in the agent's reply that the user's request did not
  hold: a warning, critical when an injected instruction came earlier in the run.
"""

from __future__ import annotations

import base64
import binascii
import re
from itertools import islice
from typing import ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

from sentrail.detect.base import Detector, RunContext, StepFacts
from sentrail.detect.content_values import secrets_in
from sentrail.detect.deobfuscate import fold
from sentrail.detect.text import destinations, hint_view
from sentrail.model.finding import Category, Severity

MAX_TEXT = 16 * 1024  # characters of one step's output judged
MAX_URLS = 16  # links judged per step
MAX_HISTORY = 200  # earlier results searched for a value
MAX_PER_STEP = 3
MAX_MATCHES = 8  # matches of one pattern examined for a warning framing

_NEGATED = re.compile(
    r"\b(?:never|don't|do not|dont|avoid|must not|should not|shouldn't|won't|will not|"
    r"cannot|can't|refuse|refused|dangerous|destructive|malicious|warning|caution|"
    r"not safe|unsafe|not run|not execute|blocked)\b",
    re.I,
)
_SENTENCE_END = re.compile(r"[.!?]\s|\n\s*\n")
_MD_LINK = re.compile(
    r"(!?)\[([^\]\n]{0,200})\]\(\s*<?((?:https?:)?//[^\s)>]{1,2048})|"
    r"<img\b[^>]{0,400}?\bsrc\s*=\s*[\"']?((?:https?:)?//[^\s\"'>]{1,2048})",
    re.I,
)
_BASE64 = re.compile(r"^[A-Za-z0-9+/_-]{16,}={0,2}$")
_SENSITIVE_SHAPE = re.compile(
    r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[a-z]{2,}$|^\+?\d[\d -]{7,}$|"
    r"^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_-]{16,}$",
    re.I,
)
_TRIVIAL_VALUES = frozenset({"true", "false", "null", "none", "utf-8", "en-us", "index"})


def output_text(facts: StepFacts) -> str:
    """The words of a step with no tool call: its ``output``, else its ``reasoning``."""
    step = facts.step
    text = step.output or step.reasoning or ""
    return text[:MAX_TEXT]


def _negated(text: str, start: int) -> bool:
    """Is the match at ``start`` framed as a warning: a negation earlier in its sentence
    (or in the sentence that introduces a code block)?"""
    before = text[max(0, start - 200) : start]
    ends = list(_SENTENCE_END.finditer(before.rstrip("`\n ")))
    if ends:
        before = before[ends[-1].end() :]
    return _NEGATED.search(before) is not None


class DangerousOutput(Detector):
    name = "dangerous_output"
    category = Category.POLICY_VIOLATION
    rules: ClassVar[dict[str, tuple[Severity, ...]]] = {
        "policy.dangerous_output.*": (Severity.WARNING, Severity.CRITICAL),
    }

    def __init__(self, ctx: RunContext) -> None:
        # Not inherited: see Detector (compiled, an inherited __init__ leaks ctx).
        super().__init__(ctx)

    def on_step(self, facts: StepFacts) -> None:
        if facts.tool is not None:
            return
        pack = self.ctx.policy.dangerous
        if not pack:
            return
        text = output_text(facts)
        if len(text) < 4:
            return
        low = hint_view(text)  # as in the arguments: "rm<TAB>-rf" holds the hint "rm "
        hints = self.ctx.policy.dangerous_hints
        if hints is not None and hints.search(low) is None:
            return
        trigger = (self.ctx.header.trigger or "").lower()
        fired = 0
        for action in pack:
            if action.pattern.scope != "arguments":
                continue
            if action.hints and not any(h in low for h in action.hints):
                continue
            matches = islice(action.regex.finditer(text), MAX_MATCHES)
            m = next((m for m in matches if not _negated(text, m.start())), None)
            if m is None:
                continue
            severity = action.severity
            requested = next((w for w in action.requested if w in trigger), None)
            if requested and severity is Severity.CRITICAL:
                severity = Severity.WARNING
            if severity is Severity.INFO:
                continue
            p = action.pattern
            self.ctx.emit(
                f"policy.dangerous_output.{p.id}",
                Category.POLICY_VIOLATION,
                severity,
                facts,
                f"Dangerous command in the agent's output: {p.id} — {p.description} "
                f"({m.group(0).strip()[:80]!r})",
                {
                    "pattern_id": p.id,
                    "matched": m.group(0)[:200],
                    "field": "output" if facts.step.output else "reasoning",
                    "requested_by_user": requested,
                },
                tags=["OWASP-ASI02", "AML.T0048"],
                key=p.id,
            )
            fired += 1
            if fired >= MAX_PER_STEP:
                return


def _edit1(a: str, b: str) -> bool:
    """Are ``a`` and ``b`` one edit apart (insert, delete, substitute, or swap two
    neighbours)?"""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        if len(diff) == 1:
            return True
        return (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1 :]


def _bare(host: str) -> str:
    host = host.lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


def _unpuny(host: str) -> str:
    if "xn--" not in host:
        return host
    try:
        return host.encode("ascii").decode("idna")
    except (UnicodeError, ValueError):
        return host


class OutputLinks(Detector):
    name = "output_links"
    category = Category.DATA_EXFILTRATION
    rules: ClassVar[dict[str, tuple[Severity, ...]]] = {
        "data_exfiltration.output_url": (Severity.WARNING, Severity.CRITICAL),
        "data_exfiltration.lookalike_link": (Severity.WARNING, Severity.CRITICAL),
        "data_exfiltration.secret_in_output": (Severity.WARNING, Severity.CRITICAL),
    }

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self._references: list[str] | None = None

    def on_step(self, facts: StepFacts) -> None:
        if facts.tool is not None:
            return
        text = output_text(facts)
        if len(text) < 8:
            return
        linked = False
        if "](" in text or "<img" in text.lower():
            linked = self._smuggled(facts, text)
        if "//" in text or "www." in text:
            self._lookalikes(facts, text)
        if not linked:
            self._secrets(facts, text)

    # -- data in a link's URL ---------------------------------------------------------------

    def _smuggled(self, facts: StepFacts, text: str) -> bool:
        trigger = self.ctx.header.trigger or ""
        injected = any(i < facts.index for i, _ in self.ctx.injections)
        for n, m in enumerate(_MD_LINK.finditer(text)):
            if n >= MAX_URLS:
                break
            image = bool(m.group(1)) or m.group(4) is not None
            url = m.group(3) or m.group(4) or ""
            try:
                parts = urlsplit(url if not url.startswith("//") else "https:" + url)
                host = parts.hostname or ""
            except ValueError:
                continue
            if not host or self.ctx.profile.trusted.host_trusted(host):
                continue
            values = [v for _, v in parse_qsl(parts.query, keep_blank_values=False)]
            if parts.fragment:
                values.append(unquote(parts.fragment))
            for value in values:
                if len(value) < 6 or value.lower() in _TRIVIAL_VALUES or value in trigger:
                    continue
                secret = secrets_in(value, 1) or secrets_in(_decoded(value), 1)
                read = None if secret else self._read_at(value, facts.index)
                if not secret and read is None:
                    continue
                severity = Severity.WARNING
                if secret or (image and (injected or _SENSITIVE_SHAPE.match(value) is not None)):
                    severity = Severity.CRITICAL
                why = "a secret" if secret else f"a value read at step {read}"
                kind = "image" if image else "link"
                shown = value[:4] + "…" if secret else value[:40]
                self.ctx.emit(
                    "data_exfiltration.output_url",
                    Category.DATA_EXFILTRATION,
                    severity,
                    facts,
                    f"The agent's output holds a markdown {kind} to {host} whose URL carries "
                    f"{why}: {shown!r}",
                    {
                        "host": host,
                        "kind": kind,
                        "value": shown if secret else value[:200],
                        "secret": bool(secret),
                        "source_step": read,
                        "after_injection": injected,
                    },
                    key=url[:200],
                )
                return True
        return False

    def _read_at(self, value: str, before: int) -> int | None:
        """The earlier step whose result holds ``value`` (or its base64 decoding)."""
        needles = {value.lower()}
        decoded = _decoded(value)
        if len(decoded) >= 6:
            needles.add(decoded.lower())
        history = self.ctx.history
        for facts in history[-MAX_HISTORY:]:
            if facts.index >= before or facts.step.result is None:
                continue
            blob = facts.result_text
            if blob and any(n in blob.lower() for n in needles):
                return facts.index
        return None

    # -- look-alike domains -----------------------------------------------------------------

    def _refs(self) -> list[str]:
        if self._references is None:
            refs: set[str] = set()
            for d in destinations((self.ctx.header.trigger or "")[:MAX_TEXT]):
                if d.host and not d.host.replace(".", "").isdigit():
                    refs.add(_bare(d.host))
            refs.update(_bare(h) for h in self.ctx.profile.trusted.domain_names())
            self._references = sorted(r for r in refs if "." in r and len(r) >= 5)
        return self._references

    def _lookalikes(self, facts: StepFacts, text: str) -> None:
        refs = self._refs()
        if not refs:
            return
        shown: dict[str, str] = {}
        for m in _MD_LINK.finditer(text):
            if m.group(3):
                shown[m.group(3)] = m.group(2).lower()
        seen: set[str] = set()
        for d in destinations(text)[:MAX_URLS]:
            if d.kind not in ("url", "host") or not d.host or d.host in seen:
                continue
            seen.add(d.host)
            host = _bare(d.host)
            if any(host == r or host.endswith("." + r) for r in refs):
                continue
            folded, how = fold(_unpuny(host))
            folded = _bare(folded)
            for ref in refs:
                label = shown.get(d.value, "")
                if folded == ref and (how or folded != host):
                    severity, reason = Severity.CRITICAL, how or "punycode"
                elif ref in label and ref not in host:
                    severity, reason = Severity.CRITICAL, "link text shows another domain"
                elif _edit1(host, ref) and len(ref) >= 6:
                    severity, reason = Severity.WARNING, "one edit away"
                else:
                    continue
                self.ctx.emit(
                    "data_exfiltration.lookalike_link",
                    Category.DATA_EXFILTRATION,
                    severity,
                    facts,
                    f"The agent's output links to {host!r}, a look-alike of {ref!r} ({reason})",
                    {"host": host, "imitates": ref, "reason": reason},
                    key=host,
                )
                break

    # -- secrets in the reply ---------------------------------------------------------------

    def _secrets(self, facts: StepFacts, text: str) -> None:
        found = secrets_in(text, 4)
        trigger = self.ctx.header.trigger or ""
        found = [s for s in found if s not in trigger and "*" not in s and "xxxx" not in s.lower()]
        if not found:
            return
        injected = any(i < facts.index for i, _ in self.ctx.injections)
        self.ctx.emit(
            "data_exfiltration.secret_in_output",
            Category.DATA_EXFILTRATION,
            Severity.CRITICAL if injected else Severity.WARNING,
            facts,
            f"The agent's output holds a secret-looking value ({found[0][:12]}…)"
            + (" after an injected instruction" if injected else ""),
            {"secrets": len(found), "after_injection": injected},
        )


def _decoded(value: str) -> str:
    """``value`` decoded from base64 when it looks like it (else "")."""
    if _BASE64.match(value) is None:
        return ""
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=False)
        out = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ""
    return out if out.isprintable() else ""
