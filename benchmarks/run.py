"""`make bench`: throughput against a raw-parse baseline measured in the same run, and the
peak memory of `trace analyze --batch` over a quarter of and all of 75,000 traces (1.0 GB).
Prints one JSON object (fields in docs/performance.md). No figure here is asserted by a
test; machines are shared and noisy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).parent))
from corpus import ensure_corpus
from sentrail import _native
from sentrail.detect.content_instructions import clear_caches
from sentrail.engine.config import EngineConfig
from sentrail.engine.engine import Engine
from sentrail.model.decode import decode_run
from sentrail.model.trace import Run
from sentrail.policy.compiled import Policy
from sentrail.policy.load import load_policy
from sentrail.runtime.batch import run_batch

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "benchmarks" / ".corpus"
POLICY = ROOT / "examples" / "policy.yaml"
N_THROUGHPUT = int(os.environ.get("BENCH_TRACES", "10000"))
# About 1 GB of trace files (13.4 KB each): the "1 GB directory with flat memory".
N_MEMORY = int(os.environ.get("BENCH_MEMORY_TRACES", "75000"))


def best_of(fn: object, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return min(times)


def batch_peak(files: list[Path]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Peak RSS (MB) and seconds of `sentrail trace analyze --batch` over ``files`` (linked
    into one folder), measured in a fresh process: the children of this one (the 2-job
    batch above) were forked from a process holding the corpus in memory, and
    ``RUSAGE_CHILDREN`` reports the largest descendant ever waited for."""
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            (Path(tmp) / f.name).symlink_to(f.resolve())
        cmd = [
            str(Path(sys.executable).parent / "sentrail"),
            *("trace", "analyze", tmp, "--batch", "--output", os.devnull, "--fail-on", "never"),
            *(["--policy", str(POLICY)] if POLICY.exists() else []),
        ]
        probe = (
            "import json, resource, subprocess, sys, time\n"
            "t0 = time.perf_counter()\n"
            "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
            "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
            "print(json.dumps([rss, time.perf_counter() - t0, p.returncode, p.stderr[-2000:]]))\n"
        )
        out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True)
        rss_kb, seconds, code, stderr = json.loads(out.stdout)
    proc = subprocess.CompletedProcess(cmd, code, "", stderr)
    return round(rss_kb / 1024, 1), seconds, proc


def main() -> None:
    paths = ensure_corpus(CORPUS, max(N_THROUGHPUT, N_MEMORY))
    sample = paths[:N_THROUGHPUT]
    blobs = [p.read_bytes() for p in sample]
    steps = sum(len(decode_run(b).steps) for b in blobs)
    decoder = msgspec.json.Decoder(Run)
    policy = Policy(load_policy(POLICY)) if POLICY.exists() else Policy()

    def raw() -> None:
        for b in blobs:
            decoder.decode(b)

    def analyze() -> None:
        clear_caches()  # every pass cold: no verdicts remembered from the one before
        engine = Engine(policy)
        for b in blobs:
            engine.analyze(decode_run(b))

    def fold_only() -> None:  # decoding and the fold with no detector: the floor below them
        engine = Engine(policy, detectors=())
        for b in blobs:
            engine.analyze(decode_run(b))

    raw_s = best_of(raw)
    analyze_s = best_of(analyze, repeat=2)
    floor_s = best_of(fold_only, repeat=2)
    config = EngineConfig(policy_path=str(POLICY) if POLICY.exists() else None)
    t0 = time.perf_counter()
    n = sum(1 for _ in run_batch([str(p) for p in sample], config, jobs=2))
    batch_s = time.perf_counter() - t0
    assert n == len(sample)

    # Peak memory of `trace analyze --batch` on a quarter of the directory and on all of
    # it: flat when the two agree.
    whole = paths[:N_MEMORY]
    quarter_rss, _, _ = batch_peak(whole[: len(whole) // 4])
    peak_rss, mem_s, proc = batch_peak(whole)
    figures = {
        "build": _native.running(),  # compiled (make) or pure Python (SENTRAIL_PURE=1)
        "traces": len(sample),
        "steps": steps,
        "raw_parse_steps_per_s": round(steps / raw_s),
        "analyze_steps_per_s": round(steps / analyze_s),
        "ratio": round((steps / analyze_s) / (steps / raw_s), 4),
        # What the detectors leave: decode_run and the fold with none of them.
        "no_detectors_steps_per_s": round(steps / floor_s),
        "no_detectors_ratio": round(raw_s / floor_s, 4),
        "batch_jobs2_steps_per_s": round(steps / batch_s),
        "memory_batch_traces": len(whole),
        "memory_batch_bytes": sum(p.stat().st_size for p in whole),
        "memory_batch_exit_code": proc.returncode,
        "memory_batch_seconds": round(mem_s, 1),
        "peak_rss_mb_quarter": quarter_rss,
        "peak_rss_mb": peak_rss,
        "targets": {
            "analyze_steps_per_s": 100_000,
            "ratio": 0.1,
            "peak_rss_mb": "flat (equal to peak_rss_mb_quarter)",
        },
    }
    print(json.dumps(figures, indent=2))
    if proc.returncode not in (0, 1):
        print(proc.stderr[-2000:], file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
