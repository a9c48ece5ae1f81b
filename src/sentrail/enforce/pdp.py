"""The policy decision point: ``decide(request) -> Decision``, fail closed.

Controls, in order (docs/enforcement.md); every one is evaluated and the strictest
outcome wins (deny > approval_required > allow); the explanation names the control:

1. identity — a non-read-only call without an agent id;
2. containment — a frozen run, a quarantined agent (non-read-only calls), a disabled tool;
3. capability — a tool off the profile's approved list; an unknown tool (neither in the
   tool registry nor approved) on a non-read-only call; a write outside the write scopes;
4. boundary — a permission outside the boundary and the live time-bound grants
   (``on_escalation``), or one whose grant was revoked (deny);
5. budget — calls, writes or cost per run, calls per minute;
6. attestation — for sensitive writes and above: image digest, model id, policy bundle
   version and tool registry version must be in the allowed sets;
7. findings — the proposed call goes through the run's detectors (the same as
   ``trace analyze``, with the run's history): a critical finding denies (a CEL rule of
   the policy, a tainted recipient in a run that saw an injected instruction, ...), a
   warning of a security category asks for approval;
8. approval — risk classes that always need an approval; an approval redeems only for
   the same run, tool and exact arguments (SHA-256 of the canonical JSON).

``on_unknown`` (deny, or approval_required) applies to unknown tools, missing identity
and any error; a decision that cannot be recorded is a deny. In ``monitor`` mode the
outcome is computed and recorded, but the call is allowed (``enforced: false``).

A run's state is its fold (:mod:`sentrail.engine.fold`, the one every producer uses): a
proposed call is folded as a step before it runs, the answer as :class:`StepDecided`, and
``observe()`` feeds the tool's result back as :class:`ResultObserved`, so that injected
instructions in it are found and can taint later calls of the run.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import datetime as dt
import math
import secrets
import threading
import time
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

import msgspec

from sentrail.enforce.controls import Controls, Ruling, RunState
from sentrail.enforce.judging import Judges
from sentrail.enforce.model import (
    Control,
    Decision,
    DecisionRequest,
    Outcome,
    args_hash,
    canonical_args,
)
from sentrail.enforce.state import ApprovalBook, Containment
from sentrail.engine.engine import Engine
from sentrail.engine.fold import ResultObserved, StepDecided
from sentrail.evidence.note import Signer
from sentrail.model.approval import MAX_ARGS_JSON
from sentrail.model.events import StepEvent
from sentrail.model.finding import Category, Finding, Severity
from sentrail.model.status import DENIED, PENDING_APPROVAL
from sentrail.model.trace import RunHeader, Step, ToolCall, ToolResult
from sentrail.policy.bundle import Enforcement, RiskClass
from sentrail.report.escape import utf8_safe

MAX_RUNS = 100_000

DecisionRecorder = Callable[[Decision], None]


class DecisionPoint(Controls):
    def __init__(
        self,
        engine: Engine,
        signer: Signer,
        *,
        recorder: DecisionRecorder | None = None,
        containment: Containment | None = None,
        approvals: ApprovalBook | None = None,
        clock: Callable[[], float] = time.time,
        judges: Judges | None = None,
    ) -> None:
        self.engine = engine
        self.policy = engine.policy
        self.signer = signer
        self.recorder = recorder or (lambda d: None)
        self.containment = containment or Containment()
        self.approvals = approvals or ApprovalBook()
        self.clock = clock
        self.judges = judges or Judges()  # used only for profiles with enforcement.judge
        # Keyed by (tenant, app, run id): two apps may use one run id, and are two runs.
        self._runs: collections.OrderedDict[tuple[str, str, str], RunState] = (
            collections.OrderedDict()
        )
        self._minute: dict[tuple[str, str, str], collections.deque[float]] = {}
        self._lock = threading.Lock()
        self._key_ref: tuple[Signer | None, str] = (None, "")

    # -- the public API ----------------------------------------------------------------------
    def decide(self, req: DecisionRequest) -> Decision:
        """Decide, sign and record; any failure on the way is a (recorded if possible) deny."""
        with self._lock:
            try:
                if not 0.0 <= req.cost < math.inf:  # NaN too: it would disable the budget
                    failed = self._failure(
                        req, "a call's cost is a finite number >= 0", always=True
                    )
                    decision = self._sign(failed)
                else:
                    decision = self._sign(self._decide(req))
            except Exception as exc:  # signing included: a request no encoder can write
                failed = self._failure(req, f"the decision point failed: {type(exc).__name__}")
                decision = self._sign(failed)
            try:
                self.recorder(decision)  # log before act
            except Exception as exc:
                if decision.outcome is Outcome.DENY and decision.enforced:
                    return decision
                return self._sign(
                    self._failure(req, f"the decision could not be recorded: {exc}", always=True)
                )
            return decision

    async def adecide(self, req: DecisionRequest, timeout: float = 1.0) -> Decision:
        """``decide`` in a thread with a deadline: past it, the answer is deny."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.decide, req), timeout)
        except TimeoutError:
            return self._sign(
                self._failure(req, f"no decision within {timeout:g} s (timeout)", always=True)
            )

    def observe(
        self,
        tenant: str,
        run_id: str,
        result: ToolResult,
        agent_id: str | None = None,
        step_index: int | None = None,
        app: str = "default",
    ) -> list[Finding]:
        """Feed a tool's result to its run (``step_index``: the decision's, default the
        run's last call; ``app``: whose run, as in the decision's request): returns the
        findings it raised (e.g. an injected instruction)."""
        with self._lock:
            state = self._run(tenant, app, run_id, agent_id or "", None, self.clock())
            observed = ResultObserved(run_id, result, step_index, self._now_iso())
            found = state.folder.feed(observed).findings
            agent = state.folder.header.agent_id
            enf = self.policy.profile_for(agent).profile.enforcement
            self._auto_contain(enf, tenant, app, run_id=run_id, agent=agent, found=found)
            return found

    def _auto_contain(
        self,
        enf: Enforcement,
        tenant: str,
        app: str,
        agent: str,
        run_id: str,
        found: list[Finding],
    ) -> None:
        """The profile's automatic responses to findings (recorded as by sentrail:auto)."""
        for f in found:
            for r in enf.auto_contain:
                if (
                    f.severity.rank >= Severity.parse(r.min_severity).rank
                    and (r.category is None or f.category.value == r.category)
                    and fnmatchcase(f.rule, r.rule)
                ):
                    why = f"automatic: {f.rule}: {f.message}"[:500]
                    if r.action == "freeze_run":
                        self.containment.freeze_run(tenant, run_id, "sentrail:auto", why, app=app)
                    elif agent:
                        self.containment.quarantine(tenant, agent, "sentrail:auto", why)

    def run_findings(self, tenant: str, run_id: str, app: str = "default") -> list[Finding]:
        state = self._runs.get((tenant, app, run_id))
        return list(state.folder.findings) if state is not None else []

    # -- the decision --------------------------------------------------------------------
    def _decide(self, req: DecisionRequest) -> Decision:
        now = self.clock()
        agent = req.agent_id or ""
        tenant = req.tenant_id
        run_id = req.run_id or f"adhoc:{agent or '-'}"
        profile = self.policy.profile_for(agent)
        enf = profile.profile.enforcement
        fallback = Outcome(enf.on_unknown)
        risk, registered = self.policy.registry.classify(req.tool)
        read_only = risk is RiskClass.READ_ONLY
        v = Ruling()

        if not agent and not read_only:
            v.add(fallback, Control.IDENTITY, "no agent identity on a non-read-only call")
        app = req.app_id
        self._containment(v, tenant, app, agent, run_id, req.tool, read_only)
        self._capability(v, profile, enf, req, risk, registered, fallback)
        self._boundary(v, profile, enf, tenant, agent, req.permissions, now)
        state = self._run(tenant, app, run_id, agent, req, now)
        self._budget(v, enf, state, tenant, req.app_id, agent, risk, req.cost, now)
        self._attestation(v, enf, req, risk)

        args = args_hash(req.parameters)
        step = Step(
            step_index=state.folder.steps,
            action=req.action or req.tool,
            reasoning=req.reasoning,
            tool_call=ToolCall(req.tool, req.parameters),
            permissions_used=list(req.permissions),
            timestamp=self._now_iso(now),
            resource=req.resource,
            environment=req.environment,
            approval_id=req.approval_id,
            tools=req.tools,
        )
        stopped = state.blocked.get(req.tool)
        if stopped is not None:
            v.add(
                Outcome.DENY,
                Control.FINDINGS,
                f"{req.tool} stays blocked in this run: {stopped}",
                "findings.retry_storm",
            )
        found = state.folder.feed(StepEvent(run_id=run_id, step=step)).findings
        for f in found:
            self._finding(v, f)
            if f.category is Category.EXCESSIVE_RETRIES and f.severity is not Severity.INFO:
                state.blocked.setdefault(req.tool, f.message)
        if risk in enf.approval_for:
            v.add(
                Outcome.APPROVAL_REQUIRED,
                Control.APPROVAL,
                f"{req.tool} is a {risk.value.replace('_', ' ')} action: it needs an approval",
                f"approval.{risk.value}",
            )

        judgement = None
        if enf.judge is not None and v.outcome is not Outcome.DENY:
            key = (tenant, app, run_id)
            judgement = self.judges.consult(v, enf.judge, state.folder, key, step.step_index, risk)

        approval_id = None
        wanted = req.approval_id
        if v.outcome is Outcome.APPROVAL_REQUIRED and not wanted:
            # A gateway or hook cannot pass an approval id: the same call, repeated after
            # a person approved it, finds its approval by run, tool and arguments.
            wanted = self.approvals.approved_for(tenant, run_id, req.tool, args, app=app)
        if v.outcome is Outcome.APPROVAL_REQUIRED and wanted:
            used, why = self.approvals.redeem(wanted, tenant, run_id, req.tool, args, app=app)
            if used is not None:
                v.outcome, v.control = Outcome.ALLOW, Control.APPROVAL
                v.reasons.insert(0, f"approved by {used.decided_by} ({used.approval_id})")
                approval_id = used.approval_id
            else:
                v.reasons.insert(0, why)
        state.cost += req.cost
        self._auto_contain(enf, tenant, app, agent, run_id, found)

        outcome, enforced, would_have = v.outcome, True, None
        if enf.mode == "monitor":
            enforced, would_have, outcome = False, v.outcome, Outcome.ALLOW
            v.control = Control.ENFORCEMENT_MODE if would_have is not Outcome.ALLOW else v.control
        if outcome is Outcome.APPROVAL_REQUIRED:
            shown = canonical_args(req.parameters)
            approval = self.approvals.request(
                tenant,
                run_id,
                agent,
                req.tool,
                args,
                "; ".join(v.reasons[:3]),
                app=req.app_id,
                args_json=shown.decode() if len(shown) <= MAX_ARGS_JSON else "",
            )
            approval_id = approval.approval_id
        if outcome is not Outcome.ALLOW:
            status = DENIED if outcome is Outcome.DENY else PENDING_APPROVAL
            state.folder.feed(StepDecided(run_id, step.step_index, status))
        if not v.reasons:
            v.reasons.append("allowed: every control passed")
        return Decision(
            decision_id=f"dec_{secrets.token_hex(8)}",
            outcome=outcome,
            control=v.control,
            explanation="; ".join(v.reasons),
            tool=req.tool,
            tenant_id=tenant,
            run_id=run_id,
            agent_id=agent,
            args_sha256=args,
            step_index=step.step_index,
            decided_at=now,
            rule_ids=list(dict.fromkeys(v.rules)),
            obligations=v.obligations,
            enforced=enforced,
            would_have=would_have,
            approval_id=approval_id,
            app_id=req.app_id,
            judgement=judgement,
        )

    # -- helpers --------------------------------------------------------------------------
    def _run(
        self,
        tenant: str,
        app: str,
        run_id: str,
        agent: str,
        req: DecisionRequest | None,
        now: float,
    ) -> RunState:
        key = (tenant, app, run_id)
        state = self._runs.get(key)
        if state is None:
            header = RunHeader(
                run_id=run_id,
                agent_id=agent,
                tenant_id=tenant,
                started_at=self._now_iso(now),
                trigger=req.trigger if req else None,
                agent_type=req.agent_type if req else None,
                runtime_mode=req.runtime_mode if req else None,
                environment=req.environment if req else None,
                attestation=req.attestation if req else None,
            )
            state = RunState(self.engine.start(header))
            self._runs[key] = state
            while len(self._runs) > MAX_RUNS:
                self._runs.popitem(last=False)
        else:
            self._runs.move_to_end(key)
        return state

    def _now_iso(self, now: float | None = None) -> str:
        when = dt.datetime.fromtimestamp(self.clock() if now is None else now, dt.UTC)
        return when.isoformat().replace("+00:00", "Z")

    def _failure(self, req: DecisionRequest, why: str, *, always: bool = False) -> Decision:
        """Deny (or the profile's on_unknown) with ``why``; ``always`` forces deny."""
        outcome = Outcome.DENY
        if not always:
            try:
                prof = self.policy.profile_for(req.agent_id or "")
                outcome = Outcome(prof.profile.enforcement.on_unknown)
            except Exception:
                outcome = Outcome.DENY
        return Decision(  # every string UTF-8-safe: this one must sign and record
            decision_id=f"dec_{secrets.token_hex(8)}",
            outcome=outcome,
            control=Control.ERROR,
            explanation=utf8_safe(f"fail closed: {why}"),
            tool=_field(req, "tool"),
            tenant_id=_field(req, "tenant_id"),
            run_id=_field(req, "run_id"),
            agent_id=_field(req, "agent_id"),
            args_sha256=_safe_args_hash(getattr(req, "parameters", {})),
            step_index=-1,
            decided_at=self.clock(),
            rule_ids=["fail_closed"],
            app_id=_field(req, "app_id") or "default",
        )

    def _sign(self, d: Decision) -> Decision:
        signer = self.signer
        if self._key_ref[0] is not signer:  # the key's name and id, derived once per signer
            self._key_ref = (signer, signer.verifier.key_ref)
        d = msgspec.structs.replace(d, key=self._key_ref[1], signature="")
        sig = signer.sign(msgspec.json.encode(d))  # d.signed_bytes(): its signature is ""
        return msgspec.structs.replace(d, signature=base64.b64encode(sig).decode())


def _field(req: DecisionRequest, name: str) -> str:
    return utf8_safe(str(getattr(req, name, "") or ""))


def _safe_args_hash(parameters: Any) -> str:
    try:
        return args_hash(parameters)
    except Exception:
        return ""


def verify_decision(d: Decision, verifier: Any) -> bool:
    """Does ``d`` carry a valid signature of ``verifier`` (a :class:`Verifier`)?"""
    try:
        sig = base64.b64decode(d.signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    return bool(d.key == verifier.key_ref and verifier.verify(d.signed_bytes(), sig))
