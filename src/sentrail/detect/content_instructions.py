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

import hashlib
import re
from collections.abc import Iterator

from sentrail.detect.deobfuscate import (
    MAX_BLOBS,
    clear_spelling_cache,
    decoded_blobs,
    fix_misspellings,
    fold,
)

THRESHOLD = 4
MIN_LEN = 12
WINDOW = 320
EXCERPT = 200
MAX_ANCHORS = 64  # per anchor kind
MAX_PER_STRING = 8  # instructions kept per string

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
_CLAUSE = (
    r"(?:^|[.!?;:]\s+|\n\s*(?:[-*\u2022]|\d{1,2}[.)]|\[[ xX]?\])?\s*|[\"'(\[]\s*|"
    r",\s+(?=(?-i:[A-Z])))"
)
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
    # Role markers in the middle of a line: upper case after a sentence, or a wrapped one.
    (
        re.compile(
            r"(?:[.!?]\s+|\)\s*)(?-i:SYSTEM|ASSISTANT|ADMIN|DEVELOPER)\s*:|"
            r"#{2,}\s*\(\s*(?:system|assistant|developer|admin)[ _-]?(?:message|prompt)\s*\)",
            _F,
        ),
        4,
    ),
    (
        re.compile(
            r"\b(?:assistant|agent|ai|bot)\s*,\s*(?:you\s+)?(?:must|need\s+to|have\s+to|"
            r"should|are\s+to)\b",
            _F,
        ),
        4,
    ),
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
    # Channel and role markers of chat templates and prompt wrappers, inside data.
    (
        re.compile(
            r"<\|(?:im_end|endoftext|eot_id|start_header_id|end_header_id)\|>|"
            r"^\s*#+\s*\(?\s*(?:system|assistant|developer|admin)[ _-]?"
            r"(?:message|prompt|instructions?|note)?\s*\)?\s*#*\s*:?|"
            r"\[\s*(?:system|admin|developer|assistant)(?:[ _-](?:message|note|prompt))?\s*\]|"
            r"</(?:untrusted|document|context|data|tool_output|tool_result|search_results?|"
            r"user_input|content)>\s*\S",
            _F,
        ),
        5,
    ),
    # Words to the agent from a claimed authority, and to-do lists addressed to it.
    (
        re.compile(
            r"\b(?:note|message|instructions?|request|reminder)\s+(?:from|by)\s+(?:the\s+)?"
            r"(?:developer|admin(?:istrator)?|system|operator|owner)s?\b|"
            r"\b(?:to-?do|tasks?|checklist|action items?)\s+(?:list\s+)?for\s+(?:the\s+)?"
            r"(?:ai|llm|assistant|agent|model|bot)\b|"
            r"\b(?:the\s+)?user\s+has\s+(?:already\s+)?(?:approved|authori[sz]ed|"
            r"confirmed|agreed)\b",
            _F,
        ),
        4,
    ),
    # A tool called by name ("call delete_file", "using the \"DbAdmin\" tool").
    (
        re.compile(
            r"\b(?i:call|invoke|use|using|run|execute|trigger)\s+(?:the\s+)?[`'\"]?"
            r"(?:[a-z][a-z0-9]*_[a-z0-9_]+|[a-z]+[A-Z][A-Za-z0-9]+|[A-Z][a-z]+[A-Z][A-Za-z0-9]+)"
            r"[`'\"]?(?:\s+tool\b|\s+(?:with|on|to)\b)",
            re.M,
        ),
        4,
    ),
    # Persona hijacks and fake fixtures: answer as someone else, produce "the expected output".
    (
        re.compile(
            r"\b(?:respond(?:ing)?|repl(?:y|ying)|act(?:ing)?|answer(?:ing)?|speak(?:ing)?)\s+"
            r"(?:exactly\s+|only\s+)?(?:as|like)\s+\w+\s+would\b|\bpretend\s+(?:to\s+be|you\s+are)\b|"
            r"\byou\s+are\s+now\s+(?:a|an|the|in)\b|\b(?:produce|print|output|give|return)\s+the\s+"
            r"(?:expected|required|correct)\s+(?:output|response|answer|reply)\b",
            _F,
        ),
        4,
    ),
    # Output directives: say exactly this token.
    (
        re.compile(
            r"\b(?i:reply|respond|answer|output|print|say|return|write)(?i:ing)?\s+"
            r"(?i:only\s+|exactly\s+|back\s+)?(?i:with\s+)?(?i:the\s+(?:code|token|word)\s+)?"
            r"[`'\"]?(?=[A-Z0-9_-]{6,})(?=[A-Z_-]*\d)[A-Z0-9][A-Z0-9_-]{5,}",
            re.M,
        ),
        4,
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
_COMMENT = re.compile(r"<!--(.*?)-->", re.S)
_HIDDEN_STYLE = re.compile(
    r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0(?:px|pt|em)?\b|"
    r"opacity\s*:\s*0(?:\.0+)?\s*[;\"']|color\s*:\s*(?:#fff(?:fff)?\b|white\b)",
    re.I,
)
# Every hidden-styling match holds a colon and one of these (lower-cased; on ASCII text).
_STYLE_WORDS = ("display", "visibility", "font-size", "opacity", "color")


def _may_hide(text: str) -> bool:
    """False when ``_HIDDEN_STYLE`` certainly finds nothing in ``text``."""
    if not text.isascii():
        return True
    if ":" not in text:
        return False
    low = text.lower()
    return any(w in low for w in _STYLE_WORDS)


_PERCENT_RUN = re.compile(rb"(?:%[0-9A-Fa-f]{2}){2}")

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
        "call",
        "invoke",
        "using",
        "reply",
        "respond",
        "output",
        "todo",
        "approved",
        "authorized",
        "authorised",
        "admin",
        "replies",
        "responding",
        "pretend",
        "produce",
    ]
) | frozenset(v for v in _STRONG_VERBS.split("|") if v.isalpha())
_CUE_BYTES = frozenset(w.encode() for w in _CUE_WORDS)
# Byte tables: letters lower-cased and everything else a space (words); base64 alphabet to
# "a" and everything else a space (a run of 32 is then one substring test).
_WORD_TABLE = bytes(c | 0x20 if chr(c).isascii() and chr(c).isalpha() else 32 for c in range(256))
_B64_TABLE = bytes(
    97 if chr(c).isascii() and (chr(c).isalnum() or chr(c) in "+/") else 32 for c in range(256)
)
_B64_RUN = b"a" * 24


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
        or b"</" in raw
        or (b"[" in raw and b"[inst" in raw.lower())
        or (b"%" in raw and _PERCENT_RUN.search(raw) is not None)
    ):
        return True
    if not raw.isascii():
        return True  # folded (look-alikes, invisible characters) and scored in full
    if not _CUE_BYTES.isdisjoint(raw.translate(_WORD_TABLE).split()):
        return True
    return _B64_RUN in raw.translate(_B64_TABLE)


# What each anchor needs (same order as ``_ANCHORS``): alternatives, each a tuple of what a
# match of the anchor must all contain: a lower-case substring, or ``=word``, a whole word
# (a maximal run of ASCII letters, lower-cased) where the anchor has a non-letter on both
# sides of it. On ASCII text (where ``re.I`` is plain ASCII case folding) an anchor none of
# whose alternatives is present cannot match, so its scan is skipped; ``None`` means always
# scan. Non-ASCII text is always scanned in full. Only the cost changes, never what is found
# (a property test compares with the full scan).
_ROLE = ("=system", "=assistant", "=developer", "=admin")
_TARGETS = ("=ai", "=llm", "=gpt", "=bot", "=assistant", "=agent", "=model", "=chatbot")
_POLITE_NEEDS = tuple(
    (w,)
    for w in (
        "=please", "=kindly", "=pls", "=you", "=sure", "=first", "=then", "=now", "=also",
        "=next", "=finally",
    )
)  # fmt: skip
_NEED_SPECS: tuple[tuple[tuple[str, ...], ...] | None, ...] = (
    tuple((w,) for w in ("=ignore", "=disregard", "=forget", "=override", "=bypass", "=skip")),
    (
        *((w,) for w in ("=adhere", "=follow", "=obey", "=comply")),
        ("=new", ":"),
        *(("=your", w) for w in ("=new", "=real", "=actual", "=true")),
        ("=do", "=not", "user"),
        ("=without", "user"),
    ),
    tuple((w,) for w in ("<|", "inst]", "<<", "##", "system>", "instruction", "=begin")),
    tuple((w[1:], ":") for w in _ROLE),
    (*((w[1:], ":") for w in _ROLE), ("##",)),
    tuple((w, ",") for w in ("=assistant", "=agent", "=ai", "=bot")),
    (
        *((w,) for w in _TARGETS),
        *((w + "s",) for w in _TARGETS),
        ("=you", "=now"),
    ),
    _POLITE_NEEDS,
    _POLITE_NEEDS,
    (
        *(("=" + v,) for v in _STRONG_VERBS.split("|") if v.isalpha()),
        *((w,) for w in ("=email", "=e", "=mail", "=authorize", "=authorise")),
    ),
    tuple(("=" + v,) for v in _WEAK_VERBS.split("|")),
    tuple(
        (w,)
        for w in (
            "=send",
            "=email",
            "=mail",
            "=forward",
            "=share",
            "=post",
            "=upload",
            "=transfer",
            "=wire",
        )
    ),
    (("<|",), ("</",), *(("#", w[1:]) for w in _ROLE), *(("[", w[1:]) for w in _ROLE)),
    (
        *((w[1:],) for w in ("=developer", "=admin", "=system", "=operator", "=owner")),
        *(("=for", w) for w in ("=ai", "=llm", "=assistant", "=agent", "=model", "=bot")),
        ("=user", "=has"),
    ),
    tuple((w,) for w in ("call", "invoke", "use", "using", "run", "execute", "trigger")),
    (*((w,) for w in ("would", "pretend", "expected", "required", "correct")), ("you", "now")),
    tuple(
        (w,) for w in ("reply", "respond", "answer", "output", "print", "say", "return", "write")
    ),
)
# Compiled, per anchor: (any of these whole words, any of these substrings, alternatives
# needing more than one thing: (substrings, whole words)), all as bytes.
_Needs = tuple[
    frozenset[bytes], tuple[bytes, ...], tuple[tuple[tuple[bytes, ...], frozenset[bytes]], ...]
]


def _compile_needs(spec: tuple[tuple[str, ...], ...]) -> _Needs:
    single = [alt[0] for alt in spec if len(alt) == 1]
    return (
        frozenset(w[1:].encode() for w in single if w.startswith("=")),
        tuple(w.encode() for w in single if not w.startswith("=")),
        tuple(
            (
                tuple(w.encode() for w in alt if not w.startswith("=")),
                frozenset(w[1:].encode() for w in alt if w.startswith("=")),
            )
            for alt in spec
            if len(alt) > 1
        ),
    )


_NEEDS: tuple[_Needs | None, ...] = tuple(
    None if spec is None else _compile_needs(spec) for spec in _NEED_SPECS
)
# And one of these whole words too (the verb after the polite phrase, the clause's verb).
_STRONG_WORDS = frozenset(
    [v.encode() for v in _STRONG_VERBS.split("|") if v.isalpha()]
    + [b"email", b"e", b"mail", b"authorize", b"authorise"]
)
_WEAK_WORDS = frozenset(v.encode() for v in _WEAK_VERBS.split("|"))
_VERBS_TOO: tuple[frozenset[bytes] | None, ...] = (
    *(None,) * 7,
    _STRONG_WORDS,
    _WEAK_WORDS,
    *(None,) * 8,
)
assert len(_NEEDS) == len(_VERBS_TOO) == len(_ANCHORS)


def _may_match(
    needs: _Needs | None, verbs: frozenset[bytes] | None, low: bytes, words: frozenset[bytes]
) -> bool:
    if verbs is not None and verbs.isdisjoint(words):
        return False
    if needs is None:
        return True
    any_word, any_sub, more = needs
    if not words.isdisjoint(any_word):
        return True
    for sub in any_sub:
        if sub in low:
            return True
    for subs, ws in more:
        if ws <= words:
            for sub in subs:
                if sub not in low:
                    break
            else:
                return True
    return False


class Instruction:
    """One instruction-like window of a string: its score, a short excerpt for people and
    the window's whole text (what linking an action to it reads)."""

    __slots__ = ("concealment", "excerpt", "features", "score", "start", "text")

    def __init__(
        self,
        score: int,
        excerpt: str,
        features: list[str],
        concealment: str,
        start: int = 0,
        text: str = "",
    ) -> None:
        self.score = score
        self.excerpt = excerpt
        self.features = features
        self.concealment = concealment
        self.start = start
        self.text = text or excerpt


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


def _window_text(text: str, start: int) -> str:
    lo = max(0, start - 80)
    return " ".join(text[lo : start + WINDOW].split())


_ALL_ANCHORS = (True,) * len(_ANCHORS)


def _words(raw: bytes) -> frozenset[bytes]:
    """The whole words of ASCII ``raw``: maximal runs of letters, lower-cased."""
    return frozenset(raw.translate(_WORD_TABLE).split())


def anchors_to_scan(text: str, words: frozenset[bytes] | None = None) -> tuple[bool, ...]:
    """Per anchor: could it match in ``text``? (False means certainly not.)"""
    if not text.isascii():
        return _ALL_ANCHORS
    raw = text.encode()
    low = raw.lower()
    if words is None:
        words = _words(raw)
    return tuple(
        _may_match(needs, verbs, low, words)
        for needs, verbs in zip(_NEEDS, _VERBS_TOO, strict=True)
    )


# The four costliest anchors (a polite phrase or a clause start, then a verb) have no literal
# to search for, so ``finditer`` tries every position. On ASCII text they are instead tried
# only where a match can start: ``rx.match`` at each candidate start in order, from the end
# of the last match on, which is exactly what ``finditer`` yields (the candidates are a
# superset of the starts; ``match`` at a position sees the text before it, as ``finditer``
# does). Polite phrases start with one of these literals after a non-word character.
_POLITE_STARTS = (
    "please", "kindly", "pls", "can you", "could you", "would you", "will you", "i need",
    "i want", "i would like", "i require", "we need", "we want", "we would like",
    "we require", "you must", "you should", "you need to", "you have to", "you are required",
    "you are instructed", "make sure", "be sure to", "first", "then", "now", "also", "next",
    "finally",
)  # fmt: skip
_POLITE_ANCHORS = (7, 8)
_CLAUSE_ANCHORS = {9: _STRONG_VERBS, 10: _WEAK_VERBS}
# A clause start is made of these characters only, right before its verb.
_CLAUSE_CHARS = frozenset(".!?;:-*\u2022)[]xX\"'(,0123456789") | frozenset(
    chr(c) for c in range(128) if chr(c).isspace()
)


def _word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def _occurrences(low: str, literal: str) -> list[int]:
    """Where ``literal`` starts in ``low`` after a non-word character (or at 0)."""
    out: list[int] = []
    i = low.find(literal)
    while i >= 0:
        if i == 0 or not _word_char(low[i - 1]):
            out.append(i)
        i = low.find(literal, i + 1)
    return out


# Each opening literal under its first word (a whole word wherever the phrase matches).
_POLITE_BY_WORD: dict[bytes, tuple[str, ...]] = {}
for _lit in _POLITE_STARTS:
    _first = _lit.split()[0].encode()
    _POLITE_BY_WORD[_first] = (*_POLITE_BY_WORD.get(_first, ()), _lit)


def _polite_starts(low: str, words: frozenset[bytes]) -> list[int]:
    starts: set[int] = set()
    for word in words.intersection(_POLITE_BY_WORD):
        for literal in _POLITE_BY_WORD[word]:
            starts.update(_occurrences(low, literal))
    return sorted(starts)


_VERB_WORDS = {
    n: frozenset(v.encode() for v in verbs.split("|") if v.isalpha())
    | (frozenset([b"email", b"authorize", b"authorise"]) if n == 9 else frozenset())
    for n, verbs in _CLAUSE_ANCHORS.items()
}


def _clause_starts(low: str, n: int, words: frozenset[bytes]) -> list[int]:
    """Every start a clause-verb anchor could match at: a verb as a whole word followed by
    white space, and every position of the run of clause characters right before it."""
    verbs = [v.decode() for v in words.intersection(_VERB_WORDS[n])]
    if n == 9 and b"e" in words and b"mail" in words:
        verbs.append("e-mail")
    starts: set[int] = set()
    size = len(low)
    for verb in verbs:
        for at in _occurrences(low, verb):
            end = at + len(verb)
            if end >= size or not low[end].isspace():
                continue
            lo = at
            while lo > 0 and low[lo - 1] in _CLAUSE_CHARS:
                lo -= 1
            starts.update(range(lo, at + 1))
    return sorted(starts)


def _matches(rx: re.Pattern[str], text: str, starts: list[int]) -> Iterator[re.Match[str]]:
    """What ``rx.finditer(text)`` yields, trying only ``starts`` (sorted, a superset of
    where a match can start)."""
    cursor = 0
    for at in starts:
        if at < cursor:
            continue
        m = rx.match(text, at)
        if m is not None:
            yield m
            cursor = m.end()


def anchor_matches(k: int, text: str, *, prefilter: bool = True) -> Iterator[re.Match[str]]:
    """``_ANCHORS[k]``'s matches in ``text``, as its ``finditer`` yields them."""
    ascii_ = prefilter and text.isascii()
    return _anchor_matches(
        k, text, text.lower() if ascii_ else None, _words(text.encode()) if ascii_ else frozenset()
    )


def _anchor_matches(
    k: int, text: str, low: str | None, words: frozenset[bytes]
) -> Iterator[re.Match[str]]:
    """Like ``finditer``; fewer starts tried when ``low`` (``text`` lower-cased, ASCII only)
    and its ``words`` are given."""
    rx = _ANCHORS[k][0]
    if low is not None and k in _POLITE_ANCHORS:
        return _matches(rx, text, _polite_starts(low, words))
    if low is not None and k in _CLAUSE_ANCHORS:
        return _matches(rx, text, _clause_starts(low, k, words))
    return rx.finditer(text)


def _all(text: str, *, prefilter: bool = True) -> list[Instruction]:
    """Every anchor's window, best first (overlapping windows kept once, the best).
    ``prefilter=False`` scans with every anchor, every position (the reference the property
    test uses)."""
    found: list[Instruction] = []
    ascii_ = prefilter and text.isascii()
    words = _words(text.encode()) if ascii_ else frozenset()
    scan = anchors_to_scan(text, words) if prefilter else _ALL_ANCHORS
    low = text.lower() if ascii_ else None
    for k, ((_, points), wanted) in enumerate(zip(_ANCHORS, scan, strict=True)):
        if not wanted:
            continue
        for n, m in enumerate(_anchor_matches(k, text, low, words)):
            if n >= MAX_ANCHORS:
                break
            score, feats = _window_score(text, m.start(), points)
            kind = "override" if points >= 5 else "imperative"
            found.append(Instruction(score, "", [kind, *feats], "", m.start()))
    found.sort(key=lambda i: (-i.score, i.start))
    kept: list[Instruction] = []
    for ins in found:
        if any(abs(ins.start - k.start) < WINDOW // 2 for k in kept):
            continue
        ins.excerpt = _excerpt(text, ins.start)
        ins.text = _window_text(text, ins.start)
        kept.append(ins)
        if len(kept) >= MAX_PER_STRING:
            break
    return kept


def _best(text: str) -> Instruction | None:
    found = _all(text)
    return found[0] if found else None


# Verdicts by content, within a run and across runs (tool descriptions and repeated results
# recur): the text's BLAKE2b digest (the text itself when short) -> what was found, frozen.
_Frozen = tuple[tuple[tuple[int, str, tuple[str, ...], str, int, str], ...], int]
_SEEN: dict[str | bytes, _Frozen] = {}
SEEN_LIMIT = 8192
_SHORT_KEY = 64


def clear_caches() -> None:
    """Forget every cached verdict (benchmarks measure cold passes with it)."""
    _SEEN.clear()
    clear_spelling_cache()


def find_instructions(text: str) -> tuple[list[Instruction], int]:
    """Every instruction in ``text`` (already bounded) at or above ``THRESHOLD``, best first,
    and the best score seen at all (below the threshold too: a near miss, which callers use
    to try fields joined together). Pure: the answer for a text seen before is reused (new
    objects every time: callers may change them)."""
    if len(text) < MIN_LEN or not has_cue(text):
        return [], 0
    key: str | bytes = (
        text
        if len(text) <= _SHORT_KEY
        else hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    )
    hit = _SEEN.get(key)
    if hit is None:
        found, best = _find(text)
        frozen = tuple(
            (i.score, i.excerpt, tuple(i.features), i.concealment, i.start, i.text) for i in found
        )
        if len(_SEEN) >= SEEN_LIMIT:
            _SEEN.clear()
        hit = _SEEN[key] = (frozen, best)
    return [_thaw(*frozen) for frozen in hit[0]], hit[1]


def _thaw(
    score: int, excerpt: str, features: tuple[str, ...], concealment: str, start: int, text: str
) -> Instruction:
    ins = Instruction(score, excerpt, list(features), concealment, start)
    ins.text = text
    return ins


def _find(text: str) -> tuple[list[Instruction], int]:
    text, concealment = fold(text)
    found = _all(text)
    if found and found[0].score < THRESHOLD:
        fixed = fix_misspellings(text)
        if fixed is not None:
            again = _all(fixed)
            if again and again[0].score > found[0].score:
                found, concealment = again, concealment or "misspelled cue words"
                text = fixed
    if found and not concealment and _may_hide(text) and _HIDDEN_STYLE.search(text):
        concealment = "hidden styling"
    hidden: list[Instruction] = []
    for n, m in enumerate(_COMMENT.finditer(text)):
        if n >= MAX_BLOBS:
            break
        inner = _all(m.group(1))
        if inner:
            for ins in inner:
                ins.concealment = "HTML comment"
            hidden.extend(inner)
            # The same words seen from outside the comment: the comment's reading wins.
            found = [i for i in found if not m.start() <= i.start < m.end()]
    if len(text) >= 16:
        for how, decoded in decoded_blobs(text):
            decoded, _ = fold(decoded)
            inner = _all(decoded)
            for ins in inner:
                ins.concealment = how
                ins.excerpt = f"[{how}] {ins.excerpt}"[:EXCERPT]
            hidden.extend(i for i in inner if i.score >= 2)
    best_any = found[0].score if found else 0
    out: list[Instruction] = []
    for ins in found:
        if concealment:
            ins.score += CONCEALED_BONUS
            ins.concealment = concealment
            ins.features.append("concealed")
        if ins.score >= THRESHOLD:
            out.append(ins)
    for ins in hidden:
        ins.score += CONCEALED_BONUS
        ins.features.append("concealed")
        best_any = max(best_any, ins.score)
        if ins.score >= THRESHOLD:
            out.append(ins)
    out.sort(key=lambda i: -i.score)
    return out[:MAX_PER_STRING], best_any


def score_text(text: str) -> Instruction | None:
    """The best instruction found in ``text`` (already bounded), or None below the
    threshold."""
    found, _ = find_instructions(text)
    return found[0] if found else None
