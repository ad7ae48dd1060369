"""Serving benchmark: live predictor (Feast on Redis, audit log on Postgres), plus batch scoring.

(a) sequential single requests by applicant id (keep-alive raw-socket client), p50/p99 after warm-up;
(b) throughput: 16 concurrent clients (asyncio + httpx, in a separate process) for 30 s; errors; audit rows
    written during the run == rows answered;
(c) batch scoring rows/min through ``creditops.batch.score_file`` with reason codes.

Usage: ``.venv/bin/python bench/serving.py [--quick]``. Needs Postgres (127.0.0.1:5432, user postgres) and
Redis (127.0.0.1:6379); uses a throwaway database, Feast project and temp dir, removed at the end.
The last line printed is one JSON object with every metric.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "kserve"))

PG_ADMIN = os.environ.get("CREDITOPS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("CREDITOPS_BENCH_REDIS", "127.0.0.1:6379")
MODEL = "credit"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _summary(latencies: list[float], rows: int, errors: dict[str, int], elapsed: float) -> dict:
    return {
        "requests": len(latencies),
        "ok_rows": rows,
        "errors": errors,
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(latencies, 50) * 1e3,
        "p99_ms": pct(latencies, 99) * 1e3,
    }


# ---------------------------------------------------------------------------------------------- load client
async def _load(url: str, ids: list[int], concurrency: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    rows = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def worker(seed: int) -> None:
            nonlocal rows
            rnd = random.Random(seed)
            while time.perf_counter() < deadline:
                body = {"instances": [{"applicant_id": rnd.choice(ids)}]}
                t = time.perf_counter()
                try:
                    r = await client.post(url, json=body)
                    code = str(r.status_code)
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                latencies.append(time.perf_counter() - t)
                if code == "200":
                    rows += 1
                else:
                    errors[code] = errors.get(code, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - start
    return _summary(latencies, rows, errors, elapsed)


async def _load_raw(url: str, ids: list[int], concurrency: int, seconds: float) -> dict:
    """Same load as :func:`_load` over plain keep-alive sockets (wrk-like: far less client CPU than httpx)."""
    parts = urlsplit(url)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        "Content-Length: {n}\r\n\r\n"
    )
    latencies: list[float] = []
    errors: dict[str, int] = {}
    rows = 0
    deadline = time.perf_counter() + seconds

    async def worker(seed: int) -> None:
        nonlocal rows
        rnd = random.Random(seed)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while time.perf_counter() < deadline:
                body = b'{"instances":[{"applicant_id":%d}]}' % rnd.choice(ids)
                t = time.perf_counter()
                writer.write(head.format(n=len(body)).encode() + body)
                status = (await reader.readline()).split(b" ", 2)[1].decode()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t)
                if status == "200":
                    rows += 1
                else:
                    errors[status] = errors.get(status, 0) + 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - start
    return _summary(latencies, rows, errors, elapsed)


def load_client_main(args: argparse.Namespace) -> int:
    ids = json.loads(Path(args.ids_file).read_text())
    load = _load if args.client == "httpx" else _load_raw
    print(json.dumps(asyncio.run(load(args.load_client, ids, args.concurrency, args.seconds))))
    return 0


# -------------------------------------------------------------------------------------------------- benchmark
class RawClient:
    """Blocking keep-alive HTTP/1.1 client over one socket (TCP_NODELAY): the client costs microseconds, so
    the latency measured is the server's (httpx spends ~1 ms of its own per POST on this machine)."""

    def __init__(self, base: str):
        parts = urlsplit(base)
        self.sock = socket.create_connection((parts.hostname, parts.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")
        self.host = parts.netloc

    def post(self, path: str, body: bytes) -> int:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.sock.sendall(head.encode() + body)
        status = int(self.reader.readline().split(b" ", 2)[1])
        length = 0
        while (line := self.reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        self.reader.read(length)
        return status

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def sequential(base: str, ids: list[int], n: int, warmup: int, client: str) -> dict:
    path = f"/v1/models/{MODEL}:predict"
    rnd = random.Random(1)
    lat: list[float] = []
    bad = 0
    raw = RawClient(base) if client == "raw" else None
    with httpx.Client(timeout=30) as hx:
        for i in range(warmup + n):
            applicant = rnd.choice(ids)
            t = time.perf_counter()
            if raw is not None:
                status = raw.post(path, b'{"instances":[{"applicant_id":%d}]}' % applicant)
            else:
                status = hx.post(base + path, json={"instances": [{"applicant_id": applicant}]}).status_code
            dt = time.perf_counter() - t
            bad += status != 200
            if i >= warmup:
                lat.append(dt)
    if raw is not None:
        raw.close()
    return {
        "n": n,
        "errors": bad,
        "p50_ms": pct(lat, 50) * 1e3,
        "p99_ms": pct(lat, 99) * 1e3,
        "mean_ms": statistics.fmean(lat) * 1e3,
        "answered": warmup + n - bad,
    }


def batch(bundle_dir: Path, tmp: Path, rows: int) -> dict:
    from creditops.artifact import load_bundle
    from creditops.batch import score_file
    from predictor.testing import random_features

    src = tmp / "batch_in.parquet"
    frame = random_features(rows, seed=3)
    frame.insert(0, "applicant_id", np.arange(rows, dtype=np.int64))
    frame.to_parquet(src, index=False)
    bundle = load_bundle(bundle_dir)
    score_file(bundle, src, tmp / "warm.parquet", chunk_rows=50_000, progress=False)  # JIT + caches
    result = score_file(bundle, src, tmp / "batch_out.parquet", chunk_rows=100_000, progress=False)
    return {
        "rows": result.rows_in,
        "rows_scored": result.rows_scored,
        "seconds": result.seconds,
        "rows_per_min": result.rows_per_minute,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--applicants", type=int, default=10_000)
    p.add_argument("--trees", type=int, default=300)
    p.add_argument("--depth", type=int, default=5)
    p.add_argument("--sequential", type=int, default=2_000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--batch-rows", type=int, default=1_000_000)
    p.add_argument(
        "--async-commit",
        action="store_true",
        help="audit connection with synchronous_commit=off (commit without waiting for the WAL flush)",
    )
    p.add_argument("--skip-batch", action="store_true")
    p.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="client of (a) and (b): raw keep-alive sockets (wrk-like, low client CPU) or httpx",
    )
    p.add_argument("--load-client", help=argparse.SUPPRESS)
    p.add_argument("--ids-file", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.load_client:
        return load_client_main(args)
    if args.quick:
        args.applicants, args.sequential, args.warmup, args.seconds = 500, 300, 50, 5.0
        args.batch_rows = min(args.batch_rows, 100_000)

    import psycopg

    from creditops.governance.audit import AuditLog
    from feast_repo import store as feast_store
    from feast_repo.store import REPO_PATH
    from predictor.testing import feast_world, running_server, tiny_bundle

    run = uuid.uuid4().hex[:8]
    db = f"creditops_bench_{run}"
    project = f"creditops_bench_{run}"
    out: dict = {"setup": {"applicants": args.applicants, "trees": args.trees, "depth": args.depth}}
    with (
        tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp_str,
        psycopg.connect(PG_ADMIN, autocommit=True) as admin,
    ):
        tmp = Path(tmp_str)
        admin.execute(f'CREATE DATABASE "{db}"')
        audit_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{db}"
        if args.async_commit:
            audit_url += "?options=-c%20synchronous_commit%3Doff"
        env = None
        try:
            t = time.perf_counter()
            bundle_dir = tiny_bundle(tmp / "bundle", n_rows=5000, n_trees=args.trees, max_depth=args.depth)
            env, frame = feast_world(tmp / "feast", project, REDIS, n_applicants=args.applicants)
            out["setup"]["seconds"] = time.perf_counter() - t
            ids = [int(i) for i in frame["applicant_id"]]
            ids_file = tmp / "ids.json"
            ids_file.write_text(json.dumps(ids))
            server_args = [
                "--bundle",
                str(bundle_dir),
                "--feast-repo",
                str(REPO_PATH),
                "--audit-url",
                audit_url,
            ]
            with running_server(server_args, env=env, model_name=MODEL) as base:
                log = AuditLog.open(audit_url)
                a0 = log.count()
                out["sequential"] = sequential(base, ids, args.sequential, args.warmup, args.client)
                a1 = log.count()
                out["sequential"]["audit_rows"] = a1 - a0
                cmd = [sys.executable, __file__, "--load-client", f"{base}/v1/models/{MODEL}:predict"]
                cmd += ["--ids-file", str(ids_file), "--concurrency", str(args.concurrency)]
                cmd += ["--seconds", str(args.seconds), "--client", args.client]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
                out["concurrent"] = json.loads(proc.stdout.strip().splitlines()[-1])
                a2 = log.count()
                out["concurrent"]["audit_rows"] = a2 - a1
                out["concurrent"]["audit_matches"] = (a2 - a1) == out["concurrent"]["ok_rows"]
                out["audit_chain_ok"] = log.verify().ok
                out["audit_records"] = a2
            skipped = {"rows": 0, "rows_per_min": float("nan")}
            out["batch"] = skipped if args.skip_batch else batch(bundle_dir, tmp, args.batch_rows)
        finally:
            if env is not None:
                try:
                    feast_store.teardown(feast_store.open_store(REPO_PATH, env=env))
                except Exception as exc:  # noqa: BLE001 - cleanup must not hide the results
                    print(f"feast teardown failed: {exc}", file=sys.stderr)
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    seq, conc, bat = out["sequential"], out["concurrent"], out["batch"]
    print(
        f"(a) sequential by id: p50 {seq['p50_ms']:.2f} ms  p99 {seq['p99_ms']:.2f} ms  (target p99 < 5 ms)"
    )
    print(
        f"(b) {args.concurrency} clients x {conc['seconds']:.0f} s: {conc['rps']:.0f} req/s "
        f"(target >= 500), errors {conc['errors']}, "
        f"audit rows {conc['audit_rows']} == answered {conc['ok_rows']}: {conc['audit_matches']}"
    )
    print(f"(c) batch score_file: {bat['rows_per_min']:,.0f} rows/min  (target >= 1,000,000)")
    summary = {
        "seq_p50_ms": round(seq["p50_ms"], 3),
        "seq_p99_ms": round(seq["p99_ms"], 3),
        "seq_errors": seq["errors"],
        "conc_rps": round(conc["rps"], 1),
        "client": args.client,
        "conc_p50_ms": round(conc["p50_ms"], 3),
        "conc_p99_ms": round(conc["p99_ms"], 3),
        "conc_errors": sum(conc["errors"].values()),
        "conc_audit_rows": conc["audit_rows"],
        "conc_ok_rows": conc["ok_rows"],
        "audit_matches": conc["audit_matches"],
        "audit_chain_ok": out["audit_chain_ok"],
        "batch_rows_per_min": None if args.skip_batch else round(bat["rows_per_min"]),
        "audit_synchronous_commit": "off" if args.async_commit else "on",
        "batch_rows": bat["rows"],
        **{f"setup_{k}": v for k, v in out["setup"].items()},
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
