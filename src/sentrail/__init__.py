"""sentrail: watch, judge and govern what autonomous AI agents do."""

from sentrail import _native

_native.install()  # before anything imports a module that may be compiled

__version__ = "0.1.0"
