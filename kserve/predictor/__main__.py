"""``python -m predictor``: parse the arguments, load the model, start kserve's ModelServer."""

from __future__ import annotations

import argparse
import os
import sys

# Importing Feast (its metrics module) exports PROMETHEUS_MULTIPROC(ESS)_DIR into its process's environment,
# so a server started by such a process (the CLI, the tests) would inherit it and keep every metric in mmap
# files of the parent's temp dir, behind a lock and a pid check per update. This server is one process:
# drop them before prometheus_client is imported (it picks its value class once, at import).
for _var in ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR", "prometheus_multiproc_dir"):
    os.environ.pop(_var, None)

from creditops.errors import CreditOpsError  # noqa: E402
from predictor.model import DEFAULT_MAX_BATCH, CreditPredictor  # noqa: E402
from predictor.server import serve  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The predictor's command line."""
    p = argparse.ArgumentParser(prog="python -m predictor", description="creditops KServe predictor")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--bundle", help="model bundle directory")
    src.add_argument("--model-uri", help="registered model, models:/<name>@<alias>")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (with --model-uri)")
    p.add_argument("--model-name", default="credit-model", help="name on the endpoint paths")
    p.add_argument(
        "--feast-repo", default=None, help="Feast repo (without it only raw features are accepted)"
    )
    p.add_argument(
        "--feature-service",
        default=None,
        help="FeatureService this endpoint serves (default: the one the model was trained on)",
    )
    p.add_argument("--audit-url", required=True, help="audit log: sqlite:///path or postgresql://...")
    p.add_argument("--http-port", type=int, default=8080)
    p.add_argument("--grpc-port", type=int, default=0, help="0 = no gRPC server")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH)
    # kserve's own module-level parser also reads sys.argv; ignore what belongs to it.
    args, _ = p.parse_known_args(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    model = CreditPredictor(
        args.model_name,
        bundle_dir=args.bundle,
        model_uri=args.model_uri,
        tracking_uri=args.tracking_uri,
        feast_repo=args.feast_repo,
        feature_service=args.feature_service,
        audit_url=args.audit_url,
        max_batch=args.max_batch,
    )
    try:
        model.load()
    except CreditOpsError as exc:
        print(f"predictor: cannot load the model: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a backend (audit database, online store, registry) is unreachable
        print(f"predictor: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    serve(model, args.http_port, workers=args.workers, grpc_port=args.grpc_port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
