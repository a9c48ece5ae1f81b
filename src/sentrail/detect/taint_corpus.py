"""The searchable corpus of earlier results: where taint looks a value up before extracting any.

One run's earlier results, each as one normalised text in which every key ``value_keys`` or
``candidates`` can produce from it is a substring (``searchable``), joined into chunks of
less than ``CHUNK``. A value absent from every chunk came from no earlier result, so most of
a write's values are dismissed without reading a result's values one by one. The texts are
added lazily, from a cursor into the run's history, up to ``MAX_CORPUS`` per run.
"""

from __future__ import annotations

import re

from sentrail.detect.base import StepFacts
from sentrail.detect.content_values import Candidate

MAX_CORPUS = 4 * 1024 * 1024  # searchable text kept per run
CHUNK = 64 * 1024
_IBAN_KEY = re.compile(r"^[a-z]{2}\d{2}[a-z0-9]+$")
_NUMBER_GLUE = re.compile(r"(?<=\d)[ ,-](?=\d)")
_GLUE_BYTES = bytes(48 if 48 <= c <= 57 else 45 if c in (32, 44, 45) else 120 for c in range(256))


class ResultCorpus:
    """The searchable texts of one run's earlier results, in step order."""

    def __init__(self) -> None:
        self._cursor = 0  # the next step of the history to add
        # Per earlier step: (step, facts, searchable text of its result).
        self.steps: list[tuple[int, StepFacts, str]] = []
        self._chunks: list[str] = []  # the steps' texts, joined into chunks of < CHUNK
        self._size = 0

    def catch_up(self, history: list[StepFacts]) -> None:
        """Make earlier steps searchable: one normalised text per step, no extraction yet."""
        while self._cursor < len(history):
            facts = history[self._cursor]
            self._cursor += 1
            if self._size >= MAX_CORPUS:
                continue
            # Results only: a value a call carried is "known" (taint registers calls itself).
            text = searchable(facts.result_text)
            self.steps.append((facts.index, facts, text))
            self._size += len(text)
            chunks = self._chunks
            if chunks and len(chunks[-1]) + len(text) < CHUNK:
                chunks[-1] = chunks[-1] + "\n" + text  # bounded copy: chunks stay small
            else:
                chunks.append(text)

    def needle(self, c: Candidate) -> str | None:
        """How ``c`` reads in the corpus (None when it is not there): itself, or, for an
        IBAN, the groups of four it is printed in (``GB29 NWBK 6016 …``)."""
        if not self._chunks:
            return None
        key = c.key
        if self._holds(key):
            return key
        if 15 <= len(key) <= 34 and _IBAN_KEY.match(key):
            grouped = " ".join(key[i : i + 4] for i in range(0, len(key), 4))
            if self._holds(grouped):
                return grouped
        return None

    def _holds(self, key: str) -> bool:
        return any(key in chunk for chunk in self._chunks)


def searchable(text: str) -> str:
    """Text in which every key ``value_keys``/``candidates`` can produce from it is a
    substring: lower case with runs of spaces folded, then again with digit groups joined
    (``DE44 5001`` -> ``de445001``, ``1,000.50`` -> ``1000.50``) when there are any."""
    low = " ".join(text.lower().split())
    shape = _glue_shape(low)
    if "0-0" not in shape:
        return low
    return low + "\n" + (_glued(low, shape) if low.isascii() else _NUMBER_GLUE.sub("", low))


def _glued(low: str, shape: str) -> str:
    """``_NUMBER_GLUE.sub("", low)`` for ASCII ``low`` (``\\d`` is 0-9 there), from its
    shape: each "0-0" marks a separator between two digits (occurrences overlap)."""
    parts: list[str] = []
    last = 0
    at = shape.find("0-0")
    while at >= 0:
        parts.append(low[last : at + 1])
        last = at + 2
        at = shape.find("0-0", at + 2)
    parts.append(low[last:])
    return "".join(parts)


def _glue_shape(text: str) -> str:
    """Digits as 0 and separators as -: ``"0-0" in shape`` says a digit group may be split."""
    return text.encode("ascii", "replace").translate(_GLUE_BYTES).decode("ascii")
