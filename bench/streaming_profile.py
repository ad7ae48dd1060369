"""Where a stream batch's time goes: the stages of ``StreamProcessor.process`` on the streaming bench's setup.

    .venv/bin/python bench/streaming_profile.py [--applicants 20000] [--batches 20] [--cprofile]

The same setup as ``bench/streaming.py`` (a synthetic world, Feast on Redis materialized, the world's
transactions seeded into the stream state), then ``--batches`` batches of ``--batch`` encoded transaction
events go straight into ``process`` (no broker: the NATS fetch/ack side is in ``bench/streaming.py``).
Each stage is timed by wrapping the processor's collaborators (validation, state reads and writes, context
read, feature computation, each sink); ``redis.<command>`` is the Redis server's own time per batch by
command (``INFO commandstats``; other clients of the same Redis count too). With ``--cprofile`` the top
functions follow (by cumulative time; ``PROFILE_SORT=tottime`` sorts by own time).

The last line printed is one JSON object: milliseconds per batch by stage (median over the batches).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import tempfile
import time
import uuid
from collections import defaultdict

import numpy as np
import pandas as pd
import redis

import creditops.streaming.consumer as consumer_module
from creditops.config import FeastConfig, Settings, StreamingConfig
from creditops.data.synthetic import generate_world
from creditops.features.build import build_feature_tables
from creditops.features.registry import JOIN_KEY
from creditops.streaming.events import encode_transactions
from creditops.streaming.replay import synthetic_transactions
from creditops.streaming.state import RedisEventState
from feast_repo import store as fs
from feast_repo.stream import stream_processor


def _timed(timings: dict[str, list[float]], name: str, fn):
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            timings[name].append(time.perf_counter() - t)

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--applicants", type=int, default=20_000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()

    run = f"creditops_bench_sprof_{uuid.uuid4().hex[:8]}"
    tmp = tempfile.mkdtemp(prefix=run)
    client = redis.Redis()
    store = None
    try:
        world = generate_world(args.applicants, seed=7)
        tables = build_feature_tables(world)
        store = fs.open_store(config=FeastConfig(project=run, online_store="redis"), data_dir=tmp)
        fs.write_offline(tables, store)
        fs.apply(store)
        fs.materialize(store, world.as_of.to_pydatetime(), tables=tables)
        settings = Settings(streaming=StreamingConfig(stream=run, state_prefix=f"{run}:state:"))
        processor = stream_processor(settings, store, client)
        RedisEventState(client, prefix=f"{run}:state:").seed(world.transactions)

        ids = world.applications[JOIN_KEY].to_numpy()
        start = world.as_of + pd.Timedelta(minutes=1)
        frame = synthetic_transactions(ids, args.batches * args.batch, start, rate=1000.0, seed=1)
        events = encode_transactions(frame)
        batches = [events[i : i + args.batch] for i in range(0, len(events), args.batch)]

        timings: dict[str, list[float]] = defaultdict(list)
        state = processor.state
        for name in (
            "known",
            "add_transactions",
            "add_applications",
            "history_records",
            "prune_records",
        ):
            if hasattr(state, name):
                setattr(state, name, _timed(timings, f"state.{name}", getattr(state, name)))
        if processor.context is not None:
            processor.context = _timed(timings, "context_read", processor.context)
        if processor.known_applicants is not None:
            processor.known_applicants = _timed(timings, "known_applicants", processor.known_applicants)
        for sink in processor.sinks:
            sink.write = _timed(timings, f"sink.{type(sink).__name__}", sink.write)
        consumer_module.validate_events = _timed(timings, "validate_events", consumer_module.validate_events)
        window = consumer_module.TransactionWindow
        window.from_arrays = _timed(timings, "transaction_window", window.from_arrays)
        # per group: behavioural, then derived (identity goes through identity_table)
        consumer_module.compute_columns = _timed(timings, "compute_columns", consumer_module.compute_columns)
        processor._features = _timed(timings, "features (all)", processor._features)

        profiler = cProfile.Profile() if args.cprofile else None
        totals = []
        redis_before = _command_usec(client)
        for raws in batches:
            t = time.perf_counter()
            if profiler is not None:
                profiler.enable()
            outcome = processor.process(raws)
            if profiler is not None:
                profiler.disable()
            totals.append(time.perf_counter() - t)
            assert outcome.events == len(raws)  # nosec B101  # bench sanity, not a test
        redis_after = _command_usec(client)
        skip = 1 if len(totals) > 2 else 0  # the first batch warms caches
        out = {"batch": args.batch, "batches": len(totals), "process_ms": _ms(totals[skip:])}
        # the Redis server's own time per batch, by command (over every batch; other clients of this Redis
        # count too, so run it alone)
        for command, usec in sorted(redis_after.items(), key=lambda kv: -kv[1]):
            spent = (usec - redis_before.get(command, 0)) / 1000 / len(totals)
            if spent >= 0.05:
                out[f"redis.{command}"] = round(spent, 2)
        for name, values in sorted(timings.items()):
            out[name] = _ms(values[skip:]) if len(values) > skip else _ms(values)
        out["events_per_s_process_only"] = round(args.batch / (np.median(totals[skip:]) or 1e-9))
        if profiler is not None:
            buf = io.StringIO()
            pstats.Stats(profiler, stream=buf).sort_stats(
                os.environ.get("PROFILE_SORT", "cumulative")
            ).print_stats(45)
            print(buf.getvalue())
        for name, value in out.items():
            print(f"{name:>28}: {value}")
        print(json.dumps(out))
    finally:
        if store is not None:
            fs.teardown(store)
        keys = list(client.scan_iter(match=f"*{run}*", count=5000))
        for i in range(0, len(keys), 5000):
            client.delete(*keys[i : i + 5000])
        shutil.rmtree(tmp, ignore_errors=True)


def _command_usec(client: redis.Redis) -> dict[str, int]:
    """Redis server microseconds by command so far (``INFO commandstats``)."""
    return {name.removeprefix("cmdstat_"): int(v["usec"]) for name, v in client.info("commandstats").items()}


def _ms(values: list[float]) -> float:
    return round(float(np.median(values)) * 1000, 2) if values else 0.0


if __name__ == "__main__":
    main()
