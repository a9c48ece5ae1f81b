"""Placeholder: being written (replaced before this lands)."""

from __future__ import annotations

from sentrail.detect.base import Detector


class UnusualSequence(Detector):
    name = "sequence"
