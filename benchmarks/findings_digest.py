"""Equivalence check for performance work: one digest of everything the engine judges.

Prints JSON: per corpus, how many runs and a SHA-256 over each run's whole ``RunResult``
(findings with their evidence, suppressions, verdict, risk and its contributions, policy
lines, permissions) in canonical JSON — over the example traces (each also folded from its
events, as the stream worker does), the synthetic benchmark corpus, the content-heavy
corpus, ``../shared/datasets`` (when present), and the decisions of the decide benchmark
(outcome, control, explanation, rules; ids, clocks and signatures left out). An
optimisation must leave every digest unchanged. Usage:
``python benchmarks/findings_digest.py [--traces N]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import msgspec
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from content_corpus import ensure_content_corpus
from corpus import ensure_corpus
from sentrail.engine.engine import Engine
from sentrail.engine.fold import fold_events
from sentrail.errors import SentrailError
from sentrail.model.decode import decode_run
from sentrail.model.events import events_of
from sentrail.model.finding import RunResult
from sentrail.policy.compiled import Policy
from sentrail.policy.load import load_policy

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "examples" / "policy.yaml"
# ../shared beside the checkout; SENTRAIL_SHARED names another place (a git worktree).
DATASETS = Path(os.environ.get("SENTRAIL_SHARED") or ROOT.parent / "shared") / "datasets"
_ENC = msgspec.json.Encoder(order="sorted")


class Digest:
    def __init__(self) -> None:
        self.h = hashlib.sha256()
        self.runs = 0
        self.errors = 0
        self.findings = 0

    def add(self, result: RunResult) -> None:
        self.h.update(_ENC.encode(result))
        self.h.update(b"\n")
        self.runs += 1
        self.findings += len(result.findings)

    def error(self, exc: SentrailError) -> None:
        self.h.update(f"error {exc}\n".encode())
        self.errors += 1

    def out(self) -> dict[str, object]:
        return {
            "runs": self.runs,
            "findings": self.findings,
            "input_errors": self.errors,
            "sha256": self.h.hexdigest(),
        }


def digest_files(engine: Engine, paths: Iterable[Path], *, events: bool = False) -> Digest:
    d = Digest()
    for p in paths:
        try:
            run = decode_run(p.read_bytes())
        except SentrailError as exc:
            d.error(exc)
            continue
        d.add(engine.analyze(run))
        if events:
            for result in fold_events(engine, events_of(run)):
                d.add(result)
    return d


def digest_decisions() -> dict[str, object]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    import decide_bench
    from sentrail.enforce.pdp import DecisionPoint
    from sentrail.evidence.note import Signer
    from sentrail.model.trace import ToolResult

    spec = decide_bench.bundle()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bundle.yaml"
        path.write_text(yaml.safe_dump(spec))
        policy = Policy(load_policy(str(path)))
    recorded: list[object] = []
    clock = iter(range(10**9))
    pdp = DecisionPoint(
        Engine(policy),
        Signer("digest.local/log", Ed25519PrivateKey.generate()),
        recorder=recorded.append,
        clock=lambda: 1_770_000_000.0 + next(clock),
    )
    h = hashlib.sha256()
    result = ToolResult(status="success", data={"rows": 3, "ok": True})
    n = 0
    for r in decide_bench.calls(random.Random(11), spec["tools"]):
        dec = pdp.decide(r)
        h.update(
            _ENC.encode(
                [
                    dec.outcome,
                    dec.control,
                    dec.explanation,
                    dec.rule_ids,
                    dec.step_index,
                    dec.obligations,
                    dec.enforced,
                    dec.would_have,
                ]
            )
        )
        assert r.run_id is not None
        for f in pdp.observe("default", r.run_id, result, r.agent_id):
            h.update(_ENC.encode([f.id, f.rule, f.severity, f.message, f.evidence]))
        n += 1
    return {"decisions": n, "recorded": len(recorded), "sha256": h.hexdigest()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", type=int, default=3000, help="synthetic traces")
    ap.add_argument("--content", type=int, default=600, help="content-heavy traces")
    ap.add_argument("--only", choices=["decisions"], help="only the decisions' digest")
    args = ap.parse_args()
    if args.only == "decisions":
        print(json.dumps({"decisions": digest_decisions()}, indent=2))
        return
    policy = Policy(load_policy(POLICY))
    out: dict[str, object] = {}
    examples = sorted((ROOT / "examples" / "traces").glob("*.json"))
    out["examples"] = digest_files(Engine(policy), examples, events=True).out()
    out["examples_no_policy"] = digest_files(Engine(), examples, events=True).out()
    synthetic = ensure_corpus(ROOT / "benchmarks" / ".corpus", 50_000)[: args.traces]
    out["synthetic"] = digest_files(Engine(policy), synthetic).out()
    content = ensure_content_corpus(ROOT / "benchmarks" / ".content-corpus", args.content)
    out["content"] = digest_files(Engine(policy), content).out()
    if DATASETS.is_dir():
        for folder in sorted(p for p in DATASETS.iterdir() if p.is_dir()):
            files = sorted(folder.rglob("*.json"))
            out[f"datasets/{folder.name}"] = digest_files(Engine(), files).out()
    else:  # said, not skipped silently: a digest without them checks less
        out["datasets"] = f"not found at {DATASETS} (set SENTRAIL_SHARED)"
    out["decisions"] = digest_decisions()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
