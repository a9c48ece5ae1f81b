"""Undoing the disguises an injected instruction wears, before it is scored.

- ``fold``: zero-width and bidi characters removed, NFKC (full-width and styled letters
  become plain ones), and a small table of confusables (Cyrillic and Greek letters that look
  Latin) folded to ASCII. Only non-ASCII text pays for it.
- ``fix_misspellings``: words one edit away from a cue word ("ignroe", "instructoins",
  "1gn0re") are replaced by it (symmetric-delete lookup over a small vocabulary).
- ``decoded_blobs``: base64, hex and percent-encoded runs decoded to text, bounded in count
  and size, kept only when the result is printable text.

Everything is pure and bounded: callers pass ``bounded()`` text, and every decoder looks at
most at ``MAX_BLOBS`` runs of at most ``MAX_BLOB`` characters.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import unicodedata
from urllib.parse import unquote_plus

from sentrail.detect.fast_re import compile_one

MAX_BLOBS = 4
MAX_BLOB = 8192
MAX_FIX_WORDS = 400  # words examined per text for misspellings

# Characters that draw nothing (Unicode's Default_Ignorable_Code_Point: zero-width, bidi
# marks and controls, the soft hyphen, the combining grapheme joiner, invisible vowels and
# operators, Mongolian selectors, fillers, variation selectors, shorthand and musical format
# controls, tag characters), as runs. Removed; Hangul fillers, which draw a blank, read as a
# space; tag characters read as the ASCII they spell (below).
INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]+"
)
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0")
# Tag characters (U+E0020-U+E007E) spell ASCII that a model reads ("ASCII smuggling"). In an
# emoji tag sequence (the flags of England, Scotland, Wales: U+1F3F4, lower-case letters
# and digits, U+E007F) they are part of the picture.
_TAG_FLAG = re.compile("\U0001f3f4[\U000e0030-\U000e0039\U000e0061-\U000e007a]{1,8}\U000e007f")
_FROM_TAGS = {c: chr(c - 0xE0000) for c in range(0xE0020, 0xE007F)}
# Variation selectors (U+FE00-U+FE0F, U+E0100-U+E01EF) after a character: one picks the
# emoji or text style of what it follows; a run of them can carry bytes, one each
# ("emoji smuggling"), which are decoded and read.
_SELECTOR_RUN = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]{2,}")
# ASCII controls that are neither white space to Python's ``\s`` nor printable: NUL, BS,
# ESC, DEL... A model reads past them; so does the scorer.
_ASCII_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]+", re.I)  # re.I: no letters
_CONTROLS_IN_WORD = re.compile(r"[A-Za-z0-9][\x00-\x08\x0e-\x1b\x7f]+[A-Za-z0-9]")
# Every string scored is tested for them first: RE2 on ASCII text (ten times Python's
# speed on this class), else Python's ``re``.
_CONTROLS_FAST = compile_one(_ASCII_CONTROLS)


def _has_controls(text: str) -> bool:
    if _CONTROLS_FAST is not None and text.isascii():
        return _CONTROLS_FAST.search(text) is not None
    return _ASCII_CONTROLS.search(text) is not None


def _selector_byte(c: str) -> int:
    n = ord(c)
    return n - 0xFE00 if n <= 0xFE0F else n - 0xE0100 + 16


def _smuggled(run: str) -> str | None:
    """The text a run of variation selectors spells, one byte each; None when it is no text."""
    try:
        decoded = bytes(_selector_byte(c) for c in run).decode("utf-8")
    except (UnicodeDecodeError, ValueError):
        return None
    return decoded if len(decoded) >= 2 and decoded.isprintable() else None


def _reveal(text: str) -> tuple[str, str]:
    """``text`` with the characters that draw nothing taken out or read, and how they hid
    text ("" when they only decorated it: after a symbol such as an emoji, the variation
    selector and joiners of emoji sequences, a flag's tags, fillers)."""
    how = ""
    if "\U0001f3f4" in text:
        text = _TAG_FLAG.sub("\U0001f3f4", text)
    out: list[str] = []
    last = 0
    for m in INVISIBLE.finditer(text):
        run = m.group(0)
        out.append(text[last : m.start()])
        last = m.end()
        smuggled = _smuggled(run) if _SELECTOR_RUN.fullmatch(run) else None
        tags = run.translate(_FROM_TAGS)
        if smuggled is not None:
            out.append(f" {smuggled} ")
            how = how or "invisible variation selectors"
        elif tags != run:  # tag characters spelled something
            out.append(INVISIBLE.sub("", tags))
            how = "invisible tag characters"
        elif run[0] in _FILLERS:
            out.append(" ")
        else:
            before = text[m.start() - 1] if m.start() else " "
            if not unicodedata.category(before).startswith("S"):
                how = how or "invisible characters"  # after a letter, digit, space...
    out.append(text[last:])
    return "".join(out), how


# Letters of other scripts that render like Latin ones (a deliberately small table).
_CONFUSABLES = str.maketrans(
    {
        # Cyrillic
        "\u0430": "a",
        "\u0432": "b",
        "\u0435": "e",
        "\u043a": "k",
        "\u043c": "m",
        "\u043d": "h",
        "\u043e": "o",
        "\u0440": "p",
        "\u0441": "c",
        "\u0442": "t",
        "\u0443": "y",
        "\u0445": "x",
        "\u0455": "s",
        "\u0456": "i",
        "\u0458": "j",
        "\u04bb": "h",
        "\u0410": "A",
        "\u0412": "B",
        "\u0415": "E",
        "\u041a": "K",
        "\u041c": "M",
        "\u041d": "H",
        "\u041e": "O",
        "\u0420": "P",
        "\u0421": "C",
        "\u0422": "T",
        "\u0425": "X",
        "\u0405": "S",
        "\u0406": "I",
        "\u0408": "J",
        # Greek
        "\u03b1": "a",
        "\u03b5": "e",
        "\u03b9": "i",
        "\u03ba": "k",
        "\u03bd": "v",
        "\u03bf": "o",
        "\u03c1": "p",
        "\u03c4": "t",
        "\u03c5": "u",
        "\u03c7": "x",
        "\u0391": "A",
        "\u0392": "B",
        "\u0395": "E",
        "\u0396": "Z",
        "\u0397": "H",
        "\u0399": "I",
        "\u039a": "K",
        "\u039c": "M",
        "\u039d": "N",
        "\u039f": "O",
        "\u03a1": "P",
        "\u03a4": "T",
        "\u03a5": "Y",
        "\u03a7": "X",
    }
)


def fold(text: str) -> tuple[str, str]:
    """``text`` with invisible characters removed or read (:func:`_reveal`) and look-alike
    letters folded to ASCII, and what was undone ("" when nothing was)."""
    controls = False  # inside a word ("Ig\x00nore"), not around one (ANSI colours in a log)
    if _has_controls(text):
        controls = _CONTROLS_IN_WORD.search(text) is not None
        text = _ASCII_CONTROLS.sub("", text)
    if text.isascii():
        return text, "control characters" if controls else ""
    text, how = _reveal(text)
    how = how or ("control characters" if controls else "")
    # U+FFFD stands where a reader met bytes it could not decode; it reads past it
    # ("Ign\ufffdore" is "Ignore"). Common in badly decoded text: not counted as hiding.
    text = text.replace("\ufffd", "")
    normal = unicodedata.normalize("NFKC", text)
    folded = normal.translate(_CONFUSABLES)
    if folded != normal:
        how = how or "look-alike characters"
    elif normal != text and not how:
        how = "styled characters"
    return folded, how


def without_controls(text: str) -> str:
    """``text`` without the ASCII controls a reader skips (what the cue test reads: a NUL
    inside every cue word must not make a text look cue-free)."""
    return _ASCII_CONTROLS.sub("", text) if _has_controls(text) else text


# -- misspelled cue words ---------------------------------------------------------------------

_VOCABULARY = frozenset(
    {
        *("ignore", "disregard", "previous", "instructions", "instruction", "override"),
        *("system", "assistant", "forget", "prior", "adhere", "strictly", "important"),
        *("immediately", "transfer", "delete", "forward", "password", "credentials"),
        *("execute", "reply", "respond", "output"),
    }
)
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a"})


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


_EXACT = frozenset(_VOCABULARY)
_BY_DELETE: dict[str, str] = {}
for _w in _VOCABULARY:
    for _d in _deletes(_w):
        _BY_DELETE.setdefault(_d, _w)
_TOKEN = re.compile(r"[A-Za-z0-9@]{5,14}")


@functools.lru_cache(maxsize=1 << 16)
def _correct(token: str) -> str | None:
    """The cue word ``token`` is one edit away from, or None (pure: cached per token, words
    recur across strings and runs)."""
    low = token.lower()
    if low in _EXACT:
        return None
    if not low.isalpha():
        low = low.translate(_LEET)
        if not low.isalpha():
            return None
        if low in _EXACT:
            return low
    hit = _BY_DELETE.get(low)  # a letter missing
    if hit is not None and len(hit) >= 6:
        return hit
    for d in _deletes(low):  # a letter added, changed or two swapped
        if d in _EXACT:
            return d
        hit = _BY_DELETE.get(d)
        if hit is not None and len(hit) == len(low) and len(hit) >= 6:
            return hit
    return None


def clear_spelling_cache() -> None:
    _correct.cache_clear()


def fix_misspellings(text: str) -> str | None:
    """``text`` with cue words one edit away replaced by the word, or None when no word was
    changed. Short words (under 5 letters) are left alone: too many false friends."""
    tokens = _TOKEN.findall(text)
    del tokens[MAX_FIX_WORDS:]
    for token in set(tokens):  # most texts: no word to fix, each distinct word asked once
        if _correct(token) is not None:
            break
    else:
        return None
    out: list[str] = []
    last = 0
    changed = False
    for n, m in enumerate(_TOKEN.finditer(text)):
        if n >= MAX_FIX_WORDS:
            break
        fixed = _correct(m.group(0))
        if fixed is not None:
            out.append(text[last : m.start()])
            out.append(fixed)
            last = m.end()
            changed = True
    if not changed:
        return None
    out.append(text[last:])
    return "".join(out)


# -- encoded blobs ----------------------------------------------------------------------------

_BASE64 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{24,}={0,2}")
_HEX = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}){12,}(?![0-9A-Fa-f])")
# Runs of escapes with little between them, or a whole token (from its start, so each token
# is read once) with three or more escapes between words ("Ignore%20previous%20...").
_PERCENT = re.compile(
    r"(?:%[0-9A-Fa-f]{2}[^%\s]{0,3}){6,}|(?<!\S)[^\s%]*+(?:%[0-9A-Fa-f]{2}[^\s%]*+){3,}"
)
# A form-encoded phrase: five or more words joined by "+" ("Ignore+previous+instructions").
_PLUS_WORDS = re.compile(r"(?<!\S)(?:[A-Za-z'%0-9]++\+){4,}[^\s+]++")


def _printable(decoded: str) -> bool:
    if len(decoded) < 8:
        return False
    good = sum(c.isprintable() or c.isspace() for c in decoded)
    letters = sum(c.isalpha() for c in decoded)
    return good >= 0.95 * len(decoded) and letters >= 0.5 * len(decoded) and " " in decoded


def decoded_blobs(text: str) -> list[tuple[str, str]]:
    """(encoding, decoded text) for the encoded runs of ``text`` that decode to readable
    text: at most ``MAX_BLOBS``, each read up to ``MAX_BLOB`` characters."""
    out: list[tuple[str, str]] = []
    if _RUN_OF_24 in text.encode("utf-8", "surrogatepass").translate(_ALPHABET):
        _hex_and_base64(text, out)
        if len(out) >= MAX_BLOBS:
            return out
    # Percent-escaped runs, then "+"-joined words: both read as a form value is.
    for mark, rx in (("%", _PERCENT), ("+", _PLUS_WORDS)):
        if mark not in text:
            continue
        for m in rx.finditer(text):
            decoded = unquote_plus(m.group(0)[:MAX_BLOB])
            if _printable(decoded):
                out.append(("url-encoding", decoded))
                if len(out) >= MAX_BLOBS:
                    return out
    return out


# Hex and base64 runs are 24 or more characters of the base64 alphabet (ASCII letters,
# digits, "+" and "/"): mapped to "a" (everything else, non-ASCII bytes too, to a space),
# text without such a run is dismissed with one substring test.
_ALPHABET = bytes(
    97 if chr(c).isascii() and (chr(c).isalnum() or chr(c) in "+/") else 32 for c in range(256)
)
_RUN_OF_24 = b"a" * 24


def _hex_and_base64(text: str, out: list[tuple[str, str]]) -> None:
    for m in _HEX.finditer(text):
        try:
            decoded = bytes.fromhex(m.group(0)[:MAX_BLOB]).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            continue
        if _printable(decoded):
            out.append(("hex", decoded))
            if len(out) >= MAX_BLOBS:
                return
    for m in _BASE64.finditer(text):
        blob = m.group(0)[:MAX_BLOB]
        if blob.isdigit() or (blob.isalpha() and (blob.islower() or blob.isupper())):
            continue  # a number or a plain word run, not base64
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=False)
            decoded = raw.decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            continue
        if _printable(decoded):
            out.append(("base64", decoded))
            if len(out) >= MAX_BLOBS:
                return
