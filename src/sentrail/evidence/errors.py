"""The error every evidence check raises: one class, a specific message, a location."""

from __future__ import annotations

from sentrail.errors import SentrailError


class EvidenceError(SentrailError):
    """Evidence that does not verify, or input that cannot be evidence.

    ``message`` says what is wrong (``"bad signature by key example.com/log+1a2b3c4d"``),
    ``location`` where (``"checkpoint.txt: line 2"``, ``"events/index.json: event 17"``).
    """
