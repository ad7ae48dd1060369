"""Training pipeline wall time and peak memory on the KFP local runner.

Usage: ``python bench/training.py --applicants 100000 --trials 50`` (issue targets: 100k/50 trials under
10 minutes; 500k/100 trials under 30 minutes). Each run uses a fresh work directory. Prints per-step lines,
then, as the last line, one JSON object.
"""

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from creditops.config import load_config
from pipelines.local import run_training


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--applicants", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="creditops-bench-"))
    settings = load_config(
        None,
        {
            "workdir": str(workdir),
            "data": {"n_applicants": args.applicants},
            "training": {"n_trials": args.trials},
        },
    ).resolved()
    start = time.perf_counter()
    summary = run_training(settings, emit=lambda line: print(line, file=sys.stderr))
    wall = time.perf_counter() - start
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    metrics = summary.get("metrics", {})
    print(
        json.dumps(
            {
                "applicants": args.applicants,
                "trials": args.trials,
                "wall_s": round(wall, 1),
                "peak_rss_gb_step": round(peak_children, 2),
                "peak_rss_gb_driver": round(peak_self, 2),
                "test_auc": metrics.get("test.auc"),
                "cv_auc_mean": metrics.get("cv_auc_mean"),
                "registered_version": summary.get("registered_version"),
                "gates_passed": summary.get("gates_passed"),
            }
        )
    )


if __name__ == "__main__":
    main()
