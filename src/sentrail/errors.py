"""One error root for everything sentrail reports to a user.

Every error carries a *location* (a file, a JSON path, a line) so that a user can find
the bad input without a traceback.
"""

from __future__ import annotations


class SentrailError(Exception):
    """Root of all sentrail errors. ``str(err)`` is ``location: message``."""

    def __init__(self, message: str, location: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message

    def at(self, location: str) -> SentrailError:
        """The same error with ``location`` prefixed (outermost first)."""
        loc = f"{location}: {self.location}" if self.location else location
        return type(self)(self.message, loc)


class InputError(SentrailError):
    """A trace, event stream or baseline file that cannot be read as documented."""


class PolicyError(SentrailError):
    """A policy bundle that does not validate."""


class UsageError(SentrailError):
    """A command used in a way that cannot work (bad flags, missing paths)."""
