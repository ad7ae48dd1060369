"""Entry point: ``PYTHONPATH=kserve python -m explainer --bundle DIR [--backend treeshap|alibi]``."""

from __future__ import annotations

import argparse

import kserve
from explainer.backends import BACKENDS
from explainer.model import CreditExplainer
from kserve import model_server

parser = argparse.ArgumentParser(parents=[model_server.parser], description=__doc__)
parser.add_argument("--bundle", required=True, help="model bundle directory (model.ubj, manifest.json, ...)")
parser.add_argument("--backend", choices=sorted(BACKENDS), default="treeshap", help="contribution backend")
parser.add_argument("--top-k", type=int, default=4, help="adverse-action reasons per instance")

if __name__ == "__main__":
    args, _ = parser.parse_known_args()
    explainer = CreditExplainer(args.model_name, args.bundle, backend=args.backend, top_k=args.top_k)
    explainer.load()
    kserve.ModelServer().start([explainer])
