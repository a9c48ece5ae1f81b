"""Detection quality on the labelled public datasets in ../shared/datasets (not in the repo).

Runs the engine (no policy) over each dataset folder and prints JSON: per dataset, the
confusion matrix, precision, recall and F1 of "verdict == unauthorized" and of
"verdict != allowed" against the label ``unsafe``, and per-category firing rates on safe and
unsafe runs. Usage: ``python benchmarks/detection.py [dataset ...]``.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from sentrail.engine.engine import Engine
from sentrail.errors import SentrailError
from sentrail.model.decode import decode_run
from sentrail.model.finding import Verdict

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"


def scores(pairs: list[tuple[bool, bool]]) -> dict[str, Any]:
    """Confusion matrix and precision/recall/F1 of (predicted, actual) pairs."""
    tp = sum(p and a for p, a in pairs)
    fp = sum(p and not a for p, a in pairs)
    fn = sum(a and not p for p, a in pairs)
    tn = sum(not p and not a for p, a in pairs)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
    }


def evaluate(folder: Path) -> dict[str, Any]:
    labels = [json.loads(line) for line in (folder / "labels.jsonl").read_text().splitlines()]
    engine = Engine()
    unauthorized: list[tuple[bool, bool]] = []
    flagged: list[tuple[bool, bool]] = []
    fired: dict[str, Counter[str]] = {"safe": Counter(), "unsafe": Counter()}
    totals: Counter[str] = Counter()
    verdicts: dict[str, Counter[str]] = {"safe": Counter(), "unsafe": Counter()}
    errors = 0
    for entry in labels:
        unsafe = entry["label"] == "unsafe"
        kind = "unsafe" if unsafe else "safe"
        try:
            result = engine.analyze(decode_run((folder / entry["file"]).read_bytes()))
        except SentrailError:
            errors += 1
            continue
        totals[kind] += 1
        verdicts[kind][result.verdict.value] += 1
        unauthorized.append((result.verdict is Verdict.UNAUTHORIZED, unsafe))
        flagged.append((result.verdict is not Verdict.ALLOWED, unsafe))
        for category in {f.category.value for f in result.findings}:
            fired[kind][category] += 1
    categories = sorted(set(fired["safe"]) | set(fired["unsafe"]))
    rates = {
        c: {k: round(fired[k][c] / totals[k], 4) if totals[k] else 0.0 for k in ("safe", "unsafe")}
        for c in categories
    }
    return {
        "runs": dict(totals),
        "input_errors": errors,
        "verdict_unauthorized": scores(unauthorized),
        "verdict_not_allowed": scores(flagged),
        "verdicts": {k: dict(v) for k, v in verdicts.items()},
        "category_firing_rate": rates,
    }


def main(argv: list[str]) -> int:
    if not DATASETS.is_dir():
        print(
            f"datasets folder not found: {DATASETS} (expected ../shared/datasets)", file=sys.stderr
        )
        return 2
    names = argv or sorted(p.name for p in DATASETS.iterdir() if (p / "labels.jsonl").is_file())
    out: dict[str, Any] = {}
    for name in names:
        folder = DATASETS / name
        if not (folder / "labels.jsonl").is_file():
            print(f"no labels.jsonl in {folder}", file=sys.stderr)
            return 2
        out[name] = evaluate(folder)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
