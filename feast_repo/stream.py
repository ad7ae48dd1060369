"""Feast adapters of the stream processor (:mod:`creditops.streaming`): online sink, offline sink, context.

* :class:`OnlineSink` writes recomputed rows into Feast's Redis online store in Feast's exact layout (the
  bulk writer's bytes, built row by row for a batch's few rows: :class:`feast_repo.bulk.RowWriter`), one
  pipelined write per batch. The stream is the authority
  for the views it feeds: a row replaces what is stored even when its event time is not newer (a late
  transaction changes the window of the applicant's newest event).
* :class:`OfflineSink` keeps every written row for the offline store, so training sees what serving saw:
  one Parquet part file per view and flush (the rows of the batches since the last one) under
  ``<data_dir>/stream/<view>/`` (written before those batches are acknowledged; renamed into place, so a
  crash leaves no half file), folded into Feast's offline store by :func:`fold_offline`
  (``store.write_to_offline_store``, then the parts are removed).
* :func:`context_reader` reads the identity and bureau features the derived features need, and
  :func:`known_applicants` tells which applicants the online store holds (the stream's ``orphan`` rule).

The views fed by the stream are declared stream-fed to Feast by a ``PushSource`` over each view's batch
source (:func:`feast_repo.definitions.push_sources`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast import FeatureStore
from feast.infra.online_stores.helpers import compute_versioned_name
from feast.infra.online_stores.redis import RedisOnlineStore

from creditops.features.registry import DERIVED_SOURCES, JOIN_KEY
from creditops.streaming.columns import Columns, as_frame
from feast_repo.bulk import (
    RowWriter,
    _RedisWriter,
    _ViewEncoder,
    _written,
    bulk_redis,
    entity_key_prefix,
    supported,
)
from feast_repo.direct import RedisServiceReader

_FAR = pd.Timestamp("2262-01-01", tz="UTC").to_pydatetime()
_EPOCH = pd.Timestamp("1970-01-01", tz="UTC").to_pydatetime()


class OnlineSink:
    """Recomputed feature rows -> the online store (views ``<group>_fv``).

    On Redis the rows go straight into Feast's hashes; any other online store (the embedded SQLite) is
    written through Feast's ``write_to_online_store``.
    """

    def __init__(self, store: FeatureStore):
        self.store = store
        self.redis = bulk_redis(store)
        self.client = RedisOnlineStore()._get_client(store.config.online_store) if self.redis else None
        versioning = bool(getattr(store.config.registry, "enable_online_feature_view_versioning", False))
        self.views = {}
        for fv in store.list_feature_views():
            if fv.name.endswith("_fv") and (supported(fv) or not self.redis):
                self.views[fv.name[: -len("_fv")]] = (fv, compute_versioned_name(fv, versioning))
        # the row writer for the views of the stream's join key (the column writer stays for anything else)
        keyed = {g: v for g, v in self.views.items() if v[0].entity_columns[0].name == JOIN_KEY}
        self.rows = RowWriter(store, keyed, client=self.client) if self.redis and keyed else None

    def write(self, tables: Mapping[str, Columns] | Mapping[str, pd.DataFrame]) -> None:
        """Write each group's rows (latest per applicant) into its view, all views of an applicant at once."""
        self.send(tables)()

    def send(self, tables: Mapping[str, Columns] | Mapping[str, pd.DataFrame]) -> Callable[[], None]:
        """:meth:`write` in two steps: the rows are written once the returned call returned (call it).

        On Redis the commands are sent and the returned call reads their replies
        (:meth:`~feast_repo.bulk.RowWriter.send`); any other way writes here.
        """
        if not self.redis:
            for group, table in tables.items():
                if group in self.views and len(table):
                    table = as_frame(table)
                    latest = table.drop_duplicates(table.columns[0], keep="last")
                    self.store.write_to_online_store(f"{group}_fv", latest, allow_registry_cache=True)
            return _written
        groups = {g for g, t in tables.items() if g in self.views and len(t)}
        rows = self.rows
        if rows is not None and groups <= rows.encoders.keys():
            finish = rows.send(tables, _EPOCH, _FAR)
            if finish is not None:
                return finish
        encoders = [
            _ViewEncoder(self.views[g][0], self.views[g][1], as_frame(t), _EPOCH, _FAR)
            for g, t in tables.items()
            if g in self.views and len(t)
        ]
        if encoders:
            writer = _RedisWriter(self.store, encoders, client=self.client, dedup=False)
            writer.run(connections=1, chunk_entities=max(1, len(writer.ids)))
        return _written

    def close(self) -> None:
        """Close the Redis connection."""
        if self.client is not None:
            self.client.close()


class OfflineSink:
    """Recomputed rows -> Parquet part files, folded into the offline store by :func:`fold_offline`.

    A part is written before its batches are acknowledged, on the consumer's loop (the next batch waits
    for it): parts are plain (no compression, dictionary or statistics), which halves the time of a default
    Parquet write; :func:`fold_offline` compacts them into the offline store anyway.
    """

    def __init__(self, data_dir: str | Path):
        self.root = Path(data_dir) / "stream"

    def write(self, tables: Mapping[str, Columns] | Mapping[str, pd.DataFrame]) -> None:
        """One part file per view and write, named by its content (the same rows rewrite the same file)."""
        for group, table in tables.items():
            if not len(table):
                continue
            folder = self.root / f"{group}_fv"
            folder.mkdir(parents=True, exist_ok=True)
            part = _parquet_bytes(table)  # deterministic: the same rows give the same bytes and name
            target = folder / f"part-{hashlib.sha256(part).hexdigest()[:24]}.parquet"
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(part)
            os.replace(tmp, target)

    def parts(self) -> dict[str, list[Path]]:
        """View name -> its pending part files."""
        if not self.root.exists():
            return {}
        return {d.name: sorted(d.glob("part-*.parquet")) for d in sorted(self.root.iterdir()) if d.is_dir()}


def _arrow(table: Columns | pd.DataFrame) -> pa.Table:
    """``table`` as an Arrow table; columns go straight from their arrays (timestamps UTC), no frame."""
    if not isinstance(table, Columns):
        return pa.Table.from_pandas(table, preserve_index=False)
    utc = pa.timestamp("ns", tz="UTC")
    return pa.table({c: pa.array(v, type=utc) if v.dtype.kind == "M" else v for c, v in table.data.items()})


def _parquet_bytes(table: Columns | pd.DataFrame) -> bytes:
    """A plain Parquet file of ``table`` (no compression, dictionary or statistics), in memory."""
    sink = pa.BufferOutputStream()
    plain = {"compression": "none", "use_dictionary": False, "write_statistics": False}
    pq.write_table(_arrow(table), sink, **plain)
    return sink.getvalue().to_pybytes()


def fold_offline(store: FeatureStore, sink: OfflineSink) -> dict[str, int]:
    """Append the pending streamed rows to each view's offline source; returns rows per view."""
    out = {}
    for view, files in sink.parts().items():
        if not files:
            continue
        frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True).drop_duplicates(
            ignore_index=True
        )
        fv = store.get_feature_view(view)
        frame = frame[
            [c.name for c in fv.entity_columns]
            + [fv.batch_source.timestamp_field]
            + [f.name for f in fv.features]
        ]
        store.write_to_offline_store(view, frame, allow_registry_cache=False)
        for f in files:
            f.unlink()
        out[view] = len(frame)
    return out


def context_reader(
    store: FeatureStore,
    groups: tuple[str, ...] = ("identity", "bureau"),
    features: Collection[str] | None = None,
):
    """Reader: ids -> rows of the features of ``groups`` from the online store (derived inputs).

    ``features`` limits the read to those (default: the ones the derived features are computed from,
    :data:`creditops.features.registry.DERIVED_SOURCES`, 8 of the 20 identity and bureau features). Each
    field of a Feast hash is found by a scan of the hash, so the server's time grows with the fields read.
    """
    if features is None:
        features = {c for sources in DERIVED_SOURCES.values() for c in sources}
    views = [store.get_feature_view(f"{g}_fv") for g in groups]
    names = [f.name for fv in views for f in fv.features if f.name in features]
    if bulk_redis(store):
        reader = RedisServiceReader(store, views, names)

        def read(ids: np.ndarray) -> Columns:
            values = reader.many([int(i) for i in ids])
            return Columns({name: values[:, k] for k, name in enumerate(names)})

        return read
    refs = [f"{fv.name}:{f.name}" for fv in views for f in fv.features]

    def read_sdk(ids: np.ndarray) -> pd.DataFrame:
        rows = [{"applicant_id": int(i)} for i in ids]
        got = store.get_online_features(features=refs, entity_rows=rows).to_df()
        return got[names].astype(float).reset_index(drop=True)

    return read_sdk


def known_applicants(store: FeatureStore, join_key: str = "applicant_id"):
    """Reader: ids -> mask of applicants with identity features in the online store."""
    if not bulk_redis(store):
        feature = f"identity_fv:{store.get_feature_view('identity_fv').features[0].name}"

        def known_sdk(ids: np.ndarray) -> np.ndarray:
            got = store.get_online_features(features=[feature], entity_rows=[{join_key: int(i)} for i in ids])
            return got.to_df().iloc[:, -1].notna().to_numpy()

        return known_sdk
    from creditops.streaming.state import exists_many

    config = store.config
    prefix = entity_key_prefix(config, join_key)
    project = config.project.encode("utf-8")
    client = RedisOnlineStore()._get_client(config.online_store)

    def known(ids: np.ndarray) -> np.ndarray:
        return exists_many(
            client, [prefix + int(i).to_bytes(8, "little", signed=True) + project for i in ids]
        )

    return known


def stream_processor(settings, store: FeatureStore, client=None):
    """The processor of ``settings.streaming`` over ``store``: Redis state, both sinks, context."""
    import redis

    from creditops.streaming.consumer import StreamProcessor
    from creditops.streaming.state import RedisEventState

    cfg = settings.streaming
    client = client or redis.Redis.from_url(cfg.state_redis_url)
    state = RedisEventState(client, prefix=cfg.state_prefix)
    return StreamProcessor(
        state,
        [OnlineSink(store)],
        context=context_reader(store),
        known_applicants=known_applicants(store),
        offline=[OfflineSink(store.creditops_env["CREDITOPS_FEAST_DATA_DIR"])],
    )


async def run(
    settings, *, stop_when_idle: bool = False, max_events: int | None = None, on_batch=None, should_stop=None
):
    """Consume ``settings.streaming``'s stream into the feature store of ``settings.feast`` until stopped."""
    from creditops.streaming.broker import NatsBroker, consume
    from feast_repo.store import open_store

    cfg = settings.streaming
    store = open_store(config=settings.feast, data_dir=settings.feast.data_dir)
    processor = stream_processor(settings, store)
    broker = await NatsBroker(cfg.url, cfg.stream, cfg.durable, cfg.ack_wait_seconds).connect()
    try:
        return await consume(
            broker,
            processor,
            batch_size=cfg.batch_size,
            stop_when_idle=stop_when_idle,
            max_events=max_events,
            on_batch=on_batch,
            should_stop=should_stop,
            flush_events=cfg.offline_flush_events,
            flush_seconds=cfg.offline_flush_seconds,
        )
    finally:
        await broker.close()
        for sink in processor.sinks:
            if hasattr(sink, "close"):
                sink.close()


def demo_stream(settings, summary: dict, console, applicant: int | None = None) -> int:
    """`make demo`'s last step: a live applicant whose score changes after new transactions arrive.

    Scores one applicant over HTTP, streams a burst of stressed transactions (late payments, overdraft
    fees, a smaller salary) through NATS JetStream and the consumer into the online store, and scores the
    applicant again. Skipped, with the reason, when the broker or the Redis state is not reachable.
    """
    import asyncio

    import httpx
    import redis

    from creditops.data.synthetic import generate_world
    from creditops.serve_local import running_predictor
    from creditops.streaming.broker import NatsBroker
    from creditops.streaming.events import encode_transactions
    from creditops.streaming.replay import StreamDrift, synthetic_transactions
    from creditops.streaming.state import RedisEventState
    from feast_repo.store import open_store

    cfg = settings.streaming
    if settings.data.source != "synthetic":
        console.print("streaming demo skipped: it replays the synthetic world's transactions")
        return 0
    try:
        client = redis.Redis.from_url(cfg.state_redis_url)
        client.ping()
        asyncio.run(_drop(cfg))  # a fresh stream for this demo (and a check that the broker answers)
    except Exception as exc:  # noqa: BLE001 - any connection failure means: skip this step, say why
        console.print(
            f"streaming demo skipped: broker or state not reachable ({exc.__class__.__name__}: {exc})"
        )
        return 0
    console.rule("streaming: new transactions update the online features")
    world = generate_world(settings.data.n_applicants, seed=settings.data.seed)
    state = RedisEventState(client, prefix=cfg.state_prefix)
    state.clear()
    seeded = state.seed(world.transactions)
    console.print(f"stream state seeded with the snapshot's {seeded:,} transactions")
    store = open_store(config=settings.feast, data_dir=settings.feast.data_dir)
    model_uri = f"models:/{settings.mlflow.model_name}/{summary['registered_version']}"
    if applicant is None:
        approved = world.applications.sort_values("income", ascending=False)
        applicant = int(approved["applicant_id"].iloc[len(approved) // 10])
    burst = synthetic_transactions(
        np.array([applicant]),
        40,
        world.as_of + pd.Timedelta(days=1),
        rate=1 / 3600,
        seed=5,
        drift=StreamDrift(),
    )
    with running_predictor(settings, model_uri) as base:
        url = f"{base}/v1/models/{settings.serving.model_name}:predict"

        def score() -> dict:
            body = {"instances": [{"applicant_id": applicant}]}
            got = httpx.post(url, json=body, headers={"X-Caller-Id": "demo-stream"}, timeout=30)
            got.raise_for_status()
            return got.json()["predictions"][0]

        before = score()

        async def publish() -> None:
            b = await NatsBroker(cfg.url, cfg.stream, cfg.durable).connect()
            await b.publish(encode_transactions(burst))
            await b.close()

        asyncio.run(publish())
        stats = asyncio.run(run(settings, stop_when_idle=True))
        after = score()
    console.print(
        f"applicant {applicant}: {len(burst)} new transactions streamed ({stats.applied} applied, "
        f"{stats.dead_lettered} dead-lettered) in {stats.seconds:.2f} s"
    )
    console.print(
        f"  before: PD {before['pd']:.3f}, score {before['score']:.0f}, {before['decision']}\n"
        f"  after:  PD {after['pd']:.3f}, score {after['score']:.0f}, {after['decision']}; reasons: "
        + "; ".join(r["reason"] for r in after.get("reasons", [])[:3])
    )
    asyncio.run(_drop(cfg))
    del store
    return 0


async def _drop(cfg) -> None:
    from creditops.streaming.broker import NatsBroker

    broker = await NatsBroker(cfg.url, cfg.stream, cfg.durable).connect()
    await broker.close(delete=True)
