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

from sentrail.detect.content_anchors import ANCHORS
from sentrail.detect.content_prefilter import (
    FULL_MASK,
    ascii_needs,
    has_cue,
    scan_anchor,
)
from sentrail.detect.deobfuscate import (
    MAX_BLOBS,
    clear_spelling_cache,
    decoded_blobs,
    fix_misspellings,
    fold,
    without_controls,
)
from sentrail.detect.fast_re import ascii_re2, compile_set

THRESHOLD = 4
MIN_LEN = 12
WINDOW = 320
EXCERPT = 200
MAX_ANCHORS = 64  # per anchor kind
MAX_PER_STRING = 8  # instructions kept per string

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


_FEATURES = (
    ("first_person", _FIRST_PERSON),
    ("destination", _DESTINATION),
    ("sensitive", _SENSITIVE),
    ("urgency", _URGENT),
)
# The four features of a window in one pass (RE2's Set) when the window is ASCII; the
# Python expressions are the reference, the fallback, and what non-ASCII text reads.
_FEATURE_SET = compile_set([*(ascii_re2(rx) for _, rx in _FEATURES), "^"])
_FEATURE_SEEN = len(_FEATURES)  # the id of "^": every text has it


def window_features(window: str) -> list[str]:
    """The features found in ``window``, in ``_FEATURES`` order."""
    if _FEATURE_SET is not None and window.isascii():
        ids = _FEATURE_SET.Match(window.encode())
        if ids and _FEATURE_SEEN in ids:
            return [name for k, (name, _) in enumerate(_FEATURES) if k in ids]
    return window_features_reference(window)


def window_features_reference(window: str) -> list[str]:
    """``window_features`` from Python's expressions."""
    return [name for name, rx in _FEATURES if rx.search(window)]


def _window_score(text: str, start: int, points: int) -> tuple[int, list[str]]:
    feats = window_features(text[start : start + WINDOW])
    return points + sum(_WEIGHTS[name] for name in feats), feats


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


def _all(text: str, *, prefilter: bool = True) -> list[Instruction]:
    """Every anchor's window, best first (overlapping windows kept once, the best).
    ``prefilter=False`` scans with every anchor, every position (the reference the property
    test uses)."""
    found: list[Instruction] = []
    ascii_ = prefilter and text.isascii()
    if ascii_:
        mask, words = ascii_needs(text)
        low: str | None = text.lower()
    else:
        words, mask, low = frozenset(), FULL_MASK, None
    for k, (_, points) in enumerate(ANCHORS):
        if not mask >> k & 1:
            continue
        for n, m in enumerate(scan_anchor(k, text, low, words)):
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
    if len(text) < MIN_LEN or not has_cue(without_controls(text)):
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
