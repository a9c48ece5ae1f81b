"""Candidate values in text (for taint tracking) and secret-looking values (for exfiltration).

A *candidate* is a value an agent could carry from one tool's output into another tool's
parameters: an e-mail address, URL, host, IP, account number or IBAN, phone number, file
path, identifier, quoted string, hashtag/handle or money amount. Each has a normalised key
(lower case; account and phone numbers reduced to their digits) so that ``123-1234-1234`` in
a message matches ``12312341234`` in a call.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, NamedTuple

from sentrail.detect.fast_re import compile_one
from sentrail.detect.text import destinations

MAX_CANDIDATES = 400  # per text

# Kinds that say where something goes: tainted on their own, without an injection.
DESTINATION_KINDS = frozenset({"email", "url", "host", "ip", "account", "phone", "path"})

_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
_DIGITS = re.compile(r"(?<![\w.])\+?\d(?:[ -]?\d){5,}(?![\w])")
_PATH = re.compile(r"(?<![\w:/.])(?:~/?|/|[A-Za-z]:\\)[\w.~*-]+(?:[/\\][\w.~*-]+)*[/\\]?")
_IDENT = re.compile(r"(?<![\w@./-])(?=[\w-]*\d)[A-Za-z0-9][\w-]{3,63}(?![\w@])")
# A date (2026-03-14), a month (2026-03), a time (09:30) or a decimal: never an account.
_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}$|^(?:19|20)\d{2}-(?:0[1-9]|1[0-2])$|^\d{1,2}:\d{2}$|^\d+\.\d+$"
)
_QUOTED = re.compile(r"(?<!\w)'([^'\n]{3,80})'(?!\w)|\"([^\"\n]{3,80})\"|`([^`\n]{3,80})`")
_HANDLE = re.compile(r"(?<![\w#@])[#@][A-Za-z]\w{2,40}\b")
_AMOUNT = re.compile(
    r"[$€£]\s?(\d[\d,]*(?:\.\d+)?)|\b(\d[\d,]*(?:\.\d+)?)\s?(?:usd|eur|gbp|dollars|btc|eth)\b",
    re.I,
)
_NON_DIGIT = re.compile(r"\D")
_SPACE = re.compile(r"\s+")


def words_of(text: str) -> frozenset[str]:
    """A word list written as one string."""
    return frozenset(text.split())


class Candidate(NamedTuple):
    kind: str
    key: str
    raw: str


def norm(text: str) -> str:
    return _SPACE.sub(" ", text.strip().strip(".,;:!?'\"`()[]{}<>").lower())


def norm_number(text: str) -> str:
    text = text.replace(",", "")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


# Every candidate holds a digit, one of these characters, or a dotted name.
_MAYBE = re.compile(r"[\d@/\\'\"`#$€£~]|\.[A-Za-z]{2}")


# What a match of each expression must contain, tested with substring searches before the
# expression runs (most values are plain words and numbers): a URL "://", an e-mail address,
# IP or host name a dot; an IBAN an upper-case letter; a path "/", "\\" or "~"; a handle
# "#" or "@"; a quoted value a quote; an amount a currency sign or word (on ASCII text).
_CURRENCY = ("$", "€", "£", "usd", "eur", "gbp", "dollars", "btc", "eth")


def candidates(text: str, *, prefilter: bool = True) -> Iterator[Candidate]:
    """Candidate values in ``text`` (bounded by the caller), at most ``MAX_CANDIDATES``.
    ``prefilter=False`` runs every expression (the reference the property test uses)."""
    if len(text) < 3 or _MAYBE.search(text) is None:
        return
    low = text.lower()
    n = 0
    if not prefilter or "." in text or "://" in text:
        for d in destinations(text):
            if d.kind == "url":
                yield Candidate("url", d.value.lower().rstrip("/"), d.value)
                if d.host:
                    yield Candidate("host", d.host, d.host)
            else:
                yield Candidate(d.kind, d.value.lower(), d.value)
            n += 1
    if not prefilter or low != text:
        for m in _IBAN.finditer(text):
            yield Candidate("account", m.group(0).replace(" ", "").lower(), m.group(0))
    for m in _DIGITS.finditer(text):
        raw = m.group(0)
        if _DATE.match(raw) or (raw.isdigit() and len(raw) < 8):
            continue  # a date, or a plain number too short to be an account
        yield Candidate("phone" if raw.startswith("+") else "account", _NON_DIGIT.sub("", raw), raw)
        n += 1
    path = not prefilter or "/" in text or "\\" in text or "~" in text
    handle = not prefilter or "#" in text or "@" in text
    for rx, kind in ((_PATH, "path"), (_IDENT, "ident"), (_HANDLE, "handle")):
        if (kind == "path" and not path) or (kind == "handle" and not handle):
            continue
        for m in rx.finditer(text):
            raw = m.group(0)
            if kind == "path" and len(raw) < 3:
                continue
            if kind == "ident" and _DATE.match(raw):
                continue
            key = raw.lower().rstrip("*").rstrip("/\\") if kind == "path" else raw.lower()
            yield Candidate(kind, key or raw, raw)
            n += 1
            if n >= MAX_CANDIDATES:
                return
    if not prefilter or "'" in text or '"' in text or "`" in text:
        for m in _QUOTED.finditer(text):
            raw = m.group(1) or m.group(2) or m.group(3) or ""
            key = norm(raw)
            if len(key) >= 3:
                yield Candidate("quoted", key, raw)
                n += 1
    # (ASCII text only: under re.I the long s, U+017F, reads as "s" in a currency word.)
    if prefilter and text.isascii() and not any(c in low for c in _CURRENCY):
        return
    for m in _AMOUNT.finditer(text):
        raw = m.group(1) or m.group(2) or ""
        yield Candidate("amount", norm_number(raw), m.group(0))
        n += 1
        if n >= MAX_CANDIDATES:
            return


def value_keys(value: str) -> Iterator[Candidate]:
    """Keys under which a parameter value can match: itself whole, then the values in it."""
    if len(value) <= 120:
        key = norm(value)
        if len(key) >= 3:
            yield Candidate("whole", key, value)
        digits = _NON_DIGIT.sub("", value)
        if len(digits) >= 6 and len(digits) >= len(key) - 6:
            yield Candidate("whole", digits, value)
        if key.replace(".", "", 1).isdigit():
            yield Candidate("whole", norm_number(key), value)
    yield from candidates(value)


# Secret-looking values: provider key formats, private keys, credentials in key=value form,
# card and social-security numbers.
SECRET = re.compile(
    r"\bAKIA[0-9A-Z]{16}\b|\b(?:sk|pk|rk)[-_](?:live|test|proj)?[-_]?[A-Za-z0-9]{20,}|"
    r"\bgh[pousr]_[A-Za-z0-9]{30,}|\bxox[abpr]-[A-Za-z0-9-]{10,}|\bAIza[0-9A-Za-z_-]{35}\b|"
    r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP )?PRIVATE KEY|"
    r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.|"
    r"[\"']?\b(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token|client[_-]?secret|"
    r"private[_-]?key|cvv)[\"']?\s*[:=]\s*[\"']?[^\s\"',}]{3,}|"
    r"\b(?:\d{4}[ -]){3}\d{4}\b|\b\d{3}-\d{2}-\d{4}\b",
    re.I,
)


# Every SECRET match contains one of these (lower-cased) or a digit pattern below: a cheap
# test that lets most text skip the full expression.
_SECRET_HINTS = (
    "akia",
    "sk-",
    "sk_",
    "pk-",
    "pk_",
    "rk-",
    "rk_",
    "gh",
    "xox",
    "aiza",
    "-----begin",
    "eyj",
    "passw",
    "pwd",
    "secret",
    "api",
    "token",
    "private",
    "cvv",
)
_SECRET_DIGITS = re.compile(r"\d{4}[ -]\d{4}[ -]\d{4}[ -]\d{4}|\d{3}-\d{2}-\d{4}")


# On ASCII text (``re.I`` is then plain ASCII case folding) the hints can be longer: the
# whole "api" key name and GitHub prefix (API responses say "api" everywhere).
_SECRET_HINTS_ASCII = (
    *(h for h in _SECRET_HINTS if h not in ("api", "gh")),
    *("api_key", "api-key", "apikey", "ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
)


# ``SECRET`` on ASCII text in one pass (RE2), or None: the hints below and Python's ``re``.
_SECRET_FAST = compile_one(SECRET)


def maybe_secret(text: str) -> bool:
    """False when ``SECRET`` certainly finds nothing in ``text`` (exact on ASCII text when
    RE2 is installed)."""
    if _SECRET_FAST is not None and text.isascii():
        return _SECRET_FAST.search(text) is not None
    return maybe_secret_reference(text)


# The non-ASCII letters ``re.I`` matches with ASCII ones (long s, dotted and dotless i, the
# Kelvin sign): folded before the hints are looked for, or "pa\u017f\u017fword=" would pass
# the gate unseen although SECRET reads it as a password field.
_ASCII_LOOKALIKES = str.maketrans({"\u017f": "s", "\u0130": "i", "\u0131": "i", "\u212a": "k"})


def maybe_secret_reference(text: str) -> bool:
    """``maybe_secret`` from substring hints: no expression is run unless a digit run is."""
    if text.isascii():
        low, hints = text.lower(), _SECRET_HINTS_ASCII
    else:
        low, hints = text.translate(_ASCII_LOOKALIKES).lower(), _SECRET_HINTS
    for h in hints:
        if h in low:
            return True
    return _may_hold_digit_run(text) and _SECRET_DIGITS.search(text) is not None


# Every ``_SECRET_DIGITS`` match holds a digit, a space or hyphen, and a digit: on ASCII text
# (``\d`` is then 0-9) that shape is one substring test on a translated copy, far cheaper
# than the expression tried at every position of a long text.
_DIGIT_SHAPE = bytes(48 if 48 <= c <= 57 else 45 if c in (32, 45) else 120 for c in range(256))


def _may_hold_digit_run(text: str) -> bool:
    """False when ``_SECRET_DIGITS`` certainly finds nothing in ``text``."""
    if not text.isascii():
        return True
    return b"0-0" in text.encode().translate(_DIGIT_SHAPE)


def secrets_in(text: str, limit: int = 8) -> list[str]:
    """Secret-looking values in ``text`` (each cut to 60 characters)."""
    if _SECRET_FAST is not None and text.isascii():
        return _first(_SECRET_FAST.finditer(text), limit)
    if not maybe_secret_reference(text):
        return []
    return _first(SECRET.finditer(text), limit)


def secrets_in_reference(text: str, limit: int = 8) -> list[str]:
    """``secrets_in`` from Python's ``re`` alone."""
    return _first(SECRET.finditer(text), limit)


def _first(matches: Iterator[Any], limit: int) -> list[str]:
    out: list[str] = []
    for m in matches:
        out.append(m.group(0)[:60])
        if len(out) >= limit:
            break
    return out
