"""The detectors the engine runs, by name, in order (correlation last: it reads the findings
of the others). Each detector declares its category and its rules' ids and severities on
its class (:class:`~sentrail.detect.base.Detector`); :func:`rule_declared` reads them."""

from __future__ import annotations

from fnmatch import fnmatchcase

from sentrail.detect.base import Detector
from sentrail.detect.correlation import BehaviouralCorrelation
from sentrail.detect.dangerous import DangerousActions
from sentrail.detect.exfiltration import DataExfiltration
from sentrail.detect.injection import UntrustedInstruction
from sentrail.detect.output import DangerousOutput, OutputLinks
from sentrail.detect.permission import PermissionEscalation
from sentrail.detect.policy_rules import PolicyRules
from sentrail.detect.retries import ExcessiveRetries
from sentrail.detect.sequence import UnusualSequence
from sentrail.detect.taint import TaintedAction
from sentrail.detect.telemetry import MissingTelemetry
from sentrail.model.finding import Category, Severity

DETECTORS: dict[str, type[Detector]] = {
    cls.name: cls
    for cls in (
        MissingTelemetry,
        PermissionEscalation,
        PolicyRules,
        DangerousActions,
        ExcessiveRetries,
        UnusualSequence,
        UntrustedInstruction,
        TaintedAction,
        DataExfiltration,
        DangerousOutput,
        OutputLinks,
        BehaviouralCorrelation,
    )
}


def rule_declared(rule: str) -> tuple[type[Detector], Category, tuple[Severity, ...]] | None:
    """The detector that declares ``rule``, its category and the severities it may have."""
    for cls in DETECTORS.values():
        for pattern, severities in cls.rules.items():
            if rule == pattern or (pattern.endswith("*") and fnmatchcase(rule, pattern)):
                return cls, cls.category, severities
    return None
