"""Bulk Redis materialization writes exactly what Feast's own ``materialize`` writes (real Redis)."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest
import redis
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp

from creditops.config import FeastConfig
from creditops.data.synthetic import generate_world
from creditops.features.build import build_feature_tables
from creditops.features.registry import JOIN_KEY, TIMESTAMP, features_in
from feast_repo import bulk
from feast_repo import store as fs

AFTER_END_ID = 9_000_001  # only rows after ``end``
BEFORE_START_ID = 9_000_002  # only rows before the materialization window
STALE_BUREAU_ID = 9_000_003  # bureau row older than the view TTL but inside the window: Feast loads it


@pytest.mark.parametrize(
    ("value_type", "values", "field"),
    [
        (ValueType.DOUBLE, [0.0, -0.0, 1.5, -1e300, np.inf, -np.inf, np.nan, 5e-324], "double_val"),
        (ValueType.FLOAT, [0.0, 1.1, -3.4e38, np.nan], "float_val"),
        (ValueType.INT64, [0, 1, 127, 128, -1, 2**63 - 1, -(2**63), 300], "int64_val"),
        (ValueType.INT32, [0, -1, 2**31 - 1, -(2**31)], "int32_val"),
        (ValueType.BOOL, [True, False], "bool_val"),
    ],
)
def test_value_bytes_match_protobuf(value_type, values, field):
    payload, plen = bulk._value_payload(value_type, pd.Series(values))
    for row, value in enumerate(values):
        expected = b"" if pd.isna(value) else ValueProto(**{field: value}).SerializeToString()
        assert payload[row, : plen[row]].tobytes() == expected, value


_VALUE_CASES = [
    (ValueType.DOUBLE, [0.0, -0.0, 1.5, -1e300, np.inf, -np.inf, np.nan, 5e-324], "double_val"),
    (ValueType.DOUBLE, [0.0, 2.5, -1e300, np.inf], "double_val"),  # no null: one fixed-width block
    (ValueType.FLOAT, [0.0, 1.1, -3.4e38, np.nan], "float_val"),
    (ValueType.FLOAT, [0.0, 1.1, -3.4e38], "float_val"),
    (ValueType.INT64, [0, 1, 127, 128, -1, 2**63 - 1, -(2**63), 300], "int64_val"),
    (ValueType.INT64, [0, 1, 127, 5], "int64_val"),  # one-byte varints: fixed width
    (ValueType.INT64, [0, 128, 200, 255], "int64_val"),  # a byte each, but 128 on need two varint bytes
    (ValueType.INT64, [2.9, np.nan, -2.9, 127.5], "int64_val"),  # a float column: null, or truncated
    (ValueType.INT32, [0, -1, 2**31 - 1, -(2**31)], "int32_val"),
    (ValueType.BOOL, [True, False], "bool_val"),
    (ValueType.BOOL, [1.0, np.nan, 0.0], "bool_val"),
]


@pytest.mark.parametrize(("value_type", "values", "field"), _VALUE_CASES)
def test_row_bytes_match_protobuf(value_type, values, field):
    """The stream's row-by-row encoding (and its fixed-width block) gives Feast's bytes, value by value."""
    column = np.asarray(values)
    name = b"$4\r\nname\r\n"
    cast = {"int64_val": int, "int32_val": int, "bool_val": bool}.get(field, float)
    expected = [b"" if pd.isna(v) else ValueProto(**{field: cast(v)}).SerializeToString() for v in values]
    want = [name + b"$%d\r\n%s\r\n" % (len(e), e) for e in expected]
    assert bulk._resp_values(name, value_type, column) == want
    cell = bulk._fixed_cell(value_type, column)
    if len({len(e) for e in expected}) > 1 or any(pd.isna(v) for v in values):
        assert cell is None
    else:  # the head and the value bytes of the fixed-width block are the same bytes
        head, raw = cell
        assert [name + head + raw[i].tobytes() + b"\r\n" for i in range(len(values))] == want


@pytest.mark.parametrize(
    "ts",
    [
        "1970-01-01",
        "1970-01-01 00:00:00.000001",
        "2026-01-01 12:34:56.789123456",
        "2026-01-01 00:00:01",
        "1969-12-31 23:59:59.5",
    ],
)
@pytest.mark.parametrize("rows", [1, 64])  # the per-row varints, then the column-wise path
def test_row_timestamp_bytes_match_feast(ts, rows):
    stamp = pd.Timestamp(ts, tz="UTC")
    expected = Timestamp()
    expected.FromDatetime(stamp.to_pydatetime(warn=False))
    payload = expected.SerializeToString()
    other = pd.Timestamp("2026-11-30 10:00:00.25", tz="UTC")  # a neighbour of another length
    got = bulk._resp_timestamps(b"f", np.array([stamp.value] * rows + [other.value], dtype=np.int64))
    expected.FromDatetime(other.to_pydatetime(warn=False))
    tail = expected.SerializeToString()
    assert got == [b"f$%d\r\n%s\r\n" % (len(payload), payload)] * rows + [
        b"f$%d\r\n%s\r\n" % (len(tail), tail)
    ]


def test_nullable_int_column_is_null_or_truncated_like_feast():
    payload, plen = bulk._value_payload(ValueType.INT64, pd.Series([2.9, np.nan, -2.9]))
    got = [payload[i, : plen[i]].tobytes() for i in range(3)]
    assert got == [
        ValueProto(int64_val=2).SerializeToString(),
        b"",
        ValueProto(int64_val=-2).SerializeToString(),
    ]


@pytest.mark.parametrize(
    "ts",
    ["1970-01-01", "1970-01-01 00:00:00.000001", "2026-01-01 12:34:56.789123456", "1969-12-31 23:59:59.5"],
)
def test_timestamp_bytes_match_feast(ts):
    stamp = pd.Timestamp(ts, tz="UTC")
    payload, plen = bulk._timestamp_payload(np.array([stamp.value], dtype=np.int64))
    expected = Timestamp()
    expected.FromDatetime(stamp.to_pydatetime(warn=False))  # what Feast's _coerce_datetime hands over
    assert payload[0, : plen[0]].tobytes() == expected.SerializeToString()


def _edge_cases(tables: dict[str, pd.DataFrame], end: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """NaNs, extreme values and applicants that materialization must leave out (or keep, like Feast)."""
    out = {}
    for group, table in tables.items():
        table = table.copy()
        latest = table.sort_values(TIMESTAMP).groupby(JOIN_KEY).tail(1).index
        floats = [f.name for f in features_in(group) if f.dtype == "float"]
        ints = [f.name for f in features_in(group) if f.dtype == "int"]
        table.loc[latest[:5], floats[0]] = np.nan
        table.loc[latest[5:8], floats[-1]] = [0.0, -0.0, np.inf]
        if ints:
            table.loc[latest[8:11], ints[0]] = [-7, 2**62, 0]
        table.loc[latest[11], TIMESTAMP] = end - pd.Timedelta(days=3, nanoseconds=1500)
        template = table.iloc[[0]]
        extra = [
            template.assign(**{JOIN_KEY: AFTER_END_ID, TIMESTAMP: end + pd.Timedelta(days=1)}),
            template.assign(**{JOIN_KEY: BEFORE_START_ID, TIMESTAMP: end - pd.Timedelta(days=4000)}),
        ]
        if group == "bureau":
            extra.append(
                template.assign(**{JOIN_KEY: STALE_BUREAU_ID, TIMESTAMP: end - pd.Timedelta(days=100)})
            )
        out[group] = pd.concat([table, *extra], ignore_index=True)
    return out


@pytest.fixture(scope="module")
def world():
    return generate_world(300, seed=5)


@pytest.fixture(scope="module")
def tables(world):
    return _edge_cases(build_feature_tables(world), world.as_of)


@pytest.fixture(scope="module")
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def stores(redis_url, redis_client, tables, tmp_path_factory):
    """Project A loaded by Feast's materialize, project B by materialize_redis (same data, same end)."""
    with redis_projects(
        redis_url, "creditops_bulk", ("feast", "bulk"), tmp_path_factory.mktemp, tables
    ) as made:
        yield made


@contextmanager
def redis_projects(
    redis_url: str, prefix: str, names: tuple[str, ...], data_dir: Callable[[str], Path], tables
) -> Iterator[dict[str, Any]]:
    """Feast projects on the test Redis (one per name, ``tables`` offline, applied), torn down, keys too."""
    rd = urlparse(redis_url)
    run = f"{prefix}_{uuid.uuid4().hex[:8]}"
    made: dict[str, Any] = {}
    try:
        for name in names:
            config = FeastConfig(
                project=f"{run}_{name}",
                online_store="redis",
                redis_connection=f"{rd.hostname}:{rd.port or 6379},db={(rd.path or '/0').lstrip('/') or 0}",
            )
            made[name] = fs.open_store(config=config, data_dir=data_dir(name))
            fs.write_offline(tables, made[name])
            fs.apply(made[name])
        yield made
    finally:
        for store in made.values():
            fs.teardown(store)
        client = redis.Redis.from_url(redis_url)
        leftovers = list(client.scan_iter(match=f"*{run}*", count=1000))
        if leftovers:
            client.delete(*leftovers)
        client.close()


@pytest.fixture(scope="module")
def loaded(stores, tables, world):
    end = world.as_of.to_pydatetime()
    fs.materialize(stores["feast"], end)
    result = bulk.materialize_redis(stores["bulk"], tables, end, chunk_entities=97)  # several chunks
    return stores, result


def _hashes(client: redis.Redis, project: str) -> dict[bytes, dict[bytes, bytes]]:
    suffix = project.encode()
    keys = [k for k in client.scan_iter(match=f"*{project}", count=1000) if k.endswith(suffix)]
    return {k[: -len(suffix)]: client.hgetall(k) for k in keys}


def test_raw_redis_hashes_are_identical(loaded, redis_client):
    stores, result = loaded
    feast_hashes = _hashes(redis_client, stores["feast"].project)
    bulk_hashes = _hashes(redis_client, stores["bulk"].project)
    assert result.fallback == []
    assert len(feast_hashes) > 300
    assert bulk_hashes.keys() == feast_hashes.keys()
    for key, fields in feast_hashes.items():
        assert bulk_hashes[key] == fields, key
    assert sum(v == b"" for h in bulk_hashes.values() for v in h.values()) > 0  # NaN stored as null


def test_online_reads_are_identical(loaded, world):
    stores, _ = loaded
    ids = [*world.applications[JOIN_KEY].tolist(), AFTER_END_ID, BEFORE_START_ID, STALE_BUREAU_ID]
    expected = fs.online_features(stores["feast"], ids, direct=False)
    got = fs.online_features(stores["bulk"], ids, direct=False)
    pd.testing.assert_frame_equal(got, expected)
    by_id = got.set_index(JOIN_KEY)
    assert by_id.loc[[AFTER_END_ID, BEFORE_START_ID]].isna().all().all()
    assert (
        by_id.loc[STALE_BUREAU_ID, "credit_score"]
        == expected.set_index(JOIN_KEY).loc[STALE_BUREAU_ID, "credit_score"]
    )
    first_float = [f.name for f in features_in("identity") if f.dtype == "float"][0]  # set NaN in _edge_cases
    assert by_id[first_float].isna().sum() >= 5


@pytest.mark.parametrize("name", ["feast", "bulk"])
def test_direct_reader_equals_get_online_features(loaded, world, name):
    store = loaded[0][name]
    lookup = fs.OnlineFeatures(store)
    assert lookup.direct is not None  # a Redis store with the built-in service: the direct path
    ids = [*world.applications[JOIN_KEY].tolist(), AFTER_END_ID, BEFORE_START_ID, STALE_BUREAU_ID, 123456789]
    expected = fs.online_features(store, ids, direct=False)
    got = fs.online_features(store, ids)
    pd.testing.assert_frame_equal(got, expected)
    assert got.iloc[:, 1:].isna().any().any() and np.isinf(got.iloc[:, 1:].to_numpy()).any()
    assert got.iloc[-1, 1:].isna().all()  # unknown applicant: all NaN, as Feast
    # the single-applicant path (no pipeline; a row decoded inline), each row: nulls, inf, unknown
    for k, applicant in enumerate(ids):
        np.testing.assert_array_equal(lookup([applicant]), expected.iloc[[k], 1:].to_numpy(np.float64))
    # the stream's batch path (a script call from 100 applicants on, a pipeline below; numpy decoding)
    # reads the same, NaN and inf included
    assert len(ids) > 100
    many = lookup.direct.many([int(i) for i in ids])
    np.testing.assert_array_equal(many, expected.iloc[:, 1:].to_numpy(np.float64))
    np.testing.assert_array_equal(many, lookup.direct([int(i) for i in ids]))
    few = [int(i) for i in ids[-60:]]  # the edge cases and the unknown applicant among them
    np.testing.assert_array_equal(lookup.direct.many(few), expected.iloc[-60:, 1:].to_numpy(np.float64))
    assert lookup.direct.many([]).shape == (0, len(lookup.direct.fields))


@pytest.mark.parametrize(
    "value",
    [
        ValueProto(double_val=-2.5),
        ValueProto(float_val=1.25),
        ValueProto(int64_val=-(2**40)),
        ValueProto(int32_val=7),
        ValueProto(bool_val=True),
        ValueProto(),
    ],
)
def test_decode_value_matches_protobuf(value):
    from feast.type_map import feast_value_type_to_python_type

    from feast_repo.direct import decode_value

    expected = feast_value_type_to_python_type(value)
    got = decode_value(value.SerializeToString())
    assert (np.isnan(got) and expected is None) or got == float(expected)


def test_decode_values_and_row_match_decode_value_value_by_value():
    from feast_repo.direct import decode_row, decode_value, decode_values

    values = [
        ValueProto(double_val=-2.5),
        ValueProto(float_val=1.25),
        ValueProto(float_val=0.1),  # a float32 widened exactly as struct does
        ValueProto(double_val=float("inf")),
        ValueProto(int64_val=-(2**40)),
        ValueProto(int64_val=2**49),  # 9 bytes like a double, another tag: must not be read as one
        ValueProto(int32_val=7),  # 2 bytes
        ValueProto(int32_val=2**27),  # 5 bytes like a float, another tag
        ValueProto(int64_val=-1),  # 10-byte varint
        ValueProto(int64_val=2**63 - 1),
        ValueProto(int64_val=2**53 + 1),  # rounds to a double like float() does
        ValueProto(int32_val=-5),
        ValueProto(int64_val=0),
        ValueProto(bool_val=True),
        ValueProto(bool_val=False),
        ValueProto(),
    ]
    raws = [v.SerializeToString() for v in values] + [None, b""]
    raws.append(bytes([0x38, 0x02]))  # a bool varint of 2: protobuf reads True; not taken as the number 2
    raws.append(bytes([0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]))  # int32 of 2**32-1: protobuf wraps it to -1
    assert {len(raws[5]), len(raws[7])} == {9, 5}
    expected = np.array([decode_value(r) for r in raws])
    np.testing.assert_array_equal(decode_values(raws), expected)
    assert decode_values(raws)[5] == float(2**49) and decode_values(raws)[7] == float(2**27)
    assert list(decode_values(raws)[-2:]) == [1.0, -1.0]
    assert decode_values([]).shape == (0,)
    np.testing.assert_array_equal(decode_row(raws), expected)  # the request path's row decoder
    assert decode_row(raws)[-2:].tolist() == [1.0, -1.0] and decode_row([]).shape == (0,)


def test_direct_reader_not_used_off_redis(tables, world, tmp_path):
    store = fs.open_store(config=FeastConfig(project=f"direct_{uuid.uuid4().hex[:6]}"), data_dir=tmp_path)
    fs.apply(store)
    assert fs.OnlineFeatures(store).direct is None


def test_materialization_intervals_are_recorded(loaded):
    stores, _ = loaded
    for name in ("feast", "bulk"):
        store = stores[name]
        intervals = {fv.name: fv.materialization_intervals for fv in store.list_feature_views()}
        assert all(len(v) == 1 for v in intervals.values()), intervals
    feast_end = {fv.name: fv.materialization_intervals[0][1] for fv in stores["feast"].list_feature_views()}
    bulk_end = {fv.name: fv.materialization_intervals[0][1] for fv in stores["bulk"].list_feature_views()}
    assert bulk_end == feast_end


def test_reloading_skips_rows_that_are_not_newer(loaded, tables, world, redis_client):
    stores, _ = loaded
    before = _hashes(redis_client, stores["bulk"].project)
    result = bulk.materialize_redis(stores["bulk"], tables, world.as_of.to_pydatetime())
    assert set(result.written.values()) == {0}
    # a newer row for one applicant goes through
    newer = {g: t.copy() for g, t in tables.items()}
    i = newer["bureau"][JOIN_KEY].iloc[0]
    stamp = world.as_of + pd.Timedelta(hours=1)
    newer["bureau"] = pd.concat(
        [newer["bureau"], newer["bureau"].iloc[[0]].assign(**{TIMESTAMP: stamp, "credit_score": 811})]
    )
    result = bulk.materialize_redis(stores["bulk"], newer, (world.as_of + timedelta(hours=2)).to_pydatetime())
    assert result.written["bureau_fv"] == 1 and result.written["identity_fv"] == 0
    assert fs.online_features(stores["bulk"], [int(i)])["credit_score"].tolist() == [811]
    after = _hashes(redis_client, stores["bulk"].project)
    assert {k for k in after if after[k] != before[k]} == {
        k for k in after if k.endswith(np.int64(i).tobytes())
    }


def test_non_redis_store_falls_back_to_feast(tables, world, tmp_path):
    store = fs.open_store(
        config=FeastConfig(project=f"creditops_bulk_{uuid.uuid4().hex[:8]}"), data_dir=tmp_path
    )
    try:
        fs.write_offline(tables, store)
        fs.apply(store)
        result = bulk.materialize_redis(store, tables, world.as_of.to_pydatetime())
        assert sorted(result.fallback) == sorted(f"{g}_fv" for g in tables) and result.written == {}
        online = fs.online_features(store, world.applications[JOIN_KEY].head(5).tolist())
        assert online["credit_score"].notna().all()
    finally:
        fs.teardown(store)


def test_key_ttl_is_set_like_feast(redis_url, redis_client, tables, world, tmp_path):
    rd = urlparse(redis_url)
    project = f"creditops_bulk_{uuid.uuid4().hex[:8]}"
    config = FeastConfig(
        project=project,
        online_store="redis",
        redis_connection=f"{rd.hostname}:{rd.port or 6379},db={(rd.path or '/0').lstrip('/') or 0}",
    )
    store = fs.open_store(config=config, data_dir=tmp_path)
    store.config.online_store.key_ttl_seconds = 3600
    try:
        fs.apply(store)
        bulk.materialize_redis(store, tables, world.as_of.to_pydatetime())
        keys = list(redis_client.scan_iter(match=f"*{project}", count=1000))
        assert keys and all(0 < redis_client.ttl(k) <= 3600 for k in keys)
        assert (
            fs.online_features(store, world.applications[JOIN_KEY].head(3).tolist())["income"].notna().all()
        )
    finally:
        fs.teardown(store)
        leftovers = list(redis_client.scan_iter(match=f"*{project}*", count=1000))
        if leftovers:
            redis_client.delete(*leftovers)


def test_row_writer_leaves_the_hashes_of_the_column_writer(redis_url, redis_client, tables, world, tmp_path):
    """The stream's RowWriter and the bulk writer without dedup (what the stream used) write the same hashes.

    The tables hold several rows per applicant (the latest in the window wins), rows outside the window,
    NaNs, infinities, negative and large ints: both the fixed-width block and the per-value path are used.
    """
    from feast.infra.online_stores.helpers import compute_versioned_name

    end = world.as_of
    start = end - pd.Timedelta(days=30)
    with redis_projects(redis_url, "creditops_rows", ("columns", "rows"), tmp_path.joinpath, tables) as made:
        groups = ("identity", "behavioural", "derived")
        views = {}
        for name, store in made.items():
            fvs = {g: store.get_feature_view(f"{g}_fv") for g in groups}
            views[name] = {g: (fv, compute_versioned_name(fv, False)) for g, fv in fvs.items()}
        encoders = [bulk._ViewEncoder(*views["columns"][g], tables[g], start, end) for g in groups]
        bulk._RedisWriter(made["columns"], encoders, dedup=False).run(connections=1, chunk_entities=10**6)
        assert bulk.RowWriter(made["rows"], views["rows"]).write({g: tables[g] for g in groups}, start, end)
        columns = _hashes(redis_client, made["columns"].project)
        rows = _hashes(redis_client, made["rows"].project)
        inside = set()
        for g in groups:
            ts = tables[g][TIMESTAMP]
            inside |= set(tables[g].loc[(ts >= start) & (ts <= end), JOIN_KEY].tolist())
        assert AFTER_END_ID not in inside and len(inside) > 250
        assert len(columns) == len(inside)
        assert rows == columns
        assert sum(v == b"" for h in rows.values() for v in h.values()) > 0  # NaN stored as null


def test_row_writer_send_writes_columns_as_frames_and_raises_an_error_reply_on_confirm(
    redis_url, redis_client, tables, world, tmp_path
):
    """The stream's path: Columns written in two steps (send, then confirm) leave the frames' hashes; an
    error reply is raised by the confirming call and its connection is not handed back for reuse."""
    import redis as redis_lib
    from feast.infra.online_stores.helpers import compute_versioned_name

    from creditops.streaming.columns import Columns

    end = world.as_of
    start = end - pd.Timedelta(days=30)
    groups = ("identity", "behavioural", "derived")
    with redis_projects(
        redis_url, "creditops_send", ("frames", "columns"), tmp_path.joinpath, tables
    ) as made:
        writers = {}
        for name, store in made.items():
            fvs = {g: store.get_feature_view(f"{g}_fv") for g in groups}
            writers[name] = bulk.RowWriter(
                store, {g: (fv, compute_versioned_name(fv, False)) for g, fv in fvs.items()}
            )
        assert writers["frames"].write({g: tables[g] for g in groups}, start, end)
        finish = writers["columns"].send({g: Columns.of(tables[g]) for g in groups}, start, end)
        finish()
        assert _hashes(redis_client, made["columns"].project) == _hashes(redis_client, made["frames"].project)
        # one applicant's key is not a hash: its HSET fails, and so does the confirming call
        writer = writers["columns"]
        victim = int(tables["behavioural"][JOIN_KEY].iloc[0])
        key = writer.key_prefix + struct.pack("<q", victim) + writer.project
        redis_client.delete(key)
        redis_client.set(key, b"not a hash")
        pool = writer.client.connection_pool
        finish = writer.send({g: Columns.of(tables[g]) for g in groups}, start, end)
        with pytest.raises(redis_lib.exceptions.ResponseError, match="WRONGTYPE"):
            finish()
        assert pool._in_use_connections == set()  # handed back (disconnected: its other replies unread)
        redis_client.delete(key)
        assert writer.write({g: tables[g] for g in groups}, start, end)  # the next write is clean
        assert _hashes(redis_client, made["columns"].project) == _hashes(redis_client, made["frames"].project)
