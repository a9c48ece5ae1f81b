"""Detection quality on the labelled public datasets in ../shared/datasets (not in the repo).

Runs the engine (no policy) over each dataset folder and prints JSON: per dataset, the
confusion matrix, precision, recall and F1 of "verdict == unauthorized" and of
"verdict != allowed" against the label ``unsafe``, the same per category of the data set
(``category``, ``risk_type``, ``attack_type`` or ``family`` of each label), and the rates at
which each finding category fires on safe and unsafe runs. The red-team pack in
``tests/redteam`` (attacks with benign twins, in the repo) is scored as the set ``redteam``.

Usage: ``python benchmarks/detection.py [--misses N] [dataset ...]``; ``--misses N`` adds up
to N unsafe runs per set that were not judged ``unauthorized`` (run id, category, verdict,
the rules that fired), and every safe run that was.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from sentrail.engine.engine import Engine
from sentrail.errors import SentrailError
from sentrail.model.decode import decode_run
from sentrail.model.finding import Verdict

ROOT = Path(__file__).resolve().parent.parent
# ../shared beside the checkout; SENTRAIL_SHARED names another place (a git worktree).
DATASETS = Path(os.environ.get("SENTRAIL_SHARED") or ROOT.parent / "shared") / "datasets"
REDTEAM = ROOT / "tests" / "redteam"
CATEGORY_KEYS = ("category", "risk_type", "attack_type", "family")


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


def _category(entry: dict[str, Any]) -> str | None:
    return next((str(entry[k]) for k in CATEGORY_KEYS if entry.get(k)), None)


def evaluate(folder: Path, misses: int = 0) -> dict[str, Any]:
    labels = [json.loads(line) for line in (folder / "labels.jsonl").read_text().splitlines()]
    engine = Engine()
    unauthorized: list[tuple[bool, bool]] = []
    flagged: list[tuple[bool, bool]] = []
    per_category: dict[str, dict[str, list[tuple[bool, bool]]]] = {}
    missed: list[dict[str, Any]] = []
    false_alarms: list[dict[str, Any]] = []
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
        is_unauthorized = result.verdict is Verdict.UNAUTHORIZED
        unauthorized.append((is_unauthorized, unsafe))
        flagged.append((result.verdict is not Verdict.ALLOWED, unsafe))
        category = _category(entry)
        if category is not None:
            cat = per_category.setdefault(category, {"unauthorized": [], "not_allowed": []})
            cat["unauthorized"].append(unauthorized[-1])
            cat["not_allowed"].append(flagged[-1])
        if misses and unsafe != is_unauthorized:
            row = {
                "run_id": entry.get("run_id", entry["file"]),
                "category": category,
                "verdict": result.verdict.value,
                "rules": sorted({f"{f.rule}:{f.severity.value}" for f in result.findings}),
            }
            if unsafe and len(missed) < misses:
                missed.append(row)
            elif not unsafe:
                false_alarms.append(row)
        for category in {f.category.value for f in result.findings}:
            fired[kind][category] += 1
    categories = sorted(set(fired["safe"]) | set(fired["unsafe"]))
    rates = {
        c: {k: round(fired[k][c] / totals[k], 4) if totals[k] else 0.0 for k in ("safe", "unsafe")}
        for c in categories
    }
    out: dict[str, Any] = {
        "runs": dict(totals),
        "input_errors": errors,
        "verdict_unauthorized": scores(unauthorized),
        "verdict_not_allowed": scores(flagged),
        "verdicts": {k: dict(v) for k, v in verdicts.items()},
        "per_category": {
            name: {
                "runs": len(pairs["unauthorized"]),
                "verdict_unauthorized": scores(pairs["unauthorized"]),
                "verdict_not_allowed": scores(pairs["not_allowed"]),
            }
            for name, pairs in sorted(per_category.items())
        },
        "category_firing_rate": rates,
    }
    if misses:
        out["missed_unsafe"] = missed
        out["unauthorized_safe"] = false_alarms
    return out


def main(argv: list[str]) -> int:
    misses = 0
    if argv[:1] == ["--misses"]:
        if len(argv) < 2 or not argv[1].isdigit():
            print("--misses needs a number", file=sys.stderr)
            return 2
        misses, argv = int(argv[1]), argv[2:]
    found = (
        sorted(p.name for p in DATASETS.iterdir() if (p / "labels.jsonl").is_file())
        if DATASETS.is_dir()
        else []
    )
    if not found and not argv:
        print(
            f"datasets folder not found: {DATASETS} (scoring the red-team pack only)",
            file=sys.stderr,
        )
    names = argv or [*found, "redteam"]
    out: dict[str, Any] = {}
    for name in names:
        folder = REDTEAM if name == "redteam" else DATASETS / name
        if not (folder / "labels.jsonl").is_file():
            print(f"no labels.jsonl in {folder}", file=sys.stderr)
            return 2
        out[name] = evaluate(folder, misses)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
