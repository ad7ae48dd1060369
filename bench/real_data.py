"""Real-data benchmark: the training pipeline on the shipped German Credit and HMDA specs, as a user runs it.

Each dataset goes through the whole pipeline (ingest with its dataset spec, validation, Feast, tuning with the
small-data objective, the final fit, both baselines on the same split, the default gates, registration), and
the result is the closing note's row: the tuned model vs logistic regression vs default XGBoost (test AUC,
Gini, KS, Brier; CV AUC mean +- sd on train + valid), the number of trees, the gate outcomes, wall time.

Usage: .venv/bin/python bench/real_data.py [--trials 100] [--datasets german_credit hmda]
Run it alone (it uses both cores). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from training import run  # noqa: E402  (bench/training.py: one pipeline run -> the numbers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--datasets", nargs="+", default=["german_credit", "hmda"])
    args = parser.parse_args()
    results = []
    for name in args.datasets:
        print(f"--- {name}", file=sys.stderr, flush=True)
        results.append(run(name, 0, args.trials))
    print(json.dumps({"benchmark": "real_data", "trials": args.trials, "results": results}))


if __name__ == "__main__":
    main()
