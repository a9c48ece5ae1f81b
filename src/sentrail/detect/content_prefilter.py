"""Which anchors can match in a text, and where: the cheap tests that decide how much work a
string costs, never what is found.

- ``has_cue``: could any anchor match at all (a word set and a few substring tests)?
- ``anchors_to_scan``: per anchor, is any of what a match must contain present?
- ``ascii_needs``: both at once for ASCII text, from one compiled pass (RE2's multi-pattern
  ``Set``, the optional ``google-re2`` wheel) when it is installed; the Python tests above
  are the reference and the fallback.
- ``scan_anchor``: an anchor's matches as its ``finditer`` yields them, with the costliest
  anchors (no literal to search for) tried only at the starts where they can match.

Each is compared with the plain expression by a property test
(``tests/test_content_detectors.py``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

from sentrail.detect.content_anchors import ANCHORS, STRONG_VERBS, WEAK_VERBS
from sentrail.detect.fast_re import compile_set

_PERCENT_RUN = re.compile(rb"(?:%[0-9A-Fa-f]{2}){2}")

# One cheap test first: no cue at all means no anchor can match. A cue is any word an anchor
# starts with (a set lookup over the text's words: Python's re is slow on long
# alternations), or a marker character sequence; and, to stay a superset of what the
# anchors need whatever anchor is added, any anchor whose needs are present
# (``anchor_mask``). So it only decides how much work a string costs, never what is found.
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
) | frozenset(v for v in STRONG_VERBS.split("|") if v.isalpha())
_CUE_BYTES = frozenset(w.encode() for w in _CUE_WORDS)
# Byte tables: letters lower-cased and everything else a space (words); base64 alphabet to
# "a" and everything else a space (a run of 32 is then one substring test).
_WORD_TABLE = bytes(c | 0x20 if chr(c).isascii() and chr(c).isalpha() else 32 for c in range(256))
_B64_TABLE = bytes(
    97 if chr(c).isascii() and (chr(c).isalnum() or chr(c) in "+/") else 32 for c in range(256)
)
_B64_RUN = b"a" * 24


@functools.lru_cache(maxsize=8)
def prepared(text: str) -> tuple[bytes, frozenset[bytes]]:
    """ASCII ``text`` lower-cased as bytes, and its whole words: computed once for the cue
    test and the anchor masks that follow it on the same text."""
    raw = text.encode()
    return raw.lower(), ascii_words(raw)


def has_cue(text: str) -> bool:
    """Could any anchor match in ``text``? (False means certainly not.)"""
    if _SET is not None and text.isascii():
        return _compiled_needs(text)[0]
    return has_cue_reference(text)


def has_cue_reference(text: str) -> bool:
    """``has_cue`` in Python: byte-level table lookups and substring tests, no regular
    expression unless non-ASCII text is present (the reference, and the fallback)."""
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
    low, words = prepared(text)
    if not _CUE_BYTES.isdisjoint(words) or anchor_mask(low, words):
        return True  # the cue words, and what any anchor needs (the anchors added since)
    return _B64_RUN in raw.translate(_B64_TABLE)


# What each anchor needs (same order as ``ANCHORS``): alternatives, each a tuple of what a
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
        *(("=" + v,) for v in STRONG_VERBS.split("|") if v.isalpha()),
        *((w,) for w in ("=email", "=e", "=mail", "=authorize", "=authorise")),
    ),
    tuple(("=" + v,) for v in WEAK_VERBS.split("|")),
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
    tuple((w,) for w in ("=call", "=invoke", "=use", "=using", "=run", "=execute", "=trigger")),
    (
        *((w,) for w in ("=would", "=pretend", "=expected", "=required", "=correct")),
        ("=you", "=now"),
    ),
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
    [v.encode() for v in STRONG_VERBS.split("|") if v.isalpha()]
    + [b"email", b"e", b"mail", b"authorize", b"authorise"]
)
_WEAK_WORDS = frozenset(v.encode() for v in WEAK_VERBS.split("|"))
_VERBS_TOO: tuple[frozenset[bytes] | None, ...] = (
    *(None,) * 7,
    _STRONG_WORDS,
    _WEAK_WORDS,
    *(None,) * 8,
)
assert len(_NEEDS) == len(_VERBS_TOO) == len(ANCHORS)


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


ALL_ANCHORS = (True,) * len(ANCHORS)


def ascii_words(raw: bytes) -> frozenset[bytes]:
    """The whole words of ASCII ``raw``: maximal runs of letters, lower-cased."""
    return frozenset(raw.translate(_WORD_TABLE).split())


def anchors_to_scan(text: str, words: frozenset[bytes] | None = None) -> tuple[bool, ...]:
    """Per anchor: could it match in ``text``? (False means certainly not.)"""
    if not text.isascii():
        return ALL_ANCHORS
    low, all_words = prepared(text)
    mask = anchor_mask(low, all_words if words is None else words)
    return tuple(bool(mask >> k & 1) for k in range(len(ANCHORS)))


def anchors_to_scan_reference(text: str) -> tuple[bool, ...]:
    """``anchors_to_scan`` one anchor at a time (what the property test compares with)."""
    if not text.isascii():
        return ALL_ANCHORS
    raw = text.encode()
    low, words = raw.lower(), ascii_words(raw)
    return tuple(
        _may_match(needs, verbs, low, words)
        for needs, verbs in zip(_NEEDS, _VERBS_TOO, strict=True)
    )


# The same needs folded into bit masks (bit k: anchor k), so that one pass over the text's
# words and the distinct substrings answers for every anchor at once.
def _compile_masks() -> tuple[
    int,
    dict[bytes, int],
    tuple[tuple[bytes, int], ...],
    tuple[tuple[tuple[bytes, ...], frozenset[bytes], int], ...],
    tuple[tuple[int, frozenset[bytes]], ...],
]:
    always = 0
    by_word: dict[bytes, int] = {}
    by_sub: dict[bytes, int] = {}
    more: list[tuple[tuple[bytes, ...], frozenset[bytes], int]] = []
    for k, needs in enumerate(_NEEDS):
        bit = 1 << k
        if needs is None:
            always |= bit
            continue
        any_word, any_sub, alts = needs
        for w in any_word:
            by_word[w] = by_word.get(w, 0) | bit
        for s in any_sub:
            by_sub[s] = by_sub.get(s, 0) | bit
        more.extend((subs, ws, bit) for subs, ws in alts)
    verbs = tuple((1 << k, v) for k, v in enumerate(_VERBS_TOO) if v is not None)
    return always, by_word, tuple(by_sub.items()), tuple(more), verbs


_ALWAYS, _BY_WORD, _BY_SUB, _BY_MORE, _BY_VERBS = _compile_masks()
# A substring made of letters only is in the text exactly when it is inside one of its
# whole words (maximal runs of letters): it is searched in the distinct words joined by
# spaces, a much shorter text; the others in the whole text.
_BY_LETTERS = tuple((s, b) for s, b in _BY_SUB if s.isalpha())
_BY_OTHER = tuple((s, b) for s, b in _BY_SUB if not s.isalpha())
_more: dict[tuple[tuple[bytes, ...], frozenset[bytes]], int] = {}
for _subs, _ws, _bit in _BY_MORE:  # the same needs for several anchors: tested once
    _more[_subs, _ws] = _more.get((_subs, _ws), 0) | _bit
_BY_MORE_SPLIT = tuple(
    (tuple(s for s in subs if s.isalpha()), tuple(s for s in subs if not s.isalpha()), ws, bits)
    for (subs, ws), bits in _more.items()
)
_MASK_WORDS = frozenset(_BY_WORD)
FULL_MASK = (1 << len(ANCHORS)) - 1


def anchor_mask(low: bytes, words: frozenset[bytes]) -> int:
    """``anchors_to_scan`` as a bit mask, for ASCII text: ``low`` its lower-cased bytes,
    ``words`` its whole words."""
    mask = _ALWAYS
    for w in _MASK_WORDS.intersection(words):
        mask |= _BY_WORD[w]
    for sub, bits in _BY_OTHER:
        if bits & ~mask and sub in low:
            mask |= bits
    letters = b" ".join(words)
    for sub, bits in _BY_LETTERS:
        if bits & ~mask and sub in letters:
            mask |= bits
    for in_words, in_text, ws, bits in _BY_MORE_SPLIT:
        if not bits & ~mask or not ws <= words:
            continue
        for s in in_words:
            if s not in letters:
                break
        else:
            for s in in_text:
                if s not in low:
                    break
            else:
                mask |= bits
    for bit, verbs in _BY_VERBS:
        if mask & bit and verbs.isdisjoint(words):
            mask &= ~bit
    return mask


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
_CLAUSE_ANCHORS = {9: STRONG_VERBS, 10: WEAK_VERBS}
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


# One compiled pass instead (RE2's ``Set``: which of many expressions occur in a text, one
# DFA over the bytes, no positions): each word that the cue test, the masks and the start
# search read, as a whole word (no ASCII letter on either side); each substring they test;
# the percent-encoded run (the base64 run stays a Python test). What occurs then gives the
# cue, the mask and the words exactly as the Python tests above do, on ASCII text (``re.I``
# is ASCII case folding there). Non-ASCII text keeps the Python path (the cue is true, every
# anchor is scanned). A property test compares the two on generated text.
_MARKERS = (b"<|", b"<!--", b"<<", b"##", b"!!!", b"</", b"[inst")
_POLITE_FIRST = frozenset(lit.split()[0].encode() for lit in _POLITE_STARTS)


def _vocabulary() -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    words = set(_CUE_BYTES) | set(_BY_WORD) | _STRONG_WORDS | _WEAK_WORDS | _POLITE_FIRST
    for verbs in _VERB_WORDS.values():
        words |= verbs
    for _verbs in _BY_VERBS:
        words |= _verbs[1]
    subs = set(_MARKERS) | {s for s, _ in _BY_SUB}
    for in_words, in_text, ws, _bits in _BY_MORE_SPLIT:
        words |= ws
        subs |= {*in_words, *in_text}
    words |= {b"e", b"mail"}  # "e-mail" in the clause start search
    return tuple(sorted(words)), tuple(sorted(subs))


VOCABULARY, SUBSTRINGS = _vocabulary()
_VOCABULARY_SET = frozenset(VOCABULARY)


def _expressions() -> list[str]:
    out = [rf"(?:^|[^a-z]){re.escape(w.decode())}(?:[^a-z]|$)" for w in VOCABULARY]
    out += [re.escape(s.decode()) for s in SUBSTRINGS]
    # Not the base64 run: counting to 24 inside the DFA multiplies its states (the first pass
    # over 33 MB took 0.8 s of CPU instead of 0.3 s); it is tested after, when no cue is seen.
    # Last, "^", found in every text: RE2's Set answers nothing, not an error, when its DFA
    # gives up (out of memory on a hostile text), so an answer without it is not trusted.
    return [*out, _PERCENT_RUN.pattern.decode(), "^"]


_SET: Any = compile_set(_expressions())
_N_WORDS, _N_SUBS = len(VOCABULARY), len(SUBSTRINGS)
_MARKER_IDS = frozenset(_N_WORDS + SUBSTRINGS.index(m) for m in _MARKERS)
_CUE_IDS = (
    frozenset(i for i, w in enumerate(VOCABULARY) if w in _CUE_BYTES)
    | _MARKER_IDS
    | {_N_WORDS + _N_SUBS}
)
_Needs3 = tuple[bool, int, frozenset[bytes]]
_BY_HITS: dict[frozenset[int], _Needs3] = {}


def needs_from_hits(hits: frozenset[int]) -> _Needs3:
    """The cue, the anchor mask and the words read by the start search, from the indices of
    the expressions (``_expressions``) that occur in an ASCII text."""
    words = frozenset(VOCABULARY[i] for i in hits if i < _N_WORDS)
    subs = frozenset(SUBSTRINGS[i - _N_WORDS] for i in hits if _N_WORDS <= i < _N_WORDS + _N_SUBS)
    mask = _ALWAYS
    for w in words:
        mask |= _BY_WORD.get(w, 0)
    for sub, bits in _BY_SUB:
        if sub in subs:
            mask |= bits
    for in_words, in_text, ws, bits in _BY_MORE_SPLIT:
        if ws <= words and subs.issuperset(in_words) and subs.issuperset(in_text):
            mask |= bits
    for bit, verbs in _BY_VERBS:
        if mask & bit and verbs.isdisjoint(words):
            mask &= ~bit
    return bool(mask) or not _CUE_IDS.isdisjoint(hits), mask, words


@functools.lru_cache(maxsize=8)
def _compiled_needs(text: str) -> _Needs3:
    raw = text.encode()
    found_ids = _SET.Match(raw)
    if not found_ids:  # not even "^": the DFA gave up, the Python tests decide
        return ascii_needs_reference(text)
    hits = frozenset(found_ids)
    found = _BY_HITS.get(hits)
    if found is None:
        if len(_BY_HITS) >= 4096:
            _BY_HITS.clear()
        found = _BY_HITS[hits] = needs_from_hits(hits)
    if not found[0] and _B64_RUN in raw.translate(_B64_TABLE):
        return True, found[1], found[2]
    return found


def ascii_needs(text: str) -> tuple[int, frozenset[bytes]]:
    """For ASCII ``text``: ``anchor_mask`` and the words ``scan_anchor`` reads (its whole
    words, or only those of ``VOCABULARY``, which is all the start search asks about)."""
    if _SET is not None:
        _, mask, words = _compiled_needs(text)
        return mask, words
    low, words = prepared(text)
    return anchor_mask(low, words), words


def ascii_needs_reference(text: str) -> _Needs3:
    """What ``_compiled_needs`` answers, from the Python tests (words cut to
    ``VOCABULARY``)."""
    raw = text.encode()
    low, words = raw.lower(), ascii_words(raw)
    return has_cue_reference(text), anchor_mask(low, words), words & _VOCABULARY_SET


def compiled_needs(text: str) -> _Needs3 | None:
    """``ascii_needs_reference`` from the compiled pass (``None`` when it is not installed)."""
    return None if _SET is None else _compiled_needs(text)


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
    """``ANCHORS[k]``'s matches in ``text``, as its ``finditer`` yields them."""
    ascii_ = prefilter and text.isascii()
    return scan_anchor(
        k,
        text,
        text.lower() if ascii_ else None,
        ascii_words(text.encode()) if ascii_ else frozenset(),
    )


# The chained transfer ("... and then send it"): a match starts at "and", "then" or a comma,
# then white space, an optional "then" and white space, then the verb. Its starts are found
# from the verbs back: before a verb preceded by white space, the run of white space, and
# right before it the opener (or "then" with its own white space and opener before it).
_CHAIN_ANCHOR = 11
_CHAIN_VERBS = (
    "send", "email", "e-mail", "forward", "share", "post", "upload", "transfer", "wire",
)  # fmt: skip


def _back_over_space(low: str, end: int) -> int:
    """Where the run of white space ending at ``end`` starts (``end`` when there is none)."""
    while end > 0 and low[end - 1].isspace():
        end -= 1
    return end


def _openers_before(low: str, end: int, starts: set[int]) -> None:
    if low.endswith(",", 0, end):
        starts.add(end - 1)
    if low.endswith("and", 0, end):
        starts.add(end - 3)
    if low.endswith("then", 0, end):
        starts.add(end - 4)


def _chain_starts(low: str) -> list[int]:
    starts: set[int] = set()
    for verb in _CHAIN_VERBS:
        at = low.find(verb)
        while at >= 0:
            lo = _back_over_space(low, at)
            if lo < at:
                _openers_before(low, lo, starts)
                if low.endswith("then", 0, lo):
                    lo2 = _back_over_space(low, lo - 4)
                    if lo2 < lo - 4:
                        _openers_before(low, lo2, starts)
            at = low.find(verb, at + 1)
    return sorted(starts)


def scan_anchor(
    k: int, text: str, low: str | None, words: frozenset[bytes]
) -> Iterator[re.Match[str]]:
    """Like ``finditer``; fewer starts tried when ``low`` (``text`` lower-cased, ASCII only)
    and its ``words`` are given."""
    rx = ANCHORS[k][0]
    if low is not None and k in _POLITE_ANCHORS:
        return _matches(rx, text, _polite_starts(low, words))
    if low is not None and k in _CLAUSE_ANCHORS:
        return _matches(rx, text, _clause_starts(low, k, words))
    if low is not None and k == _CHAIN_ANCHOR:
        return _matches(rx, text, _chain_starts(low))
    return rx.finditer(text)
