"""Feature-store benchmark: build, materialize into Redis, online latency, historical retrieval.

    .venv/bin/python bench/feature_store.py [--applicants 500000] [--calls 10000] [--hist-rows 100000]

Uses a dedicated Feast project ``creditops_bench_<pid>`` (Redis online, file offline in a temp dir) and tears
it down at the end; the bulk path (``feast_repo.bulk.materialize_redis``) loads the same tables into a
second project ``creditops_bench_bulk_<pid>``, timed and read the same way. The last line printed is one JSON
object with the metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

import numpy as np

from creditops.config import FeastConfig
from creditops.data.synthetic import generate_world
from creditops.features.build import build_feature_tables, entity_frame
from creditops.features.registry import FEATURE_SERVICE, JOIN_KEY
from feast_repo import bulk
from feast_repo import store as fs


def _latency(call, ids: np.ndarray, calls: int) -> tuple[float, float]:
    """p50 and p99 (ms) of ``call(applicant_id)`` over ``calls`` random applicants, after a warm-up."""
    rng = np.random.default_rng(0)
    for i in rng.choice(ids, 200):  # warm-up: connections, registry cache
        call(int(i))
    latencies = []
    for i in rng.choice(ids, calls):
        t = time.perf_counter()
        call(int(i))
        latencies.append(time.perf_counter() - t)
    ms = np.array(latencies) * 1000
    return round(float(np.percentile(ms, 50)), 3), round(float(np.percentile(ms, 99)), 3)


def _online_latency(store, ids: np.ndarray, calls: int) -> tuple[float, float]:
    """Single-applicant ``get_online_features`` through the FeatureService (all model features), to_dict."""
    service = store.get_feature_service(FEATURE_SERVICE)
    return _latency(
        lambda i: store.get_online_features(features=service, entity_rows=[{JOIN_KEY: i}]).to_dict(),
        ids,
        calls,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--applicants", type=int, default=500_000)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--hist-rows", type=int, default=100_000)
    parser.add_argument("--redis", default=os.environ.get("CREDITOPS_BENCH_REDIS", "127.0.0.1:6379"))
    args = parser.parse_args()
    metrics: dict[str, float | int | str] = {"applicants": args.applicants}

    t = time.perf_counter()
    world = generate_world(args.applicants, seed=7)
    metrics["generate_s"] = round(time.perf_counter() - t, 2)
    metrics["transactions"] = len(world.transactions)
    t = time.perf_counter()
    tables = build_feature_tables(world)
    metrics["build_features_s"] = round(time.perf_counter() - t, 2)
    print(f"built feature tables: {metrics}", flush=True)

    data_dir = tempfile.mkdtemp(prefix="creditops_bench_")
    config = FeastConfig(
        project=f"creditops_bench_{os.getpid()}", online_store="redis", redis_connection=args.redis
    )
    store = fs.open_store(config=config, data_dir=data_dir)
    try:
        fs.write_offline(tables, store)
        fs.apply(store)
        t = time.perf_counter()
        fs.materialize(store, world.as_of.to_pydatetime())
        metrics["materialize_s"] = round(time.perf_counter() - t, 2)
        print(f"materialized: {metrics['materialize_s']} s", flush=True)

        ids = world.applications[JOIN_KEY].to_numpy()
        metrics["online_p50_ms"], metrics["online_p99_ms"] = _online_latency(store, ids, args.calls)
        print(f"online: p50 {metrics['online_p50_ms']} ms, p99 {metrics['online_p99_ms']} ms", flush=True)

        entities = entity_frame(world.applications).sample(
            n=min(args.hist_rows, len(world.applications)), random_state=0
        )
        t = time.perf_counter()
        frame = fs.training_frame(store, entities)
        metrics["historical_s"] = round(time.perf_counter() - t, 2)
        metrics["historical_rows"] = len(frame)
    finally:
        fs.teardown(store)
        shutil.rmtree(data_dir, ignore_errors=True)

    bulk_dir = tempfile.mkdtemp(prefix="creditops_bench_bulk_")
    config = config.model_copy(update={"project": f"creditops_bench_bulk_{os.getpid()}"})
    store = fs.open_store(config=config, data_dir=bulk_dir)
    try:
        fs.write_offline(tables, store)
        fs.apply(store)
        t = time.perf_counter()
        bulk.materialize_redis(store, tables, world.as_of.to_pydatetime())
        metrics["materialize_bulk_s"] = round(time.perf_counter() - t, 2)
        print(f"materialized (bulk): {metrics['materialize_bulk_s']} s", flush=True)
        metrics["online_bulk_p50_ms"], metrics["online_bulk_p99_ms"] = _online_latency(store, ids, args.calls)
        print(
            f"online (bulk): p50 {metrics['online_bulk_p50_ms']} ms, p99 {metrics['online_bulk_p99_ms']} ms"
        )
        lookup = fs.OnlineFeatures(store)  # what the predictor uses: the direct Redis reader
        assert lookup.direct is not None
        metrics["online_direct_p50_ms"], metrics["online_direct_p99_ms"] = _latency(
            lambda i: lookup([i]), ids, args.calls
        )
        print(
            f"online (direct reader): p50 {metrics['online_direct_p50_ms']} ms, "
            f"p99 {metrics['online_direct_p99_ms']} ms"
        )
    finally:
        fs.teardown(store)
        shutil.rmtree(bulk_dir, ignore_errors=True)
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
