"""How long one Kubernetes canary check reads the audit log (:class:`KubeWindow`), on SQLite and Postgres.

``creditops rollout kube run`` reads every audit record of both arms since the step began at every check, so
the read time bounds how busy an endpoint a given ``check_every_s`` can follow. The audit log is filled with
``--rows`` records per arm (30 numeric inputs each, like a served application) and one window is read
``--repeat`` times; the median is reported per backend, with the rows per second it implies.

Usage: ``.venv/bin/python bench/kube_window.py [--rows 100000] [--repeat 3] [--pg postgresql://...]``
(``--pg ''`` skips Postgres; the default creates and drops a fresh database on the local server). The last
line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from creditops.deploy.kube_analysis import KubeWindow
from creditops.governance.audit import AuditLog, AuditRecord


def fill(url: str, rows: int, chunk: int = 20_000) -> float:
    """Append ``rows`` records per arm (now-ish timestamps); returns the seconds it took."""
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    with AuditLog.open(url) as audit:
        for lo in range(0, rows, chunk):
            n = min(chunk, rows - lo)
            pds = rng.beta(2, 12, size=(2, n))
            feats = rng.normal(size=(n, 30)).round(4)
            audit.append(
                AuditRecord(
                    uuid.uuid4().hex, "credit-pd", label, {"applicant_id": f"A-{lo + i}",
                    **{f"f{j}": float(v) for j, v in enumerate(feats[i])}},
                    {"pd": float(pds[a, i]), "score": 600.0}, [], "approve" if pds[a, i] < 0.12 else "review",
                    "bench",
                )
                for i in range(n)
                for a, label in enumerate(("credit-pd@1", "credit-pd@2"))
            )  # fmt: skip
    return time.perf_counter() - start


def measure(url: str, rows: int, repeat: int) -> dict[str, Any]:
    since = time.time() - 3600
    fill_s = fill(url, rows)
    source = KubeWindow(url, "credit-pd@2", "credit-pd@1")
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        canary, champion = source.window(since)
        times.append(time.perf_counter() - t0)
    assert canary.answered == champion.answered == rows, (canary.answered, champion.answered)
    median = statistics.median(times)
    return {"rows_per_arm": rows, "fill_s": round(fill_s, 2), "window_read_s": round(median, 3),
            "rows_per_s": round(2 * rows / median)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="audit records per arm in the window")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres", help="admin URL")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out["sqlite"] = measure(f"sqlite:///{Path(tmp) / 'audit.db'}", args.rows, args.repeat)
        print("sqlite", out["sqlite"], flush=True)
    if args.pg:
        name = f"creditops_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            out["postgres"] = measure(args.pg.rsplit("/", 1)[0] + f"/{name}", args.rows, args.repeat)
            print("postgres", out["postgres"], flush=True)
        finally:
            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(json.dumps(out))


if __name__ == "__main__":
    main()
