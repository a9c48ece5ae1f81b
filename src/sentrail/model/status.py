"""The status words of steps and runs, and what each means to the rest of sentrail.

A step's ``result.status`` and a run's ``status`` are free text from the producer; these
sets are the vocabulary the detectors, the decision point and the run index agree on.
Compared lower-cased.
"""

from __future__ import annotations

# A step that did not do what it was asked (the retry and correlation detectors count them).
FAILED_STATUSES = frozenset(
    {"error", "failed", "failure", "denied", "forbidden", "unauthorized", "timeout", "rejected"}
)
# A step that something refused: a tool, a permission check, or a decision point.
DENIED_STATUSES = frozenset({"denied", "forbidden", "unauthorized", "rejected", "blocked"})
# A step or run that a decision point stopped (the run index shows it ``blocked``).
BLOCKED_STATUSES = frozenset({"blocked", "denied"})
# A step or run held for a person's approval.
PENDING_STATUSES = frozenset({"pending_approval", "awaiting_approval"})

# What a decision point writes on a call it did not allow (later steps see it so).
DENIED = "denied"
PENDING_APPROVAL = "pending_approval"
# How runs that ended without ``run_completed`` are closed.
INCOMPLETE = "incomplete"  # a stream worker's idle timeout
PARTIAL = "partial"  # the end of a watched input
RUNNING = "running"  # index status of a run still open
