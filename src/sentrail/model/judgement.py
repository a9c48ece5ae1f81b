"""The optional semantic judge: what it is asked, what it answers, and when it is asked.

A judge is a model's opinion on a run, never a finding: its answer is kept beside the
deterministic result (the verdict, the risk and the findings are never changed by it) and
recorded as evidence — the model, the SHA-256 of the exact prompt, its verdict and its
rationale. An adapter (``runtime/judge.py``: an OpenAI-compatible chat endpoint) implements
:class:`Judge`; nothing in the core calls one.

The ambiguity rule (:func:`is_ambiguous`): a judge is asked only about a run whose
deterministic verdict is ``suspicious``, or ``allowed`` with at least one warning-level
finding. Never about an ``unauthorized`` run (the rules already decided) and never about a
clean one. :func:`judged_verdict` never ranks a run below its deterministic verdict.
"""

from __future__ import annotations

import enum
from typing import Protocol

import msgspec

from sentrail.model.finding import RunResult, Severity, Verdict


class JudgeVerdict(enum.StrEnum):
    ALLOWED = "allowed"
    SUSPICIOUS = "suspicious"
    UNAUTHORIZED = "unauthorized"
    UNSURE = "unsure"


class StepSummary(msgspec.Struct, omit_defaults=True, frozen=True):
    """One step as the judge sees it: bounded, masked excerpts, never the whole value."""

    index: int
    tool: str | None = None
    parameters: str | None = None
    status: str | None = None
    result: str | None = None
    output: str | None = None


class FindingSummary(msgspec.Struct, omit_defaults=True, frozen=True):
    rule: str
    severity: str
    message: str
    step: int | None = None


class JudgeQuestion(msgspec.Struct, omit_defaults=True, frozen=True):
    """A bounded, redacted summary of one run and what the rules found in it.

    The run id is left out on purpose: two runs with the same content are the same
    question (and one cached answer)."""

    agent_id: str
    verdict: str
    steps: list[StepSummary]
    findings: list[FindingSummary]
    trigger: str | None = None
    steps_omitted: int = 0
    # On the decision point: the index of the proposed call (the step not yet run) that
    # the question is about; None for a whole run (``trace analyze --judge``).
    proposed: int | None = None


class JudgeAnswer(msgspec.Struct, omit_defaults=True):
    """A model's opinion on one run, recorded as evidence.

    ``error``: why the answer is ``unsure`` without the model saying so (a timeout, a
    refused or malformed reply, a spent budget). ``asked``: False when no call was made
    (the budget was spent); ``cached``: the answer came from the cache by prompt hash."""

    verdict: JudgeVerdict
    rationale: str
    model: str
    prompt_sha256: str
    error: str | None = None
    cached: bool = False
    asked: bool = True


class Judge(Protocol):
    """Anything that gives an opinion on a run. It must not raise: a failure is an
    ``unsure`` answer with its ``error``."""

    def ask(self, question: JudgeQuestion) -> JudgeAnswer: ...


def is_ambiguous(result: RunResult) -> bool:
    """The runs a judge is asked about (see the module's docstring)."""
    if result.verdict is Verdict.SUSPICIOUS:
        return True
    if result.verdict is Verdict.ALLOWED:
        return any(f.severity is Severity.WARNING for f in result.findings)
    return False


_RANK = {Verdict.ALLOWED: 0, Verdict.SUSPICIOUS: 1, Verdict.UNAUTHORIZED: 2}


def judged_verdict(verdict: Verdict, answer: JudgeAnswer) -> Verdict:
    """The deterministic verdict, raised (never lowered) to the judge's when it is surer."""
    if answer.verdict is JudgeVerdict.UNSURE or answer.error is not None:
        return verdict
    theirs = Verdict(answer.verdict.value)
    return theirs if _RANK[theirs] > _RANK[verdict] else verdict
