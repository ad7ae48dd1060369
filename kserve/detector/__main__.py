"""Entry point: ``PYTHONPATH=kserve python -m detector --bundle DIR [--backend scipy|alibi-detect]``."""

from __future__ import annotations

import argparse

import kserve
from detector.backends import BACKENDS
from detector.model import DriftDetector
from kserve import model_server

parser = argparse.ArgumentParser(parents=[model_server.parser], description=__doc__)
parser.add_argument(
    "--bundle", required=True, help="model bundle directory; reference.parquet is the reference"
)
parser.add_argument("--backend", choices=sorted(BACKENDS), default="scipy", help="KS backend")
parser.add_argument("--alpha", type=float, default=0.05, help="significance level after correction")
parser.add_argument("--correction", choices=["bonferroni", "fdr_bh"], default="bonferroni")
parser.add_argument("--bins", type=int, default=10, help="quantile bins for PSI")
parser.add_argument("--min-rows", type=int, default=2, help="smallest batch tested (fewer rows: 400)")

if __name__ == "__main__":
    args, _ = parser.parse_known_args()
    detector = DriftDetector(
        args.model_name,
        args.bundle,
        backend=args.backend,
        alpha=args.alpha,
        correction=args.correction,
        bins=args.bins,
        min_rows=args.min_rows,
    )
    detector.load()
    kserve.ModelServer().start([detector])
