"""Instructions per trace under callgrind: repeatable whatever the machine's load.

Analyses the first N traces of a corpus (``decode_run`` + ``Engine.analyze``, the example
policy) in one process; run it twice under ``valgrind --tool=callgrind`` with two values of
N and divide the difference of the two totals by the difference of N, so that start-up
(imports, the policy, the corpus check) cancels out. ``--warm`` first analyses traces 300
to 599 of the content corpus in the same process, so RE2's DFA caches hold their states
(the content corpus has 600 traces; measure with N of at most 300).

    for n in 20 220; do valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$n \\
        .venv/bin/python benchmarks/instructions.py synthetic $n 2>&1 | grep refs; done

``synthetic`` is ``corpus.py`` (seed 7, ~20 small steps a trace), ``content`` is
``content_corpus.py`` (seed 14, ~8 steps and 15 KB a trace); both are generated once under
``benchmarks/`` and reused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from content_corpus import ensure_content_corpus
from corpus import ensure_corpus
from sentrail.engine.engine import Engine
from sentrail.model.decode import decode_run
from sentrail.policy.compiled import Policy
from sentrail.policy.load import load_policy

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", choices=["synthetic", "content"])
    parser.add_argument("traces", type=int)
    parser.add_argument("--warm", action="store_true", help="content traces 300-599 first")
    args = parser.parse_args()
    content = ensure_content_corpus(ROOT / "benchmarks" / ".content-corpus", 600)
    if args.corpus == "synthetic":
        paths = ensure_corpus(ROOT / "benchmarks" / ".corpus", 10_000)[: args.traces]
    else:
        paths = content[: args.traces]
    blobs = [p.read_bytes() for p in paths]
    policy = Policy(load_policy(ROOT / "examples" / "policy.yaml"))
    if args.warm:
        warm = Engine(policy)
        for p in content[300:]:
            warm.analyze(decode_run(p.read_bytes()))
    engine = Engine(policy)
    for blob in blobs:
        engine.analyze(decode_run(blob))


if __name__ == "__main__":
    main()
