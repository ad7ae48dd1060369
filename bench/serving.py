"""Serving benchmark: the creditops predictor against a stock KServe server of the same booster, same run.

creditops: the live predictor (features from Feast on Redis by applicant id, exact TreeSHAP reason codes,
every answer durably audited in Postgres), ``--workers`` processes (default: one per core).
stock: a plain ``kserve.ModelServer`` serving the same booster with ``inplace_predict`` and nothing else
(no features, no explanation, no audit; the V1 body carries the 46 feature values), like kserve's
``xgbserver``; run with 1 worker (KServe's default) and with the same number of workers as creditops.

(a) sequential single requests (keep-alive raw-socket client), p50/p99 after warm-up, both servers up and
    idle (every worker loaded), their blocks of requests interleaved so both see the same machine;
(b) throughput: 16 concurrent clients (raw keep-alive sockets, in a separate process) for 30 s, each server;
    errors; audit rows written during the run == rows answered; every chain verifies;
(c) batch scoring rows/min through ``creditops.batch.score_file`` (``creditops.serving.decide``) with reason
    codes, and its resident memory sampled during runs of two sizes (flat = the same peak for both).

Ratios against stock are printed with the targets (sequential p99 <= 1.5x stock; 16-client throughput
>= 1.0x stock with 1 worker and >= 0.8x stock with as many workers; batch >= 2,000,000 rows/min).

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
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import xgboost as xgb
from kserve.utils.utils import get_predict_input, get_predict_response

import kserve

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "kserve"))

PG_ADMIN = os.environ.get("CREDITOPS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("CREDITOPS_BENCH_REDIS", "127.0.0.1:6379")
MODEL = "credit"
STOCK = "stock"


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
async def _load(url: str, bodies: list[bytes], concurrency: int, seconds: float) -> dict:
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
                body = rnd.choice(bodies)
                t = time.perf_counter()
                try:
                    r = await client.post(url, content=body, headers={"content-type": "application/json"})
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


async def _load_raw(url: str, bodies: list[bytes], concurrency: int, seconds: float) -> dict:
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
                body = rnd.choice(bodies)
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
    bodies = [b.encode() for b in json.loads(Path(args.ids_file).read_text())]
    load = _load if args.client == "httpx" else _load_raw
    print(json.dumps(asyncio.run(load(args.load_client, bodies, args.concurrency, args.seconds))))
    return 0


# ------------------------------------------------------------------------------------------- stock server
class StockXGBoost(kserve.Model):
    """The booster with ``inplace_predict``, nothing else: kserve's ``xgbserver`` model.

    At module level, so that kserve's multi-process server can pickle it into its workers.
    """

    def __init__(self, name: str, model_file: str):
        super().__init__(name)
        self.model_file = model_file

    def load(self) -> bool:
        """Load the booster (one thread per request: xgbserver's default ``nthread=1``)."""
        self._booster = xgb.Booster(params={"nthread": 1}, model_file=self.model_file)
        self.ready = True
        return self.ready

    def predict(self, payload: Any, headers: Any = None) -> Any:
        """``inplace_predict`` of the V1/V2 instances."""
        instances = get_predict_input(payload)
        result = self._booster.inplace_predict(instances)
        return get_predict_response(payload, result, self.name)


def stock_server_main(args: argparse.Namespace) -> int:
    """A stock KServe server: the booster with ``inplace_predict`` and nothing else (like ``xgbserver``)."""
    import logging

    model = StockXGBoost(STOCK, args.stock_server)
    model.load()
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    kserve.ModelServer(
        http_port=args.http_port, workers=args.workers, enable_grpc=False, enable_latency_logging=False
    ).start([model])
    return 0


@contextmanager
def stock_server(model_file: Path, workers: int, log: Path) -> Iterator[str]:
    """Run :func:`stock_server_main` in its own process group until the block ends; yield its base URL."""
    from creditops.serve_local import free_port

    port = free_port()
    cmd = [sys.executable, __file__, "--stock-server", str(model_file), "--http-port", str(port)]
    cmd += ["--workers", str(workers)]
    base = f"http://127.0.0.1:{port}"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"stock server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/v2/models/{STOCK}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("stock server not ready in 120 s")
            time.sleep(0.3)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # kserve's multi-process server has children: stop the group
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


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


def sequential(targets: dict[str, tuple[str, str, list[bytes]]], n: int, warmup: int, rounds: int) -> dict:
    """Single requests, one at a time, to each target in turn: ``rounds`` blocks of ``n / rounds`` each.

    Interleaving the servers' blocks gives each the same share of the machine's slow and fast spells (its
    speed drifts by tens of percent from one minute to the next), so the p99 ratio compares the servers,
    not the moments they were measured in. Every target gets ``warmup`` unmeasured requests first.
    """
    rnd = random.Random(1)
    clients = {name: RawClient(base) for name, (base, _, _) in targets.items()}
    lat: dict[str, list[float]] = {name: [] for name in targets}
    bad = dict.fromkeys(targets, 0)
    per_round = max(1, n // rounds)
    try:
        for block in range(rounds + 1):  # block 0: warm-up
            for name, (_, path, bodies) in targets.items():
                for _ in range(warmup if block == 0 else per_round):
                    body = rnd.choice(bodies)
                    t = time.perf_counter()
                    status = clients[name].post(path, body)
                    dt = time.perf_counter() - t
                    bad[name] += status != 200
                    if block:
                        lat[name].append(dt)
    finally:
        for client in clients.values():
            client.close()
    return {
        name: {
            "n": len(lat[name]),
            "errors": bad[name],
            "p50_ms": pct(lat[name], 50) * 1e3,
            "p99_ms": pct(lat[name], 99) * 1e3,
            "mean_ms": statistics.fmean(lat[name]) * 1e3,
            "answered": warmup + len(lat[name]) - bad[name],
        }
        for name in targets
    }


def wait_quiet(window_s: float = 1.0, busy_s: float = 0.03, timeout_s: float = 60.0) -> float:
    """Wait until this process's children (the servers) use under ``busy_s`` CPU-seconds in ``window_s``.

    A server is ready when one worker answers its readiness probe; another may still be loading or
    compiling, and would take the CPU from the requests measured. Returns the seconds waited.
    """
    import psutil

    start = time.monotonic()
    me = psutil.Process()

    def cpu() -> dict[int, float]:
        out = {}
        for child in me.children(recursive=True):
            try:
                times = child.cpu_times()
                out[child.pid] = times.user + times.system
            except psutil.Error:
                pass
        return out

    while time.monotonic() - start < timeout_s:
        before = cpu()
        time.sleep(window_s)
        after = cpu()
        if sum(after[p] - before.get(p, 0.0) for p in after) < busy_s:
            break
    return time.monotonic() - start


class RssSampler:
    """Peak resident memory of this process, sampled every 20 ms in a thread while the block runs."""

    def __enter__(self) -> RssSampler:
        import threading

        self.peak = self.start = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def batch(bundle_dir: Path, tmp: Path, rows: int) -> dict:
    from creditops.artifact import load_bundle
    from creditops.batch import score_file
    from predictor.testing import random_features

    bundle = load_bundle(bundle_dir)
    out: dict = {}
    for label, n in (("small", max(rows // 4, 1000)), ("full", rows)):
        src = tmp / f"batch_in_{label}.parquet"
        frame = random_features(n, seed=3)
        frame.insert(0, "applicant_id", np.arange(n, dtype=np.int64))
        # Row groups of 100k rows, like any large file written in pieces: the reader holds one row group
        # at a time, so memory measures the scorer (a file written as one row group is read whole).
        frame.to_parquet(src, index=False, row_group_size=100_000)
        del frame
        if label == "small":
            score_file(bundle, src, tmp / "warm.parquet", chunk_rows=50_000, progress=False)  # JIT + caches
        with RssSampler() as rss:
            result = score_file(
                bundle, src, tmp / f"batch_out_{label}.parquet", chunk_rows=100_000, progress=False
            )
        out[label] = {
            "rows": result.rows_in,
            "rows_scored": result.rows_scored,
            "seconds": result.seconds,
            "rows_per_min": result.rows_per_minute,
            "rss_start_mb": rss.start,
            "rss_peak_mb": rss.peak,
        }
    full, small = out["full"], out["small"]
    return {
        **full,
        "rss_growth_mb": full["rss_peak_mb"] - full["rss_start_mb"],
        "rss_growth_small_mb": small["rss_peak_mb"] - small["rss_start_mb"],
        "small": small,
    }


def _load_run(url: str, bodies_file: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--load-client", url, "--ids-file", str(bodies_file)]
    cmd += ["--concurrency", str(args.concurrency), "--seconds", str(args.seconds), "--client", args.client]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--applicants", type=int, default=10_000)
    p.add_argument("--trees", type=int, default=300)
    p.add_argument("--depth", type=int, default=5)
    p.add_argument("--sequential", type=int, default=2_000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--rounds", type=int, default=5, help="interleaved blocks of (a) per server")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--batch-rows", type=int, default=1_000_000)
    p.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="creditops worker processes (default: cores)"
    )
    p.add_argument("--skip-batch", action="store_true")
    p.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="client of (b): raw keep-alive sockets (wrk-like, low client CPU) or httpx ((a) always raw)",
    )
    p.add_argument("--load-client", help=argparse.SUPPRESS)
    p.add_argument("--ids-file", help=argparse.SUPPRESS)
    p.add_argument("--stock-server", help=argparse.SUPPRESS)
    p.add_argument("--http-port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.load_client:
        return load_client_main(args)
    if args.stock_server:
        return stock_server_main(args)
    if args.quick:
        args.applicants, args.sequential, args.warmup, args.seconds = 500, 300, 50, 5.0
        args.batch_rows = min(args.batch_rows, 100_000)

    import psycopg

    from creditops.governance.audit import AuditLog
    from feast_repo import store as feast_store
    from feast_repo.store import REPO_PATH
    from predictor.testing import feast_world, random_features, running_server, tiny_bundle

    run = uuid.uuid4().hex[:8]
    db = f"creditops_bench_{run}"
    project = f"creditops_bench_{run}"
    out: dict = {
        "setup": {"applicants": args.applicants, "trees": args.trees, "depth": args.depth},
        "workers": args.workers,
    }
    with (
        tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp_str,
        psycopg.connect(PG_ADMIN, autocommit=True) as admin,
    ):
        tmp = Path(tmp_str)
        admin.execute(f'CREATE DATABASE "{db}"')
        audit_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{db}"
        env = None
        try:
            t = time.perf_counter()
            bundle_dir = tiny_bundle(tmp / "bundle", n_rows=5000, n_trees=args.trees, max_depth=args.depth)
            env, frame = feast_world(tmp / "feast", project, REDIS, n_applicants=args.applicants)
            out["setup"]["seconds"] = time.perf_counter() - t
            ids = [int(i) for i in frame["applicant_id"]]
            ours = [b'{"instances":[{"applicant_id":%d}]}' % i for i in ids]
            values = random_features(min(len(ids), 2000), seed=5).to_numpy(dtype=np.float64)
            stock = [json.dumps({"instances": [row]}).encode() for row in values.tolist()]
            ours_file, stock_file = tmp / "ours.json", tmp / "stock.json"
            ours_file.write_text(json.dumps([b.decode() for b in ours]))
            stock_file.write_text(json.dumps([b.decode() for b in stock]))
            server_args = ["--bundle", str(bundle_dir), "--feast-repo", str(REPO_PATH)]
            server_args += ["--audit-url", audit_url, "--workers", str(args.workers)]
            ours_path, stock_path = f"/v1/models/{MODEL}:predict", f"/v1/models/{STOCK}:predict"
            model_file = bundle_dir / "model.ubj"
            with running_server(server_args, env=env, model_name=MODEL) as base:
                log = AuditLog.open(audit_url)
                a0 = log.count()
                # (a) beside an idle stock server (1 worker, kserve's default), blocks interleaved
                with stock_server(model_file, 1, tmp / "stock_seq.log") as sbase:
                    out["quiet_wait_s"] = wait_quiet()
                    targets = {"ours": (base, ours_path, ours), "stock": (sbase, stock_path, stock)}
                    seq = sequential(targets, args.sequential, args.warmup, args.rounds)
                out["sequential"], out["stock_sequential"] = seq["ours"], seq["stock"]
                a1 = log.count()
                out["sequential"]["audit_rows"] = a1 - a0
                wait_quiet()
                out["concurrent"] = _load_run(base + ours_path, ours_file, args)
                a2 = log.count()
                out["concurrent"]["audit_rows"] = a2 - a1
                out["concurrent"]["audit_matches"] = (a2 - a1) == out["concurrent"]["ok_rows"]
                out["audit_chain_ok"] = log.verify().ok
                out["audit_records"] = a2
            # (b) the stock server's load runs after ours, never beside it: each gets the machine to itself.
            with stock_server(model_file, 1, tmp / "stock1.log") as sbase:
                wait_quiet()
                out["stock_concurrent_1w"] = _load_run(sbase + stock_path, stock_file, args)
            if args.workers > 1:
                with stock_server(model_file, args.workers, tmp / "stockN.log") as sbase:
                    wait_quiet()
                    out["stock_concurrent_nw"] = _load_run(sbase + stock_path, stock_file, args)
            else:
                out["stock_concurrent_nw"] = out["stock_concurrent_1w"]
            skipped = {"rows": 0, "rows_per_min": float("nan"), "rss_growth_mb": float("nan")}
            out["batch"] = skipped if args.skip_batch else batch(bundle_dir, tmp, args.batch_rows)
        finally:
            if env is not None:
                try:
                    feast_store.teardown(feast_store.open_store(REPO_PATH, env=env))
                except Exception as exc:  # noqa: BLE001 - cleanup must not hide the results
                    print(f"feast teardown failed: {exc}", file=sys.stderr)
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    seq, conc, bat = out["sequential"], out["concurrent"], out["batch"]
    sseq, s1, sn = out["stock_sequential"], out["stock_concurrent_1w"], out["stock_concurrent_nw"]
    r_p50, r_p99 = seq["p50_ms"] / sseq["p50_ms"], seq["p99_ms"] / sseq["p99_ms"]
    r_1w, r_nw = conc["rps"] / s1["rps"], conc["rps"] / sn["rps"]
    w = args.workers
    print(
        f"(a) sequential by id: p50 {seq['p50_ms']:.2f} ms  p99 {seq['p99_ms']:.2f} ms | stock bare model "
        f"p50 {sseq['p50_ms']:.2f}  p99 {sseq['p99_ms']:.2f} ms | ratio p50 {r_p50:.2f}  p99 {r_p99:.2f} "
        "(target p99 <= 1.5)"
    )
    print(
        f"(b) {args.concurrency} clients x {conc['seconds']:.0f} s, creditops {w} worker(s): "
        f"{conc['rps']:.0f} req/s, errors {conc['errors']}, audit rows {conc['audit_rows']} == "
        f"answered {conc['ok_rows']}: "
        f"{conc['audit_matches']}, chains verified: {out['audit_chain_ok']}"
    )
    print(
        f"    stock 1 worker {s1['rps']:.0f} req/s (ratio {r_1w:.2f}, target >= 1.0); stock {w} workers "
        f"{sn['rps']:.0f} req/s (ratio {r_nw:.2f}, target >= 0.8)"
    )
    print(
        f"(c) batch score_file: {bat['rows_per_min']:,.0f} rows/min (target >= 2,000,000); resident memory "
        f"growth {bat.get('rss_growth_mb', float('nan')):.0f} MB for {bat['rows']:,} rows vs "
        f"{bat.get('rss_growth_small_mb', float('nan')):.0f} MB for a quarter of them"
    )
    summary = {
        "seq_p50_ms": round(seq["p50_ms"], 3),
        "seq_p99_ms": round(seq["p99_ms"], 3),
        "stock_seq_p50_ms": round(sseq["p50_ms"], 3),
        "stock_seq_p99_ms": round(sseq["p99_ms"], 3),
        "ratio_seq_p50": round(r_p50, 3),
        "ratio_seq_p99": round(r_p99, 3),
        "seq_errors": seq["errors"] + sseq["errors"],
        "seq_rounds": args.rounds,
        "quiet_wait_s": round(out["quiet_wait_s"], 1),
        "workers": w,
        "conc_rps": round(conc["rps"], 1),
        "stock_1w_rps": round(s1["rps"], 1),
        "stock_nw_rps": round(sn["rps"], 1),
        "ratio_rps_vs_stock_1w": round(r_1w, 3),
        "ratio_rps_vs_stock_nw": round(r_nw, 3),
        "client": args.client,
        "conc_p50_ms": round(conc["p50_ms"], 3),
        "conc_p99_ms": round(conc["p99_ms"], 3),
        "conc_errors": sum(conc["errors"].values()),
        "stock_errors": sum(s1["errors"].values()) + sum(sn["errors"].values()),
        "conc_audit_rows": conc["audit_rows"],
        "conc_ok_rows": conc["ok_rows"],
        "audit_matches": conc["audit_matches"],
        "audit_chain_ok": out["audit_chain_ok"],
        "batch_rows_per_min": None if args.skip_batch else round(bat["rows_per_min"]),
        "batch_rows": bat["rows"],
        "batch_rss_growth_mb": None if args.skip_batch else round(bat["rss_growth_mb"], 1),
        "batch_rss_growth_quarter_rows_mb": None if args.skip_batch else round(bat["rss_growth_small_mb"], 1),
        **{f"setup_{k}": v for k, v in out["setup"].items()},
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
