"""The consumer on real NATS JetStream, Redis (state + Feast online store) and the Feast file offline store.

A consumer killed after writing a batch but before acknowledging it is restarted: nothing is lost, nothing is
counted twice, the online features equal the batch functions over the whole history, Feast's own
``get_online_features`` reads them, and the offline store (after folding) holds what serving saw.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest
import redis
import yaml
from streaming_helpers import batch_answer, newest_event

from creditops.data.synthetic import generate_world
from creditops.features.build import build_feature_tables
from creditops.features.registry import JOIN_KEY, TIMESTAMP, features_in
from creditops.streaming.broker import NatsBroker
from creditops.streaming.events import encode_transactions
from creditops.streaming.replay import synthetic_transactions
from feast_repo import store as fs
from feast_repo.stream import OfflineSink, fold_offline

NATS_URL = "nats://127.0.0.1:4222"
ROOT = Path(__file__).resolve().parents[2]


def _nats_up() -> bool:
    async def probe() -> bool:
        import nats

        try:
            nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
        except Exception:  # noqa: BLE001
            return False
        await nc.close()
        return True

    return asyncio.run(probe())


pytestmark = pytest.mark.skipif(not _nats_up(), reason=f"NATS JetStream not reachable at {NATS_URL}")


@pytest.fixture(scope="module")
def setup(redis_url, tmp_path_factory):
    world = generate_world(120, seed=21)
    tables = build_feature_tables(world)
    rd = urlparse(redis_url)
    run = f"creditops_stream_{uuid.uuid4().hex[:8]}"
    data_dir = tmp_path_factory.mktemp("feast")
    feast = {
        "project": run,
        "online_store": "redis",
        "redis_connection": f"{rd.hostname}:{rd.port or 6379}",
        "data_dir": str(data_dir),
    }
    config = {
        "workdir": str(tmp_path_factory.mktemp("work")),
        "feast": feast,
        "streaming": {
            "stream": run,
            "state_prefix": f"{run}:state:",
            "batch_size": 250,
            "ack_wait_seconds": 2,
            # the offline write (and acknowledgement) of two batches at once, by size only (0.5 s is longer
            # than two batches take): the crash after batch 3 leaves batches 1-2 acknowledged and batch 3
            # in the online store, not yet offline, unacknowledged
            "offline_flush_events": 500,
            "offline_flush_seconds": 0.5,
        },
    }
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    from creditops.config import FeastConfig

    store = fs.open_store(
        config=FeastConfig(**{k: v for k, v in feast.items() if k != "data_dir"}), data_dir=data_dir
    )
    fs.write_offline(tables, store)
    fs.apply(store)
    fs.materialize(store, world.as_of.to_pydatetime(), tables=tables)
    client = redis.Redis.from_url(redis_url)
    # the stream continues from the batch history: the snapshot's transactions seed the consumer's state
    from creditops.streaming.state import RedisEventState

    assert RedisEventState(client, prefix=f"{run}:state:").seed(world.transactions) == len(world.transactions)
    yield world, store, path, run, client
    asyncio.run(_drop_streams(run))
    fs.teardown(store)
    leftovers = list(client.scan_iter(match=f"*{run}*", count=1000))
    if leftovers:
        client.delete(*leftovers)
    client.close()


async def _drop_streams(run: str) -> None:
    broker = await NatsBroker(NATS_URL, run).connect()
    await broker.close(delete=True)


async def _publish(run: str, events: list[bytes]) -> list[tuple[bytes, str]]:
    broker = await NatsBroker(NATS_URL, run).connect()
    await broker.publish(events)
    await broker.close()
    return []


async def _dead_letters(run: str) -> list[tuple[bytes, str]]:
    broker = await NatsBroker(NATS_URL, run).connect()
    try:
        return await broker.dead_letters()
    finally:
        await broker.close()


def _worker(path: Path, *args: str) -> tuple[int, dict]:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "stream_worker.py"), str(path), *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, proc.stderr[-3000:]
    return proc.returncode, json.loads(lines[-1])


def test_consumer_crash_and_redelivery_lose_nothing_and_count_nothing_twice(setup):
    world, store, path, run, client = setup
    new = synthetic_transactions(
        world.applications[JOIN_KEY].to_numpy(), 2000, world.as_of + pd.Timedelta(hours=1), rate=5.0, seed=3
    )
    events = encode_transactions(new)
    bad = [b"{oops", json.dumps({**json.loads(events[0]), "transaction_id": 1, "amount": -3}).encode()]
    asyncio.run(_publish(run, [*events[:1000], *bad, *events[1000:], *events[:300]]))  # 300 sent twice

    code, crashed = _worker(path, "--crash-after", "3")  # dies holding batch 3 unacknowledged
    assert code == 17 and crashed == {"crashed_after_batches": 3}
    import time

    time.sleep(6)  # well past ack_wait (2 s): the unacknowledged batch becomes deliverable again
    code, stats = _worker(path)
    assert code == 0
    # the restarted consumer saw the redelivered batch 3 (online written, offline not) and all after it;
    # batches 1-2 too when the crash came while their offline write (a worker thread) was still under
    # way: then their acknowledgement had not been sent either
    assert stats["events"] in (len(events) + len(bad) + 300 - 2 * 250, len(events) + len(bad) + 300)
    assert stats["dead_lettered"] in (0, 1, 2) and stats["duplicates"] >= 300
    from creditops.streaming.state import RedisEventState

    stored = RedisEventState(client, prefix=f"{run}:state:").transactions(new[JOIN_KEY].unique(), prune=False)
    assert stored["transaction_ts"].ge(new["transaction_ts"].min()).sum() == len(new)  # each new one once
    dead = asyncio.run(_dead_letters(run))
    assert len(dead) == 2  # dead-lettered once each, although a crash came after them
    assert {reason.split(":")[0] for _, reason in dead} == {"schema", "range"}

    # online store (read by Feast itself) == batch functions over the full history, as of the newest event
    history = pd.concat([world.transactions, new], ignore_index=True)
    touched = np.sort(new[JOIN_KEY].unique())
    points = newest_event(world, history)
    points = points[points[JOIN_KEY].isin(touched)].reset_index(drop=True)
    want = batch_answer(world, history, points)["behavioural"].set_index(JOIN_KEY).loc[touched]
    refs = [f"behavioural_fv:{f.name}" for f in features_in("behavioural")]
    got = store.get_online_features(features=refs, entity_rows=[{JOIN_KEY: int(i)} for i in touched]).to_df()
    got = got.set_index(JOIN_KEY).loc[touched]
    for f in features_in("behavioural"):
        np.testing.assert_allclose(
            got[f.name].to_numpy(float), want[f.name].to_numpy(float), rtol=1e-6, err_msg=f.name
        )

    # offline: the streamed rows are folded into Feast's offline store and retrieved point-in-time
    folded = fold_offline(store, OfflineSink(store.creditops_env["CREDITOPS_FEAST_DATA_DIR"]))
    assert folded["behavioural_fv"] >= len(touched)
    entity = points.rename(columns={"as_of": TIMESTAMP})
    hist = (
        store.get_historical_features(entity_df=entity, features=refs)
        .to_df()
        .set_index(JOIN_KEY)
        .loc[touched]
    )
    for f in features_in("behavioural"):
        np.testing.assert_allclose(
            hist[f.name].to_numpy(float), want[f.name].to_numpy(float), rtol=1e-6, err_msg=f.name
        )


def test_consumer_runs_with_its_own_ack_wait_whoever_created_the_stream_first(run_id):
    async def scenario() -> tuple[float, float]:
        run = f"creditops_test_{run_id}_ackwait"
        publisher = await NatsBroker(NATS_URL, run).connect()  # default ack_wait 30 s, publishes only
        try:
            await publisher.publish([b"{}"] * 3)
            from nats.js.errors import NotFoundError

            with pytest.raises(NotFoundError):
                await publisher.js.consumer_info(run, "features")
            older = await NatsBroker(NATS_URL, run, ack_wait=30).connect()  # an earlier deployment
            assert len(await older.fetch(1, timeout=2)) == 1
            first = (await older.js.consumer_info(run, "features")).config.ack_wait
            await older.close()
            current = await NatsBroker(NATS_URL, run, ack_wait=2).connect()
            assert await current.backlog() == 3  # two never delivered, one held by the earlier consumer
            now = (await current.js.consumer_info(run, "features")).config.ack_wait
            await current.close()
            return first, now
        finally:
            await publisher.close(delete=True)

    assert asyncio.run(scenario()) == (30.0, 2.0)


def test_restarted_consumer_waits_for_the_batch_a_dead_consumer_held(redis_url, run_id):
    from creditops.streaming.broker import consume
    from creditops.streaming.consumer import StreamProcessor
    from creditops.streaming.state import RedisEventState

    frame = synthetic_transactions(
        np.arange(1, 21), 60, pd.Timestamp("2026-01-01", tz="UTC"), rate=5.0, seed=1
    )
    events = encode_transactions(frame)
    client = redis.Redis.from_url(redis_url)
    state = RedisEventState(client, prefix=f"creditops_test_{run_id}:redelivery:")

    async def scenario():
        run = f"creditops_test_{run_id}_redelivery"
        publisher = await NatsBroker(NATS_URL, run).connect()
        try:
            await publisher.publish(events)
            dead = await NatsBroker(NATS_URL, run, ack_wait=1).connect()
            assert len(await dead.fetch(25, timeout=2)) == 25
            await dead.nc.close()  # gone without acknowledging, like a killed process
            restarted = await NatsBroker(NATS_URL, run, ack_wait=1).connect()  # started at once
            stats = await consume(
                restarted, StreamProcessor(state), batch_size=25, fetch_timeout=0.2, stop_when_idle=True
            )
            left = await restarted.backlog()
            await restarted.close()
            return stats, left
        finally:
            await publisher.close(delete=True)

    stats, left = asyncio.run(scenario())
    state.clear()
    client.close()
    assert (stats.events, stats.applied, stats.duplicates, left) == (len(events), len(events), 0, 0)


def test_fetch_brings_every_event_once_in_batches_of_at_most_the_size_asked(run_id):
    async def scenario() -> None:
        run = f"creditops_test_{run_id}_fetch"
        broker = await NatsBroker(NATS_URL, run, ack_wait=60).connect()
        try:
            sent = [json.dumps({"n": i}).encode() for i in range(2500)]
            await broker.publish(sent)
            sizes, got = [], []
            for _ in range(3):
                batch = await broker.fetch(1000, timeout=5)
                sizes.append(len(batch))
                got += batch
            assert sizes == [1000, 1000, 500]  # what is there, never more than asked, no status messages
            assert [m.data for m in got] == sent
            await broker.ack(got)
            assert await broker.fetch(1000, timeout=0.2) == []  # nothing there: empty once the wait ends
            assert await broker.backlog() == 0

            # nothing there when asked: events published during the wait come, each once, by this fetch or
            # the next ones
            waiting = asyncio.create_task(broker.fetch(10, timeout=2))
            await asyncio.sleep(0.3)
            late = [json.dumps({"late": i}).encode() for i in range(3)]
            await broker.publish(late)
            first = await waiting
            assert 1 <= len(first) <= 3
            rest = []
            while len(first) + len(rest) < 3:
                more = await broker.fetch(10, timeout=2)
                assert more, "a published event was never fetched"
                rest += more
            assert [m.data for m in first + rest] == late
            await broker.ack(first + rest)
            assert await broker.fetch(10, timeout=0.2) == []
            assert await broker.backlog() == 0
        finally:
            await broker.close(delete=True)

    asyncio.run(scenario())


@pytest.mark.parametrize("prefetch", [True, False])
def test_a_batch_fetched_ahead_and_not_processed_is_handed_back_at_once(redis_url, run_id, prefetch):
    from creditops.streaming.broker import consume
    from creditops.streaming.consumer import StreamProcessor
    from creditops.streaming.state import RedisEventState

    frame = synthetic_transactions(
        np.arange(1, 21), 75, pd.Timestamp("2026-01-01", tz="UTC"), rate=5.0, seed=3
    )
    events = encode_transactions(frame)
    client = redis.Redis.from_url(redis_url)
    state = RedisEventState(client, prefix=f"creditops_test_{run_id}:ahead{prefetch}:")

    async def scenario():
        run = f"creditops_test_{run_id}_ahead{int(prefetch)}"
        broker = await NatsBroker(NATS_URL, run, ack_wait=120).connect()
        try:
            await broker.publish(events)
            first = await consume(
                broker,
                StreamProcessor(state),
                batch_size=25,
                fetch_timeout=0.5,
                max_events=25,
                prefetch=prefetch,
            )
            held = await broker.backlog()
            for _ in range(40):  # the first run's acks reach the server asynchronously: let them settle
                if held <= 50:
                    break
                await asyncio.sleep(0.05)
                held = await broker.backlog()
            # the rest must come now: what the first run fetched ahead was released, not held for ack_wait
            second = await consume(
                broker,
                StreamProcessor(state),
                batch_size=25,
                stop_when_idle=True,
                idle_grace=5,
                prefetch=prefetch,
            )
            return first, held, second, await broker.backlog()
        finally:
            await broker.close(delete=True)

    first, held, second, left = asyncio.run(scenario())
    state.clear()
    client.close()
    assert (first.events, held) == (25, 50)
    assert (second.events, second.applied, second.duplicates, left) == (50, 50, 0, 0)


def test_a_batch_is_acknowledged_only_once_its_rows_are_written_offline(redis_url, run_id, tmp_path):
    from creditops.streaming.broker import consume
    from creditops.streaming.consumer import StreamProcessor
    from creditops.streaming.state import RedisEventState

    frame = synthetic_transactions(
        np.arange(1, 21), 100, pd.Timestamp("2026-01-01", tz="UTC"), rate=5.0, seed=4
    )
    events = encode_transactions(frame)
    client = redis.Redis.from_url(redis_url)
    state = RedisEventState(client, prefix=f"creditops_test_{run_id}:offline_ack:")
    sink = OfflineSink(tmp_path)

    def offline_rows() -> int:
        return sum(len(pd.read_parquet(f)) for files in sink.parts().values() for f in files)

    class Crash(Exception):
        pass

    written: list[int] = []  # rows each batch wrote online (and keeps for the offline store)
    rewritten: list[int] = []  # the same after the restart

    def crash_in_batch_3(outcome, messages):
        written.append(sum(len(t) for t in outcome.tables.values()))
        if len(written) == 3:
            raise Crash

    async def scenario():
        run = f"creditops_test_{run_id}_offline_ack"
        broker = await NatsBroker(NATS_URL, run, ack_wait=1).connect()
        try:
            await broker.publish(events)
            processor = StreamProcessor(state, offline=[sink])
            with pytest.raises(Crash):  # batches 1-2 flushed together at 50 events, batch 3 held
                await consume(
                    broker, processor, batch_size=25, flush_events=50, flush_seconds=60,
                    on_batch=crash_in_batch_3, prefetch=False,
                )  # fmt: skip
            crashed = (await broker.backlog(), offline_rows())
            restarted = await consume(
                broker, StreamProcessor(state, offline=[sink]), batch_size=25, flush_events=50,
                flush_seconds=60, stop_when_idle=True,
                on_batch=lambda o, m: rewritten.append(sum(len(t) for t in o.tables.values())),
            )  # fmt: skip
            return crashed, restarted, await broker.backlog()
        finally:
            await broker.close(delete=True)

    (held, rows_at_crash), restarted, left = asyncio.run(scenario())
    state.clear()
    client.close()
    # batch 3 (in the online store, not offline) and batch 4 (never delivered) wait; only 1-2 are offline
    assert held == 50 and rows_at_crash == written[0] + written[1]
    # the restarted consumer is redelivered batch 3 and writes it offline (again online: same rows), then 4
    assert (restarted.events, restarted.duplicates, restarted.applied, left) == (50, 25, 25, 0)
    assert len(rewritten) == 2 and rewritten[0] == written[2]
    assert offline_rows() == rows_at_crash + sum(rewritten)  # stopped idle: everything processed is offline


def test_a_failed_background_offline_write_stops_the_loop_and_acknowledges_none_of_its_batches(
    redis_url, run_id, tmp_path
):
    from creditops.streaming.broker import consume
    from creditops.streaming.consumer import StreamProcessor
    from creditops.streaming.state import RedisEventState

    events = encode_transactions(
        synthetic_transactions(np.arange(1, 21), 100, pd.Timestamp("2026-01-01", tz="UTC"), rate=5.0, seed=5)
    )
    client = redis.Redis.from_url(redis_url)
    state = RedisEventState(client, prefix=f"creditops_test_{run_id}:offline_fail:")

    class FailingSecondWrite(OfflineSink):
        calls = 0

        def write(self, tables):
            type(self).calls += 1
            if type(self).calls == 2:
                raise OSError("disk full")
            super().write(tables)

    async def scenario():
        broker = await NatsBroker(NATS_URL, f"creditops_test_{run_id}_offline_fail", ack_wait=30).connect()
        try:
            await broker.publish(events)
            with pytest.raises(OSError, match="disk full"):
                await consume(
                    broker, StreamProcessor(state, offline=[FailingSecondWrite(tmp_path)]), batch_size=25,
                    flush_events=50, flush_seconds=60, prefetch=False,
                )  # fmt: skip
            return await broker.backlog()
        finally:
            await broker.close(delete=True)

    left = asyncio.run(scenario())
    state.clear()
    client.close()
    # the first flush (batches 1-2) was written and acknowledged; the second (3-4) failed in its worker
    # thread: the loop raised, and those batches and any after them stay for redelivery
    assert FailingSecondWrite.calls == 2 and left == 50
