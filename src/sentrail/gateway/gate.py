"""The gate: one question to the decision point per tool call, answered in time or denied.

``Gate.decide`` asks the decision point in a daemon thread with a deadline (a hung decision
point cannot hold up the relay, nor the proxy's exit), turns a crash or a timeout into a
signed fail-closed deny, and writes the decision to the :class:`DecisionLog` *before* it
returns: a decision that cannot be written is a deny (log before act).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import msgspec

from sentrail.enforce.model import Control, Decision, DecisionRequest, Outcome, args_hash
from sentrail.errors import SentrailError
from sentrail.evidence.note import Signer
from sentrail.model.finding import Finding
from sentrail.model.trace import ToolInfo, ToolResult

T = TypeVar("T")


class DecisionPointLike(Protocol):
    """What the gate needs of :class:`sentrail.enforce.pdp.DecisionPoint`."""

    def decide(self, req: DecisionRequest) -> Decision: ...

    def observe(
        self,
        tenant: str,
        run_id: str,
        result: ToolResult,
        agent_id: str | None = None,
        step_index: int | None = None,
    ) -> list[Finding]: ...


class DecisionLog:
    """Signed decisions, one JSON line each, appended to a 0600 file and fsynced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o600)
        except OSError as exc:
            raise SentrailError(
                f"cannot open the decision log: {exc.strerror}", str(path)
            ) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise SentrailError("the decision log is not a regular file", str(path))
        os.fchmod(fd, 0o600)
        self._fd: int | None = fd
        self._lock = threading.Lock()

    def record(self, decision: Decision) -> None:
        data = msgspec.json.encode(decision) + b"\n"
        with self._lock:
            if self._fd is None:
                raise SentrailError("the decision log is closed", str(self.path))
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


async def call_with_deadline(fn: Callable[[], T], timeout: float) -> T:
    """``fn()`` in a daemon thread; ``TimeoutError`` past ``timeout`` (the thread is left
    behind: a daemon thread does not keep the process alive)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: Any, exc: BaseException | None) -> None:
        if future.done():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)

    def work() -> None:
        value: Any = None
        failure: BaseException | None = None
        try:
            value = fn()
        except BaseException as exc:
            failure = exc
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(settle, value, failure)

    threading.Thread(target=work, name="sentrail-gate", daemon=True).start()
    return await asyncio.wait_for(future, timeout)


class Gate:
    """Decisions for one run of one agent."""

    def __init__(
        self,
        point: DecisionPointLike,
        log: DecisionLog,
        signer: Signer,
        *,
        tenant: str,
        agent_id: str,
        run_id: str,
        timeout: float = 1.0,
        notice: Callable[[str], None] = lambda s: None,
    ) -> None:
        self.point = point
        self.log = log
        self.signer = signer
        self.tenant = tenant
        self.agent_id = agent_id
        self.run_id = run_id
        self.timeout = timeout
        self.notice = notice

    async def decide(
        self, tool: str, arguments: dict[str, Any], tools: list[ToolInfo] | None = None
    ) -> Decision:
        """``tools``: the advertised tools, when ``tools/list`` answered anew since the
        last call (recorded on this call's step)."""
        req = DecisionRequest(
            tool=tool,
            parameters=arguments,
            tenant_id=self.tenant,
            agent_id=self.agent_id,
            run_id=self.run_id,
            tools=tools,
        )
        try:
            decision = await call_with_deadline(lambda: self.point.decide(req), self.timeout)
            if not isinstance(decision, Decision):
                raise TypeError(f"the decision point returned {type(decision).__name__}")
        except TimeoutError:
            decision = self._fail(req, f"no decision within {self.timeout:g} s (timeout)")
        except Exception as exc:
            decision = self._fail(req, f"the decision point failed: {type(exc).__name__}")
        try:
            self.log.record(decision)
        except Exception as exc:
            self.notice(f"the decision {decision.decision_id} could not be recorded: {exc}")
            if decision.outcome is Outcome.DENY and decision.enforced:
                return decision
            decision = self._fail(req, f"the decision could not be recorded: {exc}")
            with contextlib.suppress(Exception):  # a deny stands without its record
                self.log.record(decision)
        return decision

    async def observe(self, result: ToolResult, step_index: int) -> list[Finding] | None:
        """The findings the result raised, or None when it could not be inspected in time."""
        try:
            return await call_with_deadline(
                lambda: self.point.observe(
                    self.tenant, self.run_id, result, self.agent_id, step_index
                ),
                self.timeout,
            )
        except TimeoutError:
            self.notice(f"no inspection of the tool result within {self.timeout:g} s")
        except Exception as exc:
            self.notice(f"the tool result could not be inspected: {type(exc).__name__}")
        return None

    def _fail(self, req: DecisionRequest, why: str) -> Decision:
        try:
            digest = args_hash(req.parameters)
        except Exception:
            digest = ""
        decision = Decision(
            decision_id=f"dec_{secrets.token_hex(8)}",
            outcome=Outcome.DENY,
            control=Control.ERROR,
            explanation=f"fail closed: {why}",
            tool=req.tool,
            tenant_id=req.tenant_id,
            run_id=req.run_id or "",
            agent_id=req.agent_id or "",
            args_sha256=digest,
            step_index=-1,
            decided_at=time.time(),
            rule_ids=["fail_closed"],
        )
        try:
            return sign(decision, self.signer)
        except Exception:
            return decision


def sign(decision: Decision, signer: Signer) -> Decision:
    """``decision`` signed by ``signer`` (as the decision point signs)."""
    d = msgspec.structs.replace(decision, key=signer.verifier.key_ref, signature="")
    signature = signer.sign(d.signed_bytes())
    return msgspec.structs.replace(d, signature=base64.b64encode(signature).decode())
