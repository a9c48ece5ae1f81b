"""Detectors: pure functions of a run's events and state that return findings."""
