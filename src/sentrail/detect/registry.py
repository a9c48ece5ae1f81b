"""The detectors the engine runs, in order (correlation last: it reads earlier findings)."""

from __future__ import annotations

from sentrail.detect.base import Detector
from sentrail.detect.correlation import BehaviouralCorrelation
from sentrail.detect.exfiltration import DataExfiltration
from sentrail.detect.injection import UntrustedInstruction
from sentrail.detect.permission import PermissionEscalation
from sentrail.detect.policy_rules import PolicyRules
from sentrail.detect.retries import ExcessiveRetries
from sentrail.detect.sequence import UnusualSequence
from sentrail.detect.taint import TaintedAction
from sentrail.detect.telemetry import MissingTelemetry

DETECTORS: tuple[type[Detector], ...] = (
    MissingTelemetry,
    PermissionEscalation,
    PolicyRules,
    ExcessiveRetries,
    UnusualSequence,
    UntrustedInstruction,
    TaintedAction,
    DataExfiltration,
    BehaviouralCorrelation,
)
