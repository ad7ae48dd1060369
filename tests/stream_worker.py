"""A consumer process for the crash test: ``python tests/stream_worker.py CONFIG [--crash-after N]``.

With ``--crash-after N`` it dies (``os._exit``) after the N-th batch's features are written and before the
batch is acknowledged: the worst moment for losing or double-counting events.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from creditops.config import load_config
from feast_repo.stream import run


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--crash-after", type=int, default=0)
    args = parser.parse_args()
    settings = load_config(args.config).resolved()
    seen = {"batches": 0}

    def on_batch(outcome, messages):
        seen["batches"] += 1
        if args.crash_after and seen["batches"] >= args.crash_after:
            sys.stdout.write(json.dumps({"crashed_after_batches": seen["batches"]}) + "\n")
            sys.stdout.flush()
            os._exit(17)

    stats = asyncio.run(run(settings, stop_when_idle=True, on_batch=on_batch))
    sys.stdout.write(
        json.dumps(
            {k: getattr(stats, k) for k in ("events", "applied", "duplicates", "expired", "dead_lettered")}
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
