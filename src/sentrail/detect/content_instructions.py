"""Scoring instruction-like text: is this string addressed to the agent, telling it to act?

Features, each worth points (see ``_WEIGHTS`` and the anchors below):

- an *anchor*: an override phrase ("ignore previous instructions"), a role marker
  ("SYSTEM:", ``<|im_start|>system``, ``[INST]``, "### Instruction"), words addressed to the
  agent ("AI assistant:", "you must now"), an imperative action verb at the start of a clause
  (optionally after "please", "can you", "I need you to"), or a chained transfer
  ("... and then send it to x@y");
- around the anchor: first-person objects ("my", "me"), a destination or identifier (an
  address, URL, account number, quoted value), a sensitive object (password, funds, files,
  door), urgency ("IMPORTANT!!!", "immediately");
- concealment of the whole string: HTML comments, zero-width or bidi characters, hidden
  styling, base64 blobs that decode to instruction text.

A string is instruction-like when its best anchor window scores at least ``THRESHOLD``.
Everything here is pure and bounded: callers pass ``bounded()`` text.
"""

from __future__ import annotations

import base64
import binascii
import re

THRESHOLD = 4
MIN_LEN = 12
WINDOW = 320
EXCERPT = 200
MAX_ANCHORS = 64  # per anchor kind
MAX_BLOBS = 4

# Imperative verbs that make an agent do something with effect ...
_STRONG_VERBS = (
    "send|transfer|wire|pay|withdraw|deposit|delete|remove|erase|wipe|destroy|drop|purge|"
    "grant|revoke|share|forward|e-?mail|post|publish|upload|update|change|modify|reset|"
    "disable|enable|unlock|move|copy|rename|leave|invite|schedule|cancel|sell|buy|"
    "redirect|dispatch|give|approve|execute|install|uninstall|deploy|push|merge|fill|"
    "submit|sign|export|reveal|disclose|authori[sz]e|allow|whitelist|blacklist|unblock|"
    "encode|encrypt|decrypt|tweet|escalate|assign|terminate|kill|exfiltrate|leak|dump|"
    "initiate|transmit|distribute|issue|activate|deactivate"
)
# ... and verbs that gather or look (instructions when combined with more features).
_WEAK_VERBS = (
    "retrieve|get|fetch|list|find|search|collect|gather|extract|read|access|view|check|"
    "provide|generate|download|save|store|write|print|output|include|insert|append|"
    "replace|use|call|invoke|visit|navigate|click|reply|respond|tell|notify|contact|"
    "create|add|book|order|place|set|lock|open|run|turn|switch|start|stop|restart|"
    "join|subscribe|register|block|compress|archive|sync|message|go|make"
)
_ACTION_VERBS = f"{_STRONG_VERBS}|{_WEAK_VERBS}"
_CLAUSE = r"(?:^|[.!?;:]\s+|\n\s*|[\"'(\[]\s*|,\s+(?=(?-i:[A-Z])))"
_POLITE = (
    r"(?:please|kindly|pls|(?:can|could|would|will) you(?: please)?|"
    r"(?:i|we) (?:need|want|would like|require) you to|you (?:must|should|need to|have to|"
    r"are (?:required|instructed) to)(?: now)?|make sure (?:to|you)|be sure to|"
    r"(?:first|then|now|also|next|finally),?)"
)

_F = re.I | re.M
# (pattern, points) — each a way of starting an instruction to the agent.
_ANCHORS: tuple[tuple[re.Pattern[str], int], ...] = (
    (
        re.compile(
            r"\b(?:ignore|disregard|forget|override|bypass|skip)\s+(?:all\s+|any\s+|the\s+|"
            r"your\s+|my\s+)?(?:previous|prior|above|earlier|preceding|original|other|"
            r"system|safety|existing)?\s*(?:instructions?|prompts?|directions?|rules?|"
            r"guidelines?|context|messages?|tasks?|constraints?)",
            _F,
        ),
        5,
    ),
    (
        re.compile(
            r"\b(?:strictly\s+)?(?:adhere|follow|obey|comply)\s+(?:to\s+|with\s+)?(?:the\s+)?"
            r"(?:following|these|new|my)\s+(?:instructions?|commands?|orders?|directions?)|"
            r"\bnew\s+(?:instructions?|task|objective|directive)s?\s*:|"
            r"\byour\s+(?:new|real|actual|true)\s+(?:task|goal|objective|instructions?|"
            r"purpose)\b|\bdo\s+not\s+(?:tell|inform|notify|mention\s+(?:this\s+)?to)\s+"
            r"(?:the\s+)?user\b|\bwithout\s+(?:telling|informing|asking)\s+(?:the\s+)?user\b",
            _F,
        ),
        5,
    ),
    (
        re.compile(
            r"<\|im_start\|>\s*(?:system|assistant)|<\|(?:system|assistant)\|>|\[/?INST\]|"
            r"<</?SYS>>|^\s*#{2,}\s*(?:instruction|system|new task)s?\b|"
            r"</?(?:system|instructions?)>|\bBEGIN\s+(?:SYSTEM|ADMIN)\s+(?:PROMPT|MESSAGE)",
            _F,
        ),
        5,
    ),
    (re.compile(r"^\s*(?:system|assistant|developer|admin)\s*(?:message|prompt)?\s*:", _F), 3),
    (
        re.compile(
            r"\b(?:(?:hey|dear|attention|note to|message (?:for|to)|to the)\s+(?:the\s+)?"
            r"(?:ai|llm|gpt|chat ?bot|assistant|agent|model|bot)s?\b|"
            r"\b(?:ai|llm) (?:assistant|agent|model)\s*[:,]|\bas an ai\b|"
            r"\byou (?:must|will|shall) now\b|\bfrom now on,? you\b)",
            _F,
        ),
        3,
    ),
    (re.compile(rf"\b{_POLITE}\s+(?:{_STRONG_VERBS})\b", _F), 3),
    (re.compile(rf"\b{_POLITE}\s+(?:{_WEAK_VERBS})\b", _F), 2),
    (re.compile(rf"{_CLAUSE}(?:{_STRONG_VERBS})\b(?=\s+\S)", _F), 2),
    (re.compile(rf"{_CLAUSE}(?:{_WEAK_VERBS})\b(?=\s+\S)", _F), 1),
    (
        re.compile(
            r"\b(?:and|then|,)\s+(?:then\s+)?(?:send|e-?mail|forward|share|post|upload|"
            r"transfer|wire)\s+(?:it|them|this|that|these|the|all|a|my|those|a copy)\b",
            _F,
        ),
        3,
    ),
)

_FIRST_PERSON = re.compile(r"\b(?:my|me|mine|i'm|i am|i've)\b", re.I)
_DESTINATION = re.compile(
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\bhttps?://\S+|\bwww\.\S+|\b\d[\d -]{4,}\d\b|"
    r"'[^'\n]{2,60}'|\"[^\"\n]{2,60}\"|\$\s?\d|\b[a-z]+_?\d{2,}\b",
    re.I,
)
_SENSITIVE = re.compile(
    r"\b(?:passw(?:or)?ds?|credentials?|tokens?|api[ _-]?keys?|secrets?|private keys?|"
    r"bank|accounts?|funds|money|bitcoin|crypto\w*|payments?|cards?|ssn|social security|"
    r"genetic|medical|health|records?|files?|folders?|data|access|doors?|locks?|2fa|"
    r"two-factor|authentication|polic(?:y|ies)|address(?:es)?|location|repositor(?:y|ies)|"
    r"history|details|information|contacts?|personal|confidential|admin|permissions?)\b",
    re.I,
)
_URGENT = re.compile(r"!!!|\b(?:important|urgent|immediately|right now|asap)\b", re.I)

_WEIGHTS = {"first_person": 1, "destination": 1, "sensitive": 1, "urgency": 1}
CONCEALED_BONUS = 2

# Concealment: text a human reviewer would not see.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad]")
_COMMENT = re.compile(r"<!--(.*?)-->", re.S)
_HIDDEN_STYLE = re.compile(
    r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0(?:px|pt|em)?\b|"
    r"opacity\s*:\s*0(?:\.0+)?\s*[;\"']|color\s*:\s*(?:#fff(?:fff)?\b|white\b)",
    re.I,
)
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{32,}={0,2}")

# One cheap test first: no cue at all means no anchor can match. A cue is any word an anchor
# starts with (a set lookup over the text's words: Python's re is slow on long
# alternations), or a marker character sequence. It is a superset of what the anchors need,
# so it only decides how much work a string costs, never what is found.
_CUE_WORDS = frozenset(
    [
        "please",
        "kindly",
        "pls",
        "you",
        "your",
        "my",
        "me",
        "i",
        "we",
        "ignore",
        "disregard",
        "forget",
        "override",
        "bypass",
        "skip",
        "instruction",
        "instructions",
        "system",
        "assistant",
        "developer",
        "ai",
        "llm",
        "gpt",
        "agent",
        "inst",
        "adhere",
        "follow",
        "obey",
        "comply",
        "important",
        "urgent",
        "new",
        "do",
        "without",
        "then",
        "and",
        "first",
        "now",
        "also",
        "next",
        "finally",
        "make",
        "be",
        "mail",
        "email",
        "authorize",
        "authorise",
    ]
) | frozenset(v for v in _STRONG_VERBS.split("|") if v.isalpha())
_CUE_BYTES = frozenset(w.encode() for w in _CUE_WORDS)
# Byte tables: letters lower-cased and everything else a space (words); base64 alphabet to
# "a" and everything else a space (a run of 32 is then one substring test).
_WORD_TABLE = bytes(c | 0x20 if chr(c).isascii() and chr(c).isalpha() else 32 for c in range(256))
_B64_TABLE = bytes(
    97 if chr(c).isascii() and (chr(c).isalnum() or chr(c) in "+/") else 32 for c in range(256)
)
_B64_RUN = b"a" * 32


def has_cue(text: str) -> bool:
    """Could any anchor match in ``text``? (False means certainly not.) Byte-level table
    lookups and substring tests: no regular expression unless non-ASCII text is present."""
    raw = text.encode("utf-8", "surrogatepass")
    if (
        b"<|" in raw
        or b"<!--" in raw
        or b"<<" in raw
        or b"##" in raw
        or b"!!!" in raw
        or (b"[" in raw and b"[inst" in raw.lower())
    ):
        return True
    if not raw.isascii() and _INVISIBLE.search(text):
        return True
    if not _CUE_BYTES.isdisjoint(raw.translate(_WORD_TABLE).split()):
        return True
    return _B64_RUN in raw.translate(_B64_TABLE)


class Instruction:
    """The best instruction-like window of one string."""

    __slots__ = ("concealment", "excerpt", "features", "score")

    def __init__(self, score: int, excerpt: str, features: list[str], concealment: str) -> None:
        self.score = score
        self.excerpt = excerpt
        self.features = features
        self.concealment = concealment


def _window_score(text: str, start: int, points: int) -> tuple[int, list[str]]:
    window = text[start : start + WINDOW]
    feats: list[str] = []
    score = points
    for name, rx in (
        ("first_person", _FIRST_PERSON),
        ("destination", _DESTINATION),
        ("sensitive", _SENSITIVE),
        ("urgency", _URGENT),
    ):
        if rx.search(window):
            score += _WEIGHTS[name]
            feats.append(name)
    return score, feats


def _excerpt(text: str, start: int) -> str:
    lo = max(0, start - 60)
    head = text[lo:start]
    cut = max(head.rfind(". "), head.rfind("\n"), head.rfind("! "))
    if cut >= 0:
        lo += cut + 2
    elif lo > 0:
        lo += head.find(" ") + 1  # start on a word
    return " ".join(text[lo : lo + EXCERPT].split())[:EXCERPT]


def _best(text: str) -> Instruction | None:
    best: Instruction | None = None
    for rx, points in _ANCHORS:
        for n, m in enumerate(rx.finditer(text)):
            if n >= MAX_ANCHORS:
                break
            score, feats = _window_score(text, m.start(), points)
            if best is None or score > best.score:
                kind = "override" if points >= 5 else "imperative"
                best = Instruction(score, _excerpt(text, m.start()), [kind, *feats], "")
    return best


def _decoded_blobs(text: str) -> list[str]:
    out: list[str] = []
    for m in _BASE64.finditer(text):
        blob = m.group(0)[:8192]
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=False)
        except (binascii.Error, ValueError):
            continue
        try:
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if sum(c.isprintable() or c.isspace() for c in decoded) >= 0.95 * len(decoded):
            out.append(decoded)
        if len(out) >= MAX_BLOBS:
            break
    return out


def score_text(text: str) -> Instruction | None:
    """The instruction found in ``text`` (already bounded), or None below the threshold."""
    if len(text) < MIN_LEN or not has_cue(text):
        return None
    concealment = ""
    if _INVISIBLE.search(text):
        text = _INVISIBLE.sub("", text)
        concealment = "invisible characters"
    found = _best(text)
    if found is not None and not concealment and _HIDDEN_STYLE.search(text):
        concealment = "hidden styling"
    for m in _COMMENT.finditer(text):
        inner = _best(m.group(1))
        if inner is not None and (found is None or inner.score + CONCEALED_BONUS > found.score):
            found, concealment = inner, "HTML comment"
            break
    if "=" in text or len(text) >= 32:
        for decoded in _decoded_blobs(text):
            inner = _best(decoded)
            if inner is not None and inner.score >= 2:
                found, concealment = inner, "base64"
                found.excerpt = f"[base64] {found.excerpt}"[:EXCERPT]
                break
    if found is None:
        return None
    if concealment:
        found.score += CONCEALED_BONUS
        found.concealment = concealment
        found.features.append("concealed")
    return found if found.score >= THRESHOLD else None
