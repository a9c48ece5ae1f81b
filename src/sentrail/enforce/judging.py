"""The semantic judge on the decision point, for the profiles that ask for it
(``enforcement.judge`` in the policy; docs/enforcement.md, "A semantic judge on the
decision point").

:meth:`Judges.consult` is the one hook ``DecisionPoint._decide`` calls, after every rule
has ruled and before an approval is redeemed, and only when the profile has a ``judge``
block. It asks only about calls the rules did not deny, and only those ``ask_when``
names; an answer can make the decision stricter, never looser:

- ``unauthorized`` denies; ``suspicious`` holds for approval (or denies, ``on_suspicious``);
- ``allowed`` changes nothing;
- ``unsure``, a timeout, an error, a malformed reply or a spent budget (per run and per
  hour) is ``on_failure``: the rules' decision (default), an approval, or a deny.

The answer (model, prompt hash, verdict, rationale, error) goes into the decision, which
is signed and recorded in the run's chain, and one escaped line of it into the
explanation. The judge's rationale is the model's text about hostile run content: it is
shown only escaped, on one line, cut, and never decides anything by itself.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Final

import msgspec

from sentrail.enforce.controls import Ruling
from sentrail.enforce.model import Control, Outcome
from sentrail.engine.fold import RunFolder
from sentrail.model.finding import Category, Finding, Severity
from sentrail.model.judgement import Judge, JudgeAnswer, JudgeQuestion, JudgeVerdict
from sentrail.policy.bundle import JudgePolicy, RiskClass
from sentrail.report.escape import safe_text

JudgeFactory = Callable[[JudgePolicy], Judge]
MAX_RUNS: Final = 100_000  # runs whose judge calls are counted (least recent dropped)
MAX_JUDGES: Final = 64  # distinct judge configurations kept built
MAX_HOURS: Final = 10_000  # (configuration, tenant, app) hourly windows kept
SHOWN_RATIONALE: Final = 300  # characters of the rationale in the explanation
MAX_RATIONALE: Final = 1000  # characters of a rationale kept (as the adapter keeps)

_LEVEL = {"approval_required": 0, "ambiguous": 1, "writes": 2, "always": 3}


def openai_judge(cfg: JudgePolicy) -> Judge:
    """The OpenAI-compatible adapter for a profile's ``judge`` block. Its own budget and
    cache are not used (:class:`Judges` counts per run and per hour, and caches answers per
    tenant and app)."""
    from sentrail.runtime.judge import OpenAIChatJudge  # only for a profile that asks

    return OpenAIChatJudge(
        cfg.endpoint,
        cfg.model,
        api_key_env=cfg.api_key_env,
        timeout=cfg.timeout_s,
        max_calls=1 << 62,
        max_cache=0,
        deadline=cfg.timeout_s,
    )


class Judges:
    """The judges the profiles ask for (built on first use) and their budgets.

    Not thread-safe on its own: the decision point calls it under its lock.

    ``replay``: the calls being decided are recorded ones decided again (the coding-agent
    hooks rebuild a session's run at each invocation); the judge is not asked, the answer
    the recorded decision had (``recorded``) is applied again and counts to the run's
    budget."""

    def __init__(
        self,
        factory: JudgeFactory = openai_judge,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.factory = factory
        self.clock = clock
        self._judges: collections.OrderedDict[bytes, Judge | str] = collections.OrderedDict()
        self._per_run: collections.OrderedDict[tuple[str, str, str], int] = (
            collections.OrderedDict()
        )
        # Hourly windows per configuration AND (tenant, app): an app's agent that spends
        # its own (new run ids at each call) cannot spend another app's.
        self._hour: collections.OrderedDict[tuple[bytes, str, str], collections.deque[float]] = (
            collections.OrderedDict()
        )
        # Answers by (tenant, app, prompt hash), per configuration: another app's run never
        # reads this app's answers (a hit would tell it this app had a run with that
        # content) nor fills them.
        self._answers: dict[bytes, collections.OrderedDict[tuple[str, str, str], JudgeAnswer]] = {}
        self.replay = False
        self.recorded: JudgeAnswer | None = None

    def consult(
        self,
        v: Ruling,
        cfg: JudgePolicy,
        folder: RunFolder,
        run_key: tuple[str, str, str],
        step_index: int,
        risk: RiskClass,
    ) -> JudgeAnswer | None:
        """Ask the judge about the call being decided (``v`` is the rules' ruling) when
        ``cfg`` says to; apply the answer to ``v``; return it (None: not asked)."""
        if self.replay:
            answer = self.recorded
            if answer is not None:
                if answer.asked and not answer.cached:
                    self._per_run[run_key] = self._per_run.get(run_key, 0) + 1
                _apply(v, cfg, answer)
            return answer
        # Telemetry findings say nothing about intent (and a call not yet made has no
        # result): left out of the question and of the ambiguity, as from the decision.
        findings = [f for f in folder.findings if f.category is not Category.MISSING_TELEMETRY]
        if not _wanted(v.outcome, cfg, findings, risk):
            return None
        key = msgspec.json.encode(cfg)
        judge = self._judge(key, cfg)
        spent = self._spent(key, cfg, run_key)
        from sentrail.runtime.judge import decision_question, messages_for, prompt_sha256

        question = decision_question(folder.run, findings, step_index)
        digest = prompt_sha256(messages_for(question))
        if isinstance(judge, str) or spent is not None:
            why = spent if spent is not None else f"the judge could not be set up: {judge}"
            answer = _unsure(cfg, digest, why, asked=False)
        else:
            answer = self._cached_or_ask(judge, question, cfg, key, (*run_key[:2], digest))
        if answer.asked and not answer.cached:
            self._count(key, run_key)
        _apply(v, cfg, answer)
        return answer

    def _cached_or_ask(
        self,
        judge: Judge,
        question: JudgeQuestion,
        cfg: JudgePolicy,
        key: bytes,
        where: tuple[str, str, str],
    ) -> JudgeAnswer:
        answers = self._answers.setdefault(key, collections.OrderedDict())
        hit = answers.get(where)
        if hit is not None:
            answers.move_to_end(where)
            return msgspec.structs.replace(hit, cached=True)
        answer = _ask(judge, question, cfg)
        if answer.error is None and answer.asked and not answer.cached and cfg.cache_size > 0:
            answers[where] = answer
            while len(answers) > cfg.cache_size:
                answers.popitem(last=False)
        return answer

    # -- the judge and its budget ----------------------------------------------------------
    def _judge(self, key: bytes, cfg: JudgePolicy) -> Judge | str:
        judge = self._judges.get(key)
        if judge is None:
            try:
                judge = self.factory(cfg)
            except Exception as exc:  # httpx missing, a bad endpoint: the answer is unsure
                judge = safe_text(f"{type(exc).__name__}: {exc}", limit=200)
            self._judges[key] = judge
            while len(self._judges) > MAX_JUDGES:
                gone, _ = self._judges.popitem(last=False)
                self._answers.pop(gone, None)
        else:
            self._judges.move_to_end(key)
        return judge

    def _spent(self, key: bytes, cfg: JudgePolicy, run_key: tuple[str, str, str]) -> str | None:
        if self._per_run.get(run_key, 0) >= cfg.calls_per_run:
            return f"not asked: the budget of {cfg.calls_per_run} calls per run is spent"
        hour = self._hour.get((key, run_key[0], run_key[1]))
        if hour is not None:
            cutoff = self.clock() - 3600.0
            while hour and hour[0] <= cutoff:
                hour.popleft()
            if len(hour) >= cfg.calls_per_hour:
                return f"not asked: the budget of {cfg.calls_per_hour} calls per hour is spent"
        elif cfg.calls_per_hour == 0:
            return "not asked: the budget of 0 calls per hour is spent"
        return None

    def _count(self, key: bytes, run_key: tuple[str, str, str]) -> None:
        self._per_run[run_key] = self._per_run.get(run_key, 0) + 1
        self._per_run.move_to_end(run_key)
        while len(self._per_run) > MAX_RUNS:
            self._per_run.popitem(last=False)
        where = (key, run_key[0], run_key[1])
        hour = self._hour.setdefault(where, collections.deque())
        hour.append(self.clock())
        self._hour.move_to_end(where)
        while len(self._hour) > MAX_HOURS:  # the least recently used window
            self._hour.popitem(last=False)


def _wanted(outcome: Outcome, cfg: JudgePolicy, findings: list[Finding], risk: RiskClass) -> bool:
    """Whether ``ask_when`` covers a call the rules ruled ``outcome``."""
    if outcome is Outcome.DENY:
        return False  # never asked about a deny: it could not loosen one anyway
    if outcome is Outcome.APPROVAL_REQUIRED:
        return True
    level = _LEVEL[cfg.ask_when]
    if level >= 3 or (level >= 2 and risk.is_write):
        return True
    return level >= 1 and any(f.severity.rank >= Severity.WARNING.rank for f in findings)


def _ask(judge: Judge, question: JudgeQuestion, cfg: JudgePolicy) -> JudgeAnswer:
    try:
        answer = judge.ask(question)
    except Exception as exc:  # the Protocol says it must not raise; fail as unsure anyway
        return _unsure(cfg, "", f"the judge failed: {type(exc).__name__}", asked=True)
    if not isinstance(answer, JudgeAnswer):
        return _unsure(cfg, "", f"the judge answered a {type(answer).__name__}", asked=True)
    if len(answer.rationale) > MAX_RATIONALE:
        answer = msgspec.structs.replace(answer, rationale=answer.rationale[:MAX_RATIONALE])
    return answer


def _unsure(cfg: JudgePolicy, digest: str, error: str, *, asked: bool) -> JudgeAnswer:
    return JudgeAnswer(JudgeVerdict.UNSURE, "", cfg.model, digest, error=error, asked=asked)


def _apply(v: Ruling, cfg: JudgePolicy, answer: JudgeAnswer) -> None:
    """The answer onto the ruling: only ever stricter (``Ruling.add`` keeps the strictest)."""
    model = safe_text(answer.model, limit=100)
    if answer.error is not None or answer.verdict is JudgeVerdict.UNSURE:
        why = safe_text(answer.error, limit=200) if answer.error else "unsure"
        if cfg.on_failure == "rules":
            v.reasons.append(f"judge {model} gave no answer ({why}): the rules' decision stands")
            v.rules.append("judge.no_answer")
        else:
            v.add(
                Outcome(cfg.on_failure),
                Control.JUDGE,
                f"judge {model} gave no answer ({why}): on_failure is {cfg.on_failure}",
                "judge.no_answer",
            )
        return
    said = f"judge {model} says {answer.verdict.value}: {shown_rationale(answer.rationale)}"
    if answer.verdict is JudgeVerdict.UNAUTHORIZED:
        v.add(Outcome.DENY, Control.JUDGE, said, "judge.unauthorized")
    elif answer.verdict is JudgeVerdict.SUSPICIOUS:
        v.add(Outcome(cfg.on_suspicious), Control.JUDGE, said, "judge.suspicious")
    else:
        v.reasons.append(said)


def shown_rationale(text: str) -> str:
    """The model's rationale as an explanation shows it: quoted, escaped, one line, cut
    (and without "; ", which separates an explanation's reasons)."""
    return '"' + safe_text(text, limit=SHOWN_RATIONALE).replace(";", ",").replace('"', "'") + '"'
