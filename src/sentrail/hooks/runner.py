"""One hook invocation: rebuild the session's run state, then decide or observe, and record.

A hook process knows nothing of the session's earlier calls, so it replays them: every
recorded call is decided again and every recorded result observed again, in order, by a
:class:`DecisionPoint` whose clock shows each record's time and which has no recorder yet
— the decision point folds the run with the one fold (:mod:`sentrail.engine.fold`), so
replay is that fold with its output not yet attached. The run state that follows
(findings, taint sources, injected instructions, budgets) is the one a long-lived decision
point would hold. Then the recorder is attached and the new call decided: it appends the
call, with its signed decision, to the log before the answer leaves (a decision that
cannot be recorded is a deny, as in the decision point).

Scanning a result for injected instructions is most of the cost of replay, and its answer
depends on the text alone; a result the live scan found clean is recorded as such and not
scanned again. Replay is bounded by ``REPLAY_SECONDS``: a client kills a slow hook and may
then run the tool unchecked, so past that budget the hook stops and answers as it does for
any error.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec

from sentrail.detect.base import Detector, StepFacts
from sentrail.detect.injection import UntrustedInstruction
from sentrail.detect.registry import DETECTORS
from sentrail.detect.text import bounded
from sentrail.enforce.model import Decision, DecisionRequest, args_hash
from sentrail.enforce.pdp import DecisionPoint
from sentrail.enforce.state import ApprovalBook, Containment
from sentrail.engine.engine import Engine
from sentrail.evidence.keys import KeyStore, default_home, default_key_dir
from sentrail.evidence.note import Signer
from sentrail.hooks.mapping import ToolCallSpec, clip
from sentrail.hooks.policy import hook_policy
from sentrail.hooks.session import (
    CallRecord,
    HookStateError,
    PromptRecord,
    ResultRecord,
    SessionLog,
)
from sentrail.model.finding import Finding
from sentrail.model.trace import ToolResult
from sentrail.policy.compiled import Policy

REPLAY_SECONDS = 15.0
MAX_PROMPT_CHARS = 64 * 1024


class HookOptions(msgspec.Struct, frozen=True):
    """How a hook command was configured (its command-line options)."""

    client: str
    agent_id: str
    tenant_id: str = "default"
    policy_path: str | None = None
    allow_mode: str = "defer"  # defer: leave allowed calls to the client's own rules
    on_error: str = "deny"  # deny | ask: the answer when the hook itself fails
    home: str | None = None
    database: str | None = None  # shared containment and approvals


class _Clock:
    """The decision point's clock: a record's time during replay, else now."""

    def __init__(self) -> None:
        self.fixed: float | None = None

    def __call__(self) -> float:
        return self.fixed if self.fixed is not None else time.time()


class _Scans:
    """Results whose instruction scan is known clean (skipped), and what live scans found."""

    def __init__(self) -> None:
        self.clean: set[int] = set()  # id() of recorded results, alive during the run
        self.found: dict[int, bool] = {}


def _detectors(scans: _Scans) -> tuple[type[Detector], ...]:
    class RecordedInstruction(UntrustedInstruction):
        def on_step(self, facts: StepFacts) -> None:
            res = facts.step.result
            if res is None or id(res) in scans.clean:
                return
            before = len(self.ctx.injections)
            super().on_step(facts)
            scans.found[id(res)] = len(self.ctx.injections) > before

    return tuple({**DETECTORS, UntrustedInstruction.name: RecordedInstruction}.values())


class HookRun:
    """A session's run, rebuilt from its log, for one decision or one result."""

    def __init__(
        self,
        policy: Policy,
        signer: Signer,
        log: SessionLog,
        *,
        client: str,
        tenant_id: str,
        agent_id: str,
        replay_seconds: float = REPLAY_SECONDS,
        shared: tuple[Containment, ApprovalBook] | None = None,
    ) -> None:
        self.log = log
        self._shared = shared
        self.client = client
        self.tenant_id = tenant_id
        self.agent_id = agent_id
        self.run_id = log.session_id
        self.trigger: str | None = None
        self._clock = _Clock()
        self._pending: tuple[str, DecisionRequest] | None = None
        self._steps: dict[str, int] = {}  # call key -> step index of its decision
        self._replay_seconds = replay_seconds
        self._replayed = False
        self._failed: Exception | None = None
        self._scans = _Scans()
        engine = Engine(policy, detectors=_detectors(self._scans))
        self.pdp = DecisionPoint(engine, signer, clock=self._clock)  # recorder: after replay

    # -- replay -------------------------------------------------------------------------
    def _record(self, decision: Decision) -> None:
        if self._pending is None:
            raise HookStateError("a decision with no call to record", str(self.log.path))
        key, req = self._pending
        self.log.append(CallRecord(self._clock(), key, req, decision))

    def replay(self) -> None:
        if self._failed is not None:
            raise self._failed  # a half-replayed run must not decide (nor go unrecorded)
        if self._replayed:
            return
        self._replayed = True
        try:
            self._replay()
        except Exception as exc:
            self._failed = exc
            raise

    def _replay(self) -> None:
        records = self.log.records()
        prompts = [r.text for r in records if isinstance(r, PromptRecord)]
        self.trigger = bounded("\n".join(prompts)) if prompts else None
        deadline = time.monotonic() + self._replay_seconds
        judges = self.pdp.judges
        judges.replay = True  # a recorded call is not asked about again: its answer stands
        try:
            for n, rec in enumerate(records):
                if n % 32 == 31 and time.monotonic() > deadline:
                    raise HookStateError(
                        f"replaying the session took over {self._replay_seconds:g} s "
                        f"({n} of {len(records)} records); start a new session",
                        str(self.log.path),
                    )
                self._clock.fixed = rec.at
                if isinstance(rec, CallRecord):
                    judges.recorded = rec.decision.judgement if rec.decision else None
                    d = self.pdp.decide(self._request(rec.request))
                    self._steps[rec.key] = d.step_index
                elif isinstance(rec, ResultRecord):
                    if rec.clean:
                        self._scans.clean.add(id(rec.result))
                    step = self._steps.get(rec.key, -1)
                    self.pdp.observe(self.tenant_id, self.run_id, rec.result, self.agent_id, step)
        finally:
            self._clock.fixed = None
            judges.replay, judges.recorded = False, None
        self.pdp.recorder = self._record  # replayed: from now on, decisions are recorded

    def _request(self, req: DecisionRequest) -> DecisionRequest:
        """The request with the run's trigger: every prompt of the session so far."""
        if req.trigger == self.trigger:
            return req
        return msgspec.structs.replace(req, trigger=self.trigger)

    # -- one invocation -----------------------------------------------------------------
    def request(self, spec: ToolCallSpec) -> DecisionRequest:
        return DecisionRequest(
            tool=spec.tool,
            parameters=spec.parameters,
            tenant_id=self.tenant_id,
            agent_id=self.agent_id,
            agent_type=self.client,
            runtime_mode="hook",
            run_id=self.run_id,
            resource=spec.resource,
            permissions=list(spec.permissions),
            action=spec.action,
        )

    def decide(self, key: str, spec: ToolCallSpec) -> Decision:
        """Decide a new call and record it (with its decision) in the log."""
        self.replay()
        req = self.request(spec)
        self._pending = (key, req)  # recorded without the trigger: replay adds the current one
        replayed = self.pdp.containment, self.pdp.approvals
        if self._shared is not None:  # the live call obeys the shared state; replay did not
            self.pdp.containment, self.pdp.approvals = self._shared
        try:
            decision = self.pdp.decide(self._request(req))
        finally:
            self._pending = None
            self.pdp.containment, self.pdp.approvals = replayed
        self._steps[key] = decision.step_index
        return decision

    def observe(self, key: str, result: ToolResult) -> list[Finding]:
        """Feed a tool's result to the run and record it."""
        self.replay()
        step = self._steps.get(key, -1)
        self._clock.fixed = time.time()
        try:
            findings = self.pdp.observe(self.tenant_id, self.run_id, result, self.agent_id, step)
            clean = self._scans.found.get(id(result)) is False
            rules = [f.rule for f in findings]
            self.log.append(ResultRecord(self._clock(), key, result, rules, clean))
        finally:
            self._clock.fixed = None
        return findings

    def prompt(self, text: str) -> None:
        """Record what the user asked (it becomes part of the run's trigger)."""
        self.log.append(PromptRecord(time.time(), clip(text, MAX_PROMPT_CHARS)))


def call_key(tool_use_id: str, spec: ToolCallSpec) -> str:
    """The key that ties a call to its result: the client's id, else tool and arguments."""
    if tool_use_id:
        return tool_use_id[:200]
    return f"{spec.tool}:{args_hash(spec.parameters)}"


def hook_home(options: HookOptions) -> Path:
    return Path(options.home) if options.home else default_home()


@contextmanager
def open_run(options: HookOptions, session_id: str) -> Iterator[HookRun]:
    """The session's run, under its log's lock, for the length of the ``with`` block."""
    home = hook_home(options)
    policy = hook_policy(options.policy_path)
    signer = _signer(home)
    directory = home / "hooks" / options.client
    shared = None
    store = None
    if options.database is not None:
        from sentrail.enforce.persist import StoreApprovals, StoreContainment
        from sentrail.store import open_store

        store = open_store(options.database, signer)
        store.migrate()
        shared = (StoreContainment(store), StoreApprovals(store))
    try:
        with SessionLog(directory, options.client, session_id) as log:
            yield HookRun(
                policy,
                signer,
                log,
                client=options.client,
                tenant_id=options.tenant_id,
                agent_id=options.agent_id,
                shared=shared,
            )
    finally:
        if store is not None:
            store.close()


def _signer(home: Path) -> Signer:
    """The signing key, created under a lock (parallel first hooks must not race)."""
    hooks = home / "hooks"
    hooks.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(hooks / ".keys.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return KeyStore(default_key_dir(home)).ensure()
    finally:
        os.close(fd)
