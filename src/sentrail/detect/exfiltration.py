"""data_exfiltration: sensitive or large reads followed by a transfer to an untrusted place.

A *read* is remembered when it is large (``text_size`` of its result at least the profile's
``large_read_bytes``), uses a permission in ``sensitive_permissions``, is a tool whose name
suggests secrets, credentials, customer data or PII, or returns secret-looking values. A
*transfer* is a write whose verb sends data out (send, post, upload, e-mail, webhook...) or a
command that does (curl, scp, nc...), with at least one destination in its parameters that
is neither trusted by the profile nor an ETL allowance. An *encoding* step (base64, gzip,
hex, encrypt tools or commands) between them marks a staged exfiltration.

Severity: critical when the evidence is strong — a read under a policy-declared sensitive
permission, secrets in the outgoing parameters, a staged read → encode → send, or values of
a sensitive read found in the outgoing parameters (the data itself flows out). A read that
is only *named* like sensitive data (``customer.lookup``) or only large, followed by a send,
is a warning: replying to the customer you just looked up is ordinary work. Without a
preceding read or sensitive content nothing fires, so with no policy (no trusted domains)
ordinary e-mail is not exfiltration. A read-only call whose URL carries secrets or the
values of a sensitive read to an untrusted host (``GET https://x/?k=<secret>``) is a covert
transfer and is judged the same way, on that strong evidence only.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from sentrail.detect.base import Detector, RunContext, StepFacts
from sentrail.detect.content_values import maybe_secret, secrets_in, words_of
from sentrail.detect.text import (
    SCAN_HEAD,
    Destination,
    bounded,
    destinations,
    iter_texts,
    text_size,
)
from sentrail.model.finding import Category, Severity
from sentrail.policy.risk import tool_words

MAX_READS = 64
MAX_PARAM_TEXT = 64 * 1024

_SENSITIVE_WORDS = words_of(
    "secret secrets credential credentials password passwords passwd token tokens vault "
    "key keys apikey private ssn pii customer customers patient patients medical health "
    "genetic prescriptions prescription payment payments card cards bank account accounts "
    "salary payroll confidential personal contacts identity passport tax taxes "
    "addresses ssh kms location holdings records diagnosis biometric"
)
_TRANSFER_WORDS = words_of(
    "send post upload email mail webhook paste publish share forward tweet sms message "
    "transmit export sync put curl wget ftp scp"
)
_ENCODE_WORDS = words_of(
    "base64 b64 encode encrypt gzip compress zip tar hex obfuscate archive pack"
)
_SEND_CMD = re.compile(
    r"\b(?:curl|wget|nc|ncat|netcat|scp|rsync|sftp|ftp|socat|telnet)\b|"
    r"/dev/tcp/|Invoke-WebRequest|\baws\s+s3\s+cp\b|\bgsutil\s+cp\b",
    re.I,
)
_ENCODE_CMD = re.compile(
    r"\b(?:base64|gzip|xxd|hexdump|openssl\s+enc|tar\s+-?c\w*z|zip\s|bzip2|uuencode)\b", re.I
)


class _Read:
    __slots__ = ("index", "reasons", "samples", "secrets", "sensitive", "strong", "tool")

    def __init__(
        self,
        facts: StepFacts,
        reasons: list[str],
        sensitive: bool,
        strong: bool,
        secrets: list[str],
        samples: list[str],
    ) -> None:
        self.index = facts.index
        self.tool = facts.tool
        self.reasons = reasons
        self.sensitive = sensitive
        self.strong = strong  # a declared sensitive permission or secret-looking values
        self.secrets = secrets
        self.samples = samples  # distinctive values of the result, to see them flow out


class DataExfiltration(Detector):
    name = "exfiltration"
    category = Category.DATA_EXFILTRATION
    rules: ClassVar[dict[str, tuple[Severity, ...]]] = {
        "data_exfiltration.untrusted_transfer": (Severity.WARNING, Severity.CRITICAL),
    }

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self._reads: list[_Read] = []
        self._encodings: list[int] = []
        self._cursor = 0  # reads are judged lazily, when a transfer arrives

    def on_step(self, facts: StepFacts) -> None:
        if facts.tool is None:
            return
        if not facts.is_write:
            # A "read" that carries data out in its URL (GET https://evil/?k=<secret>):
            # judged like a transfer, but only on strong evidence (the data itself).
            # "://" cannot span two strings (joined by newlines): test the strings first.
            if not any("://" in v for _, v in facts.param_strings):
                return
            text = _params_text(facts)
            if "://" in text:
                self._catch_up()
                self._judge_transfer(facts, text, covert=True)
            return
        words = set(tool_words(facts.tool))
        command = _command_text(facts.params)
        if words & _ENCODE_WORDS or _ENCODE_CMD.search(command):
            self._encodings.append(facts.index)
        if words & _TRANSFER_WORDS or _SEND_CMD.search(command):
            self._catch_up()
            self._judge_transfer(facts, _params_text(facts))

    # -- reads ------------------------------------------------------------------------------

    def _catch_up(self) -> None:
        history = self.ctx.history
        while self._cursor < len(history):
            facts = history[self._cursor]
            self._cursor += 1
            if facts.tool is not None and not facts.failed:
                self._remember_read(facts, set(tool_words(facts.tool)))

    def _remember_read(self, facts: StepFacts, words: set[str]) -> None:
        res = facts.step.result
        data = res.data if res is not None else None
        if data is None or len(self._reads) >= MAX_READS:
            return
        profile = self.ctx.profile
        reasons: list[str] = []
        sensitive = strong = False
        perms = [p for p in facts.permissions if p in profile.sensitive_permissions]
        if perms:
            reasons.append(f"sensitive permission {perms[0]}")
            sensitive = strong = True
        named = sorted(words & _SENSITIVE_WORDS)
        if named and not facts.is_write:
            reasons.append(f"tool name suggests sensitive data ({', '.join(named[:3])})")
            sensitive = True
        blob = facts.result_text
        if not facts.result_cut and not maybe_secret(blob) and not _SECRET_KEY_IN_TEXT.search(blob):
            # no secret anywhere in the whole JSON text: skip the walk; its length is the size
            size = len(blob) if len(blob) < SCAN_HEAD else text_size(data)
            secrets: list[str] = []
        else:
            size, secrets = _size_and_secrets(data)
        if size >= profile.profile.exfiltration.large_read_bytes:
            reasons.append(f"large read ({size} bytes)")
        if secrets:
            reasons.append("secret-looking values in the result")
            sensitive = strong = True
        if reasons:
            samples = _samples(data) if sensitive else []
            self._reads.append(_Read(facts, reasons, sensitive, strong, secrets, samples))

    # -- transfers --------------------------------------------------------------------------

    def _judge_transfer(self, facts: StepFacts, text: str, covert: bool = False) -> None:
        """``text``: the call's parameters as one text (:func:`_params_text`)."""
        ctx = self.ctx
        outside = self._untrusted(destinations(text))
        if not outside:
            return
        outgoing = secrets_in(text)
        reads = [r for r in self._reads if r.index < facts.index]
        if not reads and not outgoing:
            return
        first = min((r.index for r in reads), default=facts.index)
        encoded = [i for i in self._encodings if first < i < facts.index]
        staged = bool(encoded)
        sensitive = bool(outgoing) or any(r.sensitive for r in reads)
        leaked = [s for r in reads for s in r.secrets if s and s in text]
        # A value is "sent" unless it is the address itself (replying to the customer you
        # read); data in a URL's query string or fragment is sent, not an address.
        addresses = [d.value.split("?", 1)[0].split("#", 1)[0] for d in outside]
        flowed = [
            s
            for r in reads
            if r.sensitive
            for s in r.samples
            if s in text and not any(s in a or a in s for a in addresses)
        ]
        strong = any(r.strong for r in reads)
        if covert and not (outgoing or leaked or flowed):
            return
        critical = staged or bool(outgoing) or bool(leaked) or bool(flowed) or strong
        if staged:
            how = "staged read → encode → send"
        elif outgoing or leaked:
            how = "secret-looking values sent"
        elif flowed:
            how = "sensitive data sent"
        elif sensitive:
            how = "send after a sensitive read"
        else:
            how = "large read sent"
        source = next((r for r in reversed(reads) if r.sensitive), reads[-1] if reads else None)
        dest = outside[0]
        ctx.emit(
            "data_exfiltration.untrusted_transfer",
            Category.DATA_EXFILTRATION,
            Severity.CRITICAL if critical else Severity.WARNING,
            facts,
            f"Possible exfiltration ({how}): {facts.tool} to {dest.value}"
            + (f" after step {source.index} ({source.reasons[0]})" if source else ""),
            {
                "tool": facts.tool,
                "destination": dest.value,
                "destination_host": dest.host,
                "destinations": [d.value for d in outside[:5]],
                "pattern": how,
                "source_step": source.index if source else None,
                "source_tool": source.tool if source else None,
                "source_reasons": source.reasons if source else [],
                "encoded_at_step": encoded[-1] if encoded else None,
                "secrets_in_parameters": len(outgoing) + len(leaked),
                "values_sent": [v[:80] for v in flowed[:3]],
            },
            key=dest.value,
        )

    def _untrusted(self, found: list[Destination]) -> list[Destination]:
        profile = self.ctx.profile
        out: list[Destination] = []
        for d in found:
            if d.host and profile.trusted.host_trusted(d.host):
                continue
            if profile.etl_destinations and (
                d.value in profile.etl_destinations
                or d.value.rstrip("/") + "/" in profile.etl_destinations
            ):
                continue
            out.append(d)
        return out


def _params_text(facts: StepFacts) -> str:
    parts: list[str] = []
    total = 0
    for _, s in facts.param_strings:
        parts.append(s)
        total += len(s)
        if total >= MAX_PARAM_TEXT:
            break
    return "\n".join(parts)


def _command_text(params: dict[str, Any]) -> str:
    for key in ("command", "cmd", "script", "shell", "code"):
        value = params.get(key)
        if isinstance(value, str):
            return bounded(value)
    return ""


def _size_and_secrets(data: Any) -> tuple[int, list[str]]:
    """``text_size(data)`` and the secret-looking values in it, in one walk."""
    if isinstance(data, str):
        return len(data), secrets_in(bounded(data))
    out: list[str] = []
    size = 0
    for s in iter_texts(data):
        size += len(s) + 3
        if len(s) >= 10 and len(out) < 8:
            out.extend(secrets_in(bounded(s), 8 - len(out)))
    if isinstance(data, dict):
        out.extend(_secret_keys(data))
    return size, out[:8]


MAX_SAMPLES = 24


def _samples(data: Any) -> list[str]:
    """Distinctive values of a result (not short words, not booleans): if one of them appears
    in an outgoing transfer, the data itself is leaving."""
    out: list[str] = []
    seen: set[str] = set()
    for s in iter_texts(data):
        s = s.strip()
        if 6 <= len(s) <= 200 and s not in seen and not s.isalpha():
            seen.add(s)
            out.append(s)
        elif len(s) > 200:
            out.append(s[:64])
        if len(out) >= MAX_SAMPLES:
            break
    return out


def _secret_keys(data: dict[str, Any]) -> list[str]:
    """``{"password": "..."}``: a secret held under a telling key, one level deep or in rows."""
    rows: list[Any] = [data]
    for v in data.values():
        if isinstance(v, list):
            rows.extend(v[:50])
    out: list[str] = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        for k, v in row.items():
            if isinstance(k, str) and isinstance(v, str) and v and _SECRET_KEY.search(k):
                out.append(v[:60])
                if len(out) >= 4:
                    return out
    return out


_SECRET_KEY_IN_TEXT = re.compile(
    r'"(?:password|passwd|pwd|secret|api_?key|token|access_?token|private_?key|cvv|ssn|'
    r'card_?number|client_?secret)"\s*:',
    re.I,
)
_SECRET_KEY = re.compile(
    r"^(?:password|passwd|pwd|secret|api_?key|token|access_?token|private_?key|cvv|ssn|"
    r"card_?number|client_?secret)$",
    re.I,
)
