"""Streaming benchmark: sustained ingest rate into the Redis online store and event-to-online freshness.

    .venv/bin/python bench/streaming.py [--applicants 20000] [--events 100000] [--rate 1000] [--seconds 60]

Real parts only: NATS JetStream (127.0.0.1:4222), Redis (state + Feast online store, a fresh project and
key prefix), the Feast file offline store (part files per batch). The world's transactions seed the state
first, as the daily pipeline does.

1. Ingest: ``--events`` transaction events are published to the stream, then one consumer drains it;
   rate = events / seconds from first fetch to last acknowledgement (the stream processor's whole path:
   validation, idempotent state, behavioural + derived recomputation, online + offline writes, acks).
2. Freshness: a publisher sends ``--rate`` events/s for ``--seconds`` while the consumer runs; each event
   carries its send time in a header, and the consumer records ``online write done - sent`` per event.
   The publisher has its own thread, event loop and connection, as a producer elsewhere would: in the
   consumer's loop, the events due while a batch was processed were sent (and stamped) only after it, so
   their wait for that batch went unmeasured, and the next fetch raced their publication.
   RSS of the process is sampled every 10 s (memory must stay flat: ``rss_mb_growth`` is the last sample
   minus the one at 60 s, or the first in a shorter run). The bench's own per-event records are packed
   doubles (8 bytes an event), so a 10-minute run's RSS is the consumer's.

Per batch, the time to fetch, process (validation to the last sink write) and acknowledge is reported
(``*_fetch_ms_p50`` ...), and for freshness how much of an event's latency is spent waiting to be fetched
(``fresh_wait_*``: publish, and the previous batch still being processed) before its own batch is processed.

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from array import array

import numpy as np
import pandas as pd
import psutil
import redis

from creditops.config import FeastConfig, Settings, StreamingConfig
from creditops.data.synthetic import generate_world
from creditops.features.build import build_feature_tables
from creditops.features.registry import JOIN_KEY
from creditops.streaming.broker import NatsBroker, consume
from creditops.streaming.events import encode_transactions
from creditops.streaming.replay import synthetic_transactions
from creditops.streaming.state import RedisEventState
from feast_repo import store as fs
from feast_repo.stream import stream_processor

NATS = "nats://127.0.0.1:4222"


class _Stages:
    """Seconds per batch spent fetching, processing and acknowledging (wraps the broker and processor)."""

    def __init__(self, broker, processor):
        self.fetch = array("d")
        self.process = array("d")
        self.ack = array("d")
        self.flush = array("d")  # offline writes of the batches since the last one (in a worker thread)
        self.fetched_at = array("d")  # wall clock when each non-empty fetch returned
        self.sizes = array("q")
        fetch, ack, process, write = broker.fetch, broker.ack, processor.process, processor.write_offline

        async def timed_fetch(n, timeout):
            t = time.perf_counter()
            got = await fetch(n, timeout)
            if got:
                self.fetch.append(time.perf_counter() - t)
                self.fetched_at.append(time.time())
                self.sizes.append(len(got))
            return got

        async def timed_ack(messages):
            t = time.perf_counter()
            await ack(messages)
            self.ack.append(time.perf_counter() - t)

        def timed_process(raws):
            t = time.perf_counter()
            try:
                return process(raws)
            finally:
                self.process.append(time.perf_counter() - t)

        def timed_write(kept):
            t = time.perf_counter()
            try:
                return write(kept)
            finally:
                if kept:
                    self.flush.append(time.perf_counter() - t)

        broker.fetch, broker.ack = timed_fetch, timed_ack

        def restore():
            processor.process, processor.write_offline = process, write

        self.restore = restore
        processor.process, processor.write_offline = timed_process, timed_write

    def summary(self, prefix: str) -> dict:
        def ms(values, q):
            return round(float(np.percentile(values, q)) * 1000, 2) if values else None

        out = {}
        for name in ("fetch", "process", "ack", "flush"):
            values = getattr(self, name)
            out[f"{prefix}{name}_ms_p50"] = ms(values, 50)
            out[f"{prefix}{name}_ms_p99"] = ms(values, 99)
        out[f"{prefix}batch_events_p50"] = int(np.median(self.sizes)) if self.sizes else 0
        self.restore()
        return out


async def _ingest(processor, run: str, events: list[bytes], batch: int) -> dict:
    broker = await NatsBroker(NATS, run, durable="bench").connect()
    t = time.perf_counter()
    await broker.publish(events)
    publish_s = time.perf_counter() - t
    first = {}

    def mark(outcome, messages):
        first.setdefault("t", time.perf_counter())

    stages = _Stages(broker, processor)
    t = time.perf_counter()
    stats = await consume(
        broker, processor, batch_size=batch, fetch_timeout=1.0, stop_when_idle=True, on_batch=mark
    )
    seconds = time.perf_counter() - first.get("t", t)
    await broker.close()
    return stages.summary("ingest_") | {
        "events": stats.events,
        "publish_events_per_s": round(len(events) / publish_s),
        "ingest_seconds": round(seconds, 2),
        "ingest_events_per_s": round(stats.events / seconds),
        "batches": stats.batches,
        "applied": stats.applied,
        "dead_lettered": stats.dead_lettered,
    }


async def _freshness(
    processor, run: str, frame: pd.DataFrame, rate: float, seconds: float, batch: int
) -> dict:
    import nats

    # a stream of its own: a consumer of the ingest stream would first re-read its whole backlog
    stream = f"{run}_fresh"
    broker = await NatsBroker(NATS, stream, durable="fresh").connect()
    events = encode_transactions(frame)
    subject = f"{stream}.events.transaction"
    latencies = array("d")
    waits = array("d")  # sent -> the fetch that brought the event returned
    rss: list[float] = []
    proc = psutil.Process()
    done: dict = {"publishing": True, "error": None}

    async def send() -> None:
        nc = await nats.connect(NATS)
        start = time.perf_counter()
        for i, event in enumerate(events):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await nc.publish(subject, event, headers={"sent": repr(time.time())})
            if i % 100 == 0:
                await nc.flush()
        await nc.flush()
        await nc.close()

    def publish() -> None:  # the publisher's thread
        try:
            asyncio.run(send())
        except BaseException as exc:  # reported by the consumer's side, which stops
            done["error"] = exc
        finally:
            done["publishing"] = False

    def record(outcome, messages) -> None:
        now = time.time()
        sent = [float(m.headers["sent"]) for m in messages if m.headers and "sent" in m.headers]
        latencies.extend(now - x for x in sent)
        waits.extend(stages.fetched_at[-1] - x for x in sent)

    async def sample() -> None:
        while done["publishing"]:
            rss.append(proc.memory_info().rss / 2**20)
            await asyncio.sleep(10)

    stages = _Stages(broker, processor)
    publisher = threading.Thread(target=publish, name="bench-publisher")
    publisher.start()
    sampler = asyncio.create_task(sample())
    stats = await consume(
        broker,
        processor,
        batch_size=batch,
        fetch_timeout=0.005,
        on_batch=record,
        should_stop=lambda: not done["publishing"] and (len(latencies) >= len(events) or done["error"]),
    )
    publisher.join()
    await sampler
    await broker.close()
    if done["error"] is not None:
        raise RuntimeError("the freshness publisher failed") from done["error"]
    ms = np.array(latencies) * 1000
    wait_ms = np.array(waits) * 1000
    return stages.summary("fresh_") | {
        "fresh_events": stats.events,
        "fresh_rate": rate,
        "fresh_p50_ms": round(float(np.percentile(ms, 50)), 2),
        "fresh_p99_ms": round(float(np.percentile(ms, 99)), 2),
        "fresh_max_ms": round(float(ms.max()), 2),
        # where the latency comes from: waiting to be fetched (publish, the previous batch's processing),
        # then this batch's processing and online write (the rest of fresh_*_ms)
        "fresh_wait_p50_ms": round(float(np.percentile(wait_ms, 50)), 2),
        "fresh_wait_p99_ms": round(float(np.percentile(wait_ms, 99)), 2),
        "rss_mb_samples": [round(x) for x in rss],
        "rss_mb_growth": round(rss[-1] - rss[min(6, len(rss) - 1)], 1) if rss else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--applicants", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=StreamingConfig().batch_size)  # the product's default
    args = parser.parse_args()

    run = f"creditops_bench_stream_{uuid.uuid4().hex[:8]}"
    tmp = tempfile.mkdtemp(prefix=run)
    client = redis.Redis()
    store = None
    try:
        t = time.perf_counter()
        world = generate_world(args.applicants, seed=7)
        tables = build_feature_tables(world)
        store = fs.open_store(config=FeastConfig(project=run, online_store="redis"), data_dir=tmp)
        fs.write_offline(tables, store)
        fs.apply(store)
        fs.materialize(store, world.as_of.to_pydatetime(), tables=tables)
        settings = Settings(streaming=StreamingConfig(stream=run, state_prefix=f"{run}:state:"))
        processor = stream_processor(settings, store, client)
        seeded = RedisEventState(client, prefix=f"{run}:state:").seed(world.transactions)
        setup_s = time.perf_counter() - t
        print(
            f"setup {setup_s:.1f} s: {args.applicants} applicants, {seeded:,} transactions seeded", flush=True
        )

        ids = world.applications[JOIN_KEY].to_numpy()
        start = world.as_of + pd.Timedelta(minutes=1)
        ingest_frame = synthetic_transactions(ids, args.events, start, rate=1000.0, seed=1)
        out = {"applicants": args.applicants, "seeded_transactions": seeded, "batch": args.batch}
        out.update(asyncio.run(_ingest(processor, run, encode_transactions(ingest_frame), args.batch)))
        print(f"ingest: {out['ingest_events_per_s']:,} events/s over {out['events']:,} events", flush=True)

        n = int(args.rate * args.seconds)
        fresh_start = start + pd.Timedelta(seconds=args.events / 1000.0 + 60)
        fresh = synthetic_transactions(
            ids, n, fresh_start, rate=args.rate, seed=2, first_transaction_id=2 * 10**12
        )
        out.update(asyncio.run(_freshness(processor, run, fresh, args.rate, args.seconds, args.batch)))
        print(
            f"freshness at {args.rate:.0f}/s: p50 {out['fresh_p50_ms']} ms, p99 {out['fresh_p99_ms']} ms",
            flush=True,
        )
        print(json.dumps(out))
    finally:

        async def drop() -> None:
            broker = await NatsBroker(NATS, run).connect()
            await broker.close(delete=True)

        asyncio.run(drop())
        if store is not None:
            fs.teardown(store)
        for key_batch in _chunks(list(client.scan_iter(match=f"*{run}*", count=5000)), 5000):
            client.delete(*key_batch)
        shutil.rmtree(tmp, ignore_errors=True)
        os.environ.pop("unused", None)


def _chunks(items: list, n: int):
    for i in range(0, len(items), n):
        yield items[i : i + n]


if __name__ == "__main__":
    main()
