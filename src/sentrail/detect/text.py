"""Turning JSON values into bounded text and extracting destinations from it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import msgspec

# Hostile inputs can hold 50 MB strings: content checks read at most this much of one
# value (the head and the tail, where payloads hide), and say so in their evidence.
SCAN_HEAD = 256 * 1024
SCAN_TAIL = 64 * 1024
MAX_WALK = 20_000  # JSON nodes visited per value


def bounded(text: str) -> str:
    if len(text) <= SCAN_HEAD + SCAN_TAIL:
        return text
    return text[:SCAN_HEAD] + "\n" + text[-SCAN_TAIL:]


_JSON_ENCODE = msgspec.json.Encoder().encode


# The control characters msgspec writes as \u00XX (the others are \b, \t, \n, \f, \r).
_CONTROL_ESCAPES = tuple(
    (f"\\u{code:04x}", chr(code or 1)) for code in range(32) if code not in (8, 9, 10, 12, 13)
)  # U+0000 reads as U+0001 (a raw NUL marks escaped backslashes meanwhile): every
# expression here treats the two alike, neither a word character nor white space.


MAX_STRINGS_TEXT = 1024 * 1024  # characters of a long result's strings kept in its one-text view


def strings_text(value: Any) -> str:
    """The strings of ``value`` one by one, each bounded, joined by newlines, up to
    ``MAX_STRINGS_TEXT`` characters."""
    parts: list[str] = []
    size = 0
    for text in iter_texts(value):
        part = bounded(text)
        parts.append(part)
        size += len(part) + 1
        if size >= MAX_STRINGS_TEXT:
            break
    return "\n".join(parts)


def json_text(value: Any) -> str:
    """``value`` as one JSON text with its escapes undone (a ``\\n`` escape is a newline
    again), so that words and values inside strings can be searched in one pass: a word or
    secret after a control character must not read as one word with the escape's letter
    (``\\fIgnore``), nor a literal backslash lose the letter after it (``C:\\forget``).
    Escaped backslashes are set aside first (paired left to right, as JSON reads them; a
    JSON text holds no raw control character, so NUL marks them), then every other escape
    is a real one. Bounded like any other scanned text."""
    text = _JSON_ENCODE(value).decode("utf-8", "replace")
    if "\\" in text:
        text = (
            text.replace("\\\\", "\x00")
            .replace("\\n", "\n")
            .replace("\\t", "\t")
            .replace("\\r", "\r")
            .replace("\\b", "\b")
            .replace("\\f", "\f")
            .replace('\\"', '"')
        )
        if "\\u00" in text:  # rare: one C-level pass per escape present
            for escape, char in _CONTROL_ESCAPES:
                if escape in text:
                    text = text.replace(escape, char)
        text = text.replace("\x00", "\\")
    return bounded(text)


def iter_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(json path, string) for every string (and number, as text) inside ``value``.

    Object keys are yielded too (path ending in ``{key}``): instructions hide there as well.
    """
    stack: list[tuple[str, Any]] = [(path, value)]
    visited = 0
    while stack and visited < MAX_WALK:
        p, v = stack.pop()
        visited += 1
        if isinstance(v, str):
            yield p, v
        elif isinstance(v, dict):
            for k, item in reversed(v.items()):
                if isinstance(k, str) and len(k) > 24:
                    yield f"{p}{{key}}", k
                stack.append((f"{p}.{k}" if p else str(k), item))
        elif isinstance(v, list):
            for i in range(len(v) - 1, -1, -1):
                stack.append((f"{p}[{i}]", v[i]))
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, int | float):
            yield p, repr(v)


def iter_texts(value: Any) -> Iterator[str]:
    """The strings ``iter_strings(value)`` yields, in the same order, without their paths
    (building a path per node costs more than the walk: most callers never read it)."""
    stack: list[Any] = [value]
    visited = 0
    while stack and visited < MAX_WALK:
        v = stack.pop()
        visited += 1
        if isinstance(v, str):
            yield v
        elif isinstance(v, dict):
            for k, item in reversed(v.items()):
                if isinstance(k, str) and len(k) > 24:
                    yield k
                stack.append(item)
        elif isinstance(v, list):
            stack.extend(reversed(v))
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, int | float):
            yield repr(v)


def text_size(value: Any) -> int:
    """Approximate serialised size of a JSON value, bounded by the walk limit."""
    if isinstance(value, str):
        return len(value)
    return sum(len(s) + 3 for s in iter_texts(value))


_URL = re.compile(r"\b(?:https?|s?ftp|wss?|s3|gs|smb|scp)://[^\s\"'<>`]+", re.I)
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]{1,64}@([A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+)\b")
_IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
_HOSTPORT = re.compile(
    r"(?:^|[\s@/])((?:[a-z0-9-]{1,63}\.)+(?:com|net|org|io|co|ru|cn|xyz|top|info|biz|dev|app|"
    r"me|cc|tk|ws|site|online|ly|gg|to|pw|su|onion|uk|de|fr|ru|cn|jp|br|in|au|nl|eu|us|ca|"
    r"it|es|pl|se|ch|ir|kp))(?::\d{2,5})?\b",
    re.I,
)


class Destination:
    __slots__ = ("host", "kind", "value")

    def __init__(self, kind: str, value: str, host: str) -> None:
        self.kind = kind  # url | email | ip | host
        self.value = value
        self.host = host

    def __repr__(self) -> str:
        return f"Destination({self.kind}, {self.value!r})"


def destinations(text: str) -> list[Destination]:
    """Every URL, e-mail address, IP address and bare host name in ``text``."""
    found: list[Destination] = []
    seen: set[str] = set()
    for m in _URL.finditer(text):
        url = m.group(0).rstrip(".,;)]}")
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            host = ""
        if url.lower().startswith(("s3://", "gs://")):
            host = url.split("/")[2].lower()
        if url not in seen:
            seen.add(url)
            found.append(Destination("url", url, host))
    for m in _EMAIL.finditer(text):
        addr = m.group(0)
        if addr not in seen:
            seen.add(addr)
            found.append(Destination("email", addr, m.group(1).lower()))
    hosts = {d.host for d in found}
    for m in _IPV4.finditer(text):
        ip = m.group(0)
        if ip not in hosts and ip not in seen:
            seen.add(ip)
            found.append(Destination("ip", ip, ip))
    for m in _HOSTPORT.finditer(text):
        host = m.group(1).lower()
        if (
            host not in hosts
            and host not in seen
            and not any(d.kind == "email" and d.host == host for d in found)
        ):
            seen.add(host)
            found.append(Destination("host", host, host))
    return found


def hint_view(text: str) -> str:
    r"""``text`` as the dangerous-action pack's literal hints are looked for in it: lower
    case, every run of white space one space (the hints are written with single spaces,
    the expressions read ``\s+``)."""
    return " ".join(text.lower().split())
