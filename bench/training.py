"""Training pipeline on the KFP local runner: wall time, memory, the tuned model vs its baselines, the gates.

Usage: ``python bench/training.py --applicants 20000 --trials 100`` (the demo) or ``--applicants 100000``;
``--source german_credit`` / ``hmda`` runs a shipped real dataset instead of the synthetic world (see also
``bench/real_data.py``). Each run uses a fresh work directory. Prints per-step lines (with their seconds),
the side-by-side table of the tuned model and both baselines, then, as the last line, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from creditops.config import load_config
from creditops.training.workflow import comparison_text
from pipelines.local import run_training

_STEP = re.compile(r"✔ (\S+) success in ([\d.]+) s")


def run(source: str, applicants: int, trials: int, workdir: Path | None = None) -> dict[str, Any]:
    """Run the pipeline once; return the numbers of the closing note."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix=f"creditops-bench-{source}-"))
    overrides: dict[str, Any] = {"workdir": str(workdir), "training": {"n_trials": trials}}
    overrides["data"] = {"n_applicants": applicants} if source == "synthetic" else {"source": source}
    settings = load_config(None, overrides).resolved()
    lines: list[str] = []

    def emit(line: str) -> None:
        lines.append(line)
        print(line, file=sys.stderr, flush=True)

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    summary = run_training(settings, emit=emit)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds of the step processes: comparable across runs on a shared, loaded machine (wall is not)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    steps = {m.group(1): float(m.group(2)) for m in map(_STEP.search, lines) if m}
    metrics = summary.get("metrics", {})
    print(comparison_text(summary.get("comparison", {})), file=sys.stderr)
    print(summary.get("gate_summary", ""), file=sys.stderr)
    return {
        "source": source,
        "applicants": applicants if source == "synthetic" else None,
        "trials": trials,
        "wall_s": round(wall, 1),
        "steps_s": round(sum(steps.values()), 1),
        "steps_cpu_s": round(cpu, 1),
        "step_s": steps,
        "n_trees": metrics.get("n_trees"),
        "n_train": metrics.get("n_train"),
        "compare": {
            model: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
            for model, row in summary.get("comparison", {}).items()
        },
        "gates": {g["name"]: g.get("status", "pass" if g["passed"] else "fail") for g in summary["gates"]},
        "gates_failed": [g["name"] for g in summary["gates"] if not g["passed"]],
        "gates_passed": summary.get("gates_passed"),
        "registered_version": summary.get("registered_version"),
        "best_params": summary.get("best_params"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--applicants", type=int, default=20_000)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--source", default="synthetic", choices=["synthetic", "german_credit", "hmda"])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    out = run(args.source, args.applicants, args.trials, args.workdir)
    out["peak_rss_gb_step"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2, 2)
    out["peak_rss_gb_driver"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
