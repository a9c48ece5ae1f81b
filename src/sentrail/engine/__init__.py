"""The engine: runs detectors over a run's events and concludes a verdict."""
