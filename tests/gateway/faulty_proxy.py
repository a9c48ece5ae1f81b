"""The real proxy (``sentrail.gateway``) on stdio with a decision point that fails.

``python faulty_proxy.py crash|hang DECISIONS_FILE -- COMMAND [ARGS]...``: ``crash`` raises
on every decision, ``hang`` never answers (the gate's timeout is 0.5 s).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sentrail.enforce.model import Decision, DecisionRequest
from sentrail.evidence.note import Signer
from sentrail.gateway.gate import DecisionLog, Gate
from sentrail.gateway.proxy import serve
from sentrail.model.finding import Finding
from sentrail.model.trace import ToolResult

SIGNER = Signer("test.sentrail.local/log", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


class FaultyPoint:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.never = threading.Event()

    def decide(self, req: DecisionRequest) -> Decision:
        if self.mode == "hang":
            self.never.wait()
        raise RuntimeError("the decision point crashed")

    def observe(
        self,
        tenant: str,
        run_id: str,
        result: ToolResult,
        agent_id: str | None = None,
        step_index: int | None = None,
    ) -> list[Finding]:
        return []


def main() -> int:
    mode, decisions, dashes, *command = sys.argv[1:]
    assert mode in ("crash", "hang") and dashes == "--"
    log = DecisionLog(Path(decisions))
    gate = Gate(
        FaultyPoint(mode),
        log,
        SIGNER,
        tenant="default",
        agent_id="payments-agent",
        run_id="faulty-run",
        timeout=0.5,
    )
    return asyncio.run(serve(command, gate, notice=lambda s: print(s, file=sys.stderr)))


if __name__ == "__main__":
    sys.exit(main())
