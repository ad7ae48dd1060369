"""Audit commits per request on the live predictor under concurrent clients, with and without group commit.

For each setting the predictor serves raw-feature requests (one row each) from ``--clients`` concurrent
asyncio clients (a separate process) for ``--seconds``, audited on a fresh Postgres database with an anchor
file. Commits are counted in the database itself: rows written by one transaction share its ``xmin``.
``--audit-max-batch 1`` makes every request commit alone (no group commit: the "before").

Usage: ``.venv/bin/python bench/audit_commits.py [--clients 16] [--seconds 8] [--workers 1]``.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "kserve"))

from creditops.governance.audit import TABLE, AuditLog  # noqa: E402
from creditops.serve_local import free_port, running_process  # noqa: E402
from predictor.testing import random_features, tiny_bundle  # noqa: E402

PG_ADMIN = os.environ.get("CREDITOPS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
MODEL = "credit"


async def _load(url: str, bodies: list[bytes], clients: int, seconds: float) -> dict:
    ok = errors = 0
    stop = time.monotonic() + seconds
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one(k: int) -> None:
            nonlocal ok, errors
            i = k
            while time.monotonic() < stop:
                i += clients
                r = await client.post(url, content=bodies[i % len(bodies)], headers=headers)
                ok, errors = (ok + 1, errors) if r.status_code == 200 else (ok, errors + 1)

        await asyncio.gather(*(one(k) for k in range(clients)))
    return {"ok": ok, "errors": errors, "rps": ok / seconds}


def load_client(url: str, clients: int, seconds: float) -> None:
    """Run as a subprocess: print the load result as JSON."""
    rows = json.loads(random_features(200, seed=9).to_json(orient="records"))
    bodies = [json.dumps({"instances": [r]}).encode() for r in rows]
    print(json.dumps(asyncio.run(_load(url, bodies, clients, seconds))))


def run_one(bundle: Path, tmp: Path, max_batch: int, args: argparse.Namespace) -> dict:
    db = f"creditops_bench_commits_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{db}"
        try:
            port = free_port()
            anchor = tmp / f"anchor-{max_batch}"
            cmd = [
                sys.executable, "-m", "predictor", "--bundle", str(bundle), "--model-name", MODEL,
                "--audit-url", url, "--audit-anchor", str(anchor), "--http-port", str(port),
                "--auth", "anonymous", "--workers", str(args.workers), "--audit-max-batch", str(max_batch),
            ]  # fmt: skip
            env = {**os.environ, "PYTHONPATH": str(ROOT / "kserve")}
            base = f"http://127.0.0.1:{port}"
            with running_process(cmd, env, f"{base}/v2/health/ready", tmp / f"log-{max_batch}", 180):
                time.sleep(2 if args.workers == 1 else 25)  # every worker up
                client = [sys.executable, __file__, "--load-client", f"{base}/v1/models/{MODEL}:predict"]
                client += ["--clients", str(args.clients), "--seconds", str(args.seconds)]
                done = subprocess.run(client, capture_output=True, text=True, check=True)
                result = json.loads(done.stdout.strip().splitlines()[-1])
            with psycopg.connect(url) as conn:
                rows, commits = conn.execute(
                    f"SELECT count(*), count(DISTINCT xmin::text) FROM {TABLE}"
                ).fetchone()
            report = AuditLog.open(url, create=False).verify(anchor_path=anchor)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    return {
        "audit_max_batch": max_batch,
        "requests_ok": result["ok"],
        "errors": result["errors"],
        "rps": round(result["rps"], 1),
        "audit_rows": rows,
        "commits": commits,
        "commits_per_request": round(commits / max(rows, 1), 4),
        "audit_rows_match": rows == result["ok"],
        "verified": report.ok,
    }


def main() -> int:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=16, help="concurrent clients")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds of load per setting")
    p.add_argument("--workers", type=int, default=1, help="predictor worker processes")
    p.add_argument("--load-client", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.load_client:
        load_client(args.load_client, args.clients, args.seconds)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-commits-") as tmp_str:
        tmp = Path(tmp_str)
        bundle = tiny_bundle(tmp / "bundle", n_trees=30)
        before = run_one(bundle, tmp, 1, args)
        after = run_one(bundle, tmp, 5000, args)
    for name, r in (("one commit per request", before), ("group commit", after)):
        print(
            f"{name:>24}: {r['requests_ok']} answers at {r['rps']} req/s, {r['commits']} commits "
            f"= {r['commits_per_request']} per request; audit rows match: {r['audit_rows_match']}, "
            f"verified: {r['verified']}, errors {r['errors']}"
        )
    print(json.dumps({"clients": args.clients, "workers": args.workers, "before": before, "after": after}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
