"""sentrail: watch, judge and govern what autonomous AI agents do."""

__version__ = "0.1.0"
