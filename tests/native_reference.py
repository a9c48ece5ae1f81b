"""The reference side of tests/test_native.py: the Python sources judging traces.

Run as ``python -m tests.native_reference`` with ``SENTRAIL_PURE=1``: it reads one JSON
trace per line on stdin and writes, per trace, one line with everything the engine judged
(:func:`judge`), so the compiled build in the test's process can be compared with it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import msgspec

from sentrail import _native
from sentrail.engine.engine import Engine
from sentrail.engine.fold import fold_events
from sentrail.errors import SentrailError
from sentrail.model.decode import decode_run
from sentrail.model.events import events_of
from sentrail.policy.compiled import Policy
from sentrail.policy.load import load_policy

POLICY = Path(__file__).resolve().parent.parent / "examples" / "policy.yaml"
_ENC = msgspec.json.Encoder(order="sorted")


def engine() -> Engine:
    return Engine(Policy(load_policy(POLICY)))


def judge(eng: Engine, doc: bytes) -> bytes:
    """The whole RunResult of analysing the trace and of folding its events (as the stream
    worker does), in canonical JSON on one line; or the error each raised."""
    try:
        run = decode_run(doc)
    except SentrailError as exc:
        return f"error {exc}".encode()
    analysed = _outcome(lambda: [eng.analyze(run)])
    return _ENC.encode([analysed, _outcome(lambda: fold_events(eng, events_of(run)))])


def _outcome(work: Callable[[], object]) -> object:
    try:
        return work()
    except Exception as exc:  # any exception is an answer to compare, not a crash
        return f"{type(exc).__name__}: {exc}"


def main() -> None:
    if _native.state == "compiled":
        sys.exit("the reference must run the Python sources: set SENTRAIL_PURE=1")
    eng = engine()
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        out.write(judge(eng, line.rstrip(b"\n")) + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
