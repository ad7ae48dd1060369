"""``python -m predictor``: parse the arguments, then serve (:mod:`predictor.server`)."""

from __future__ import annotations

import argparse
import functools
import os
import sys

# Importing Feast (its metrics module) exports PROMETHEUS_MULTIPROC(ESS)_DIR into its process's environment,
# so a server started by such a process (the CLI, the tests) would inherit it and keep every metric in mmap
# files of the parent's temp dir, behind a lock and a pid check per update. Each worker keeps its metrics in
# process: drop them before prometheus_client is imported (it picks its value class once, at import).
for _var in ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR", "prometheus_multiproc_dir"):
    os.environ.pop(_var, None)

from predictor.model import DEFAULT_MAX_BATCH, CreditPredictor  # noqa: E402
from predictor.server import ServerOptions, serve  # noqa: E402


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
    p.add_argument(
        "--audit-anchor", default=None, help="append-only file checkpointing every audit chain head"
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    p.add_argument("--http-port", type=int, default=8080, help="HTTP port")
    p.add_argument("--workers", type=int, default=1, help="server processes sharing the port")
    p.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="most rows per request")
    p.add_argument(
        "--auth",
        required=True,
        choices=["anonymous", "api_key", "jwt"],
        help="caller authentication (anonymous must be chosen explicitly)",
    )
    p.add_argument("--api-key-hashes", default=None, help="file of '<caller id> <sha256 of key>' lines")
    p.add_argument("--jwt-key-file", default=None, help="HMAC secret or PEM public key verifying JWTs")
    p.add_argument("--jwt-algorithm", action="append", default=None, help="accepted JWT algorithm (repeat)")
    p.add_argument("--jwt-audience", default=None, help="required JWT 'aud' claim")
    p.add_argument("--jwt-issuer", default=None, help="required JWT 'iss' claim")
    p.add_argument(
        "--repository-api",
        action="store_true",
        help="serve /v2/repository load/unload to authenticated callers (off by default)",
    )
    # kserve's own module-level parser also reads sys.argv; ignore what belongs to it.
    args, _ = p.parse_known_args(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    factory = functools.partial(
        CreditPredictor,
        args.model_name,
        bundle_dir=args.bundle,
        model_uri=args.model_uri,
        tracking_uri=args.tracking_uri,
        feast_repo=args.feast_repo,
        feature_service=args.feature_service,
        audit_url=args.audit_url,
        audit_anchor=args.audit_anchor,
        max_batch=args.max_batch,
    )
    options = ServerOptions(
        host=args.host,
        http_port=args.http_port,
        workers=args.workers,
        auth_mode=args.auth,
        api_key_hashes_file=args.api_key_hashes,
        jwt_key_file=args.jwt_key_file,
        jwt_algorithms=tuple(args.jwt_algorithm or ["RS256"]),
        jwt_audience=args.jwt_audience,
        jwt_issuer=args.jwt_issuer,
        repository_api=args.repository_api,
    )
    return serve(factory, options)


if __name__ == "__main__":
    sys.exit(main())
