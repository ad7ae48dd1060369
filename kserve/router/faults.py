"""TEST-ONLY: the real predictor with injected faults (bad challengers for rollout tests and the bench).

``python -m router.faults --error-rate 0.3 --delay-ms 50 -- <predictor arguments>`` starts the unchanged
``python -m predictor`` with an ASGI middleware in front of its scoring routes that answers a share of them
with a 500 (before the model runs, so nothing is audited) and/or delays each one. It sits where the
predictor's own handlers start (inside authentication and metrics, ahead of both the V1 fast path and
kserve's app), so its refusals are counted like the predictor's. Nothing in the predictor
itself can inject faults; this module is never used by the CLI, the images or the manifests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
from typing import Any


class FaultInjector:
    """ASGI middleware failing ``error_rate`` of the scoring requests and delaying each by ``delay_ms``."""

    def __init__(self, app: Any, error_rate: float = 0.0, delay_ms: float = 0.0, seed: int = 0) -> None:
        self.app, self.error_rate, self.delay_s = app, error_rate, delay_ms / 1000.0
        self.rng = random.Random(seed)  # nosec B311  # seeded fault injection, not security

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Fail or delay a scoring request; pass everything else through."""
        path = scope.get("path", "")
        if scope.get("type") != "http" or not (path.endswith(":predict") or path.endswith("/infer")):
            await self.app(scope, receive, send)
            return
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.rng.random() < self.error_rate:
            body = json.dumps({"error": "injected fault (router.faults, test only)"}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def main(argv: list[str] | None = None) -> int:
    """Parse the fault options, install the middleware on kserve's app, run the predictor's main."""
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser(prog="python -m router.faults", description="TEST ONLY")
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv[:split])
    rest = argv[split + 1 :]
    # as in predictor.__main__: a one-process server must not inherit a parent's multiprocess metrics dir
    for var in ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR", "prometheus_multiproc_dir"):
        os.environ.pop(var, None)
    from predictor import server
    from predictor.__main__ import main as predictor_main

    handlers = server.V1Predict

    def faulty_handlers(*handler_args: Any) -> FaultInjector:
        inner = handlers(*handler_args)
        return FaultInjector(inner, error_rate=args.error_rate, delay_ms=args.delay_ms, seed=args.seed)

    server.V1Predict = faulty_handlers  # type: ignore[assignment,misc]  # test-only wrapping of one process
    sys.argv = [sys.argv[0], *rest]  # kserve's own parser reads sys.argv
    return predictor_main(rest)


if __name__ == "__main__":
    sys.exit(main())
