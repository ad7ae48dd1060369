"""Bulk materialization into Feast's Redis online store: Feast's bytes, built with numpy.

``store.materialize`` turns every value into a ``ValueProto`` in Python and sends one HSET per entity and
view; at 500k applicants that is minutes. :func:`materialize_redis` writes the same hashes, byte for byte
(Feast 0.67, ``entity_key_serialization_version: 3``), from the feature tables already in memory:

* key: ``serialize_entity_key(applicant_id) + project``; the constant part comes from Feast itself;
* fields: ``mmh3("<view>:<feature>")`` (4 bytes, Feast's ``_mmh3``) -> serialized ``ValueProto``
  (``int64_val`` = field 4 varint, ``double_val`` = field 5 fixed64, ``float_val`` = field 6 fixed32,
  ``int32_val`` = field 3, ``bool_val`` = field 7; NaN/None -> empty ``ValueProto`` = empty bytes);
* ``_ts:<view>`` -> serialized ``google.protobuf.Timestamp`` of the event time, truncated to microseconds
  like Feast's ``to_pydatetime``.

Rows are chosen like Feast's ``materialize(start, end)``: per view, the latest row per applicant with
``start <= event_timestamp <= end`` (both inclusive); an existing ``_ts:<view>`` at least as new wins
(Feast's write dedup, skipped when the store sets ``skip_dedup``). Each applicant gets one HSET covering
all its views, and the commands are written as raw RESP over a few pipelined connections.

Anything else (another online store, Redis Cluster, a view with a type or entity key not handled here)
goes through ``store.materialize``.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore, FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, compute_versioned_name
from feast.infra.online_stores.redis import RedisOnlineStore, RedisType
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp

from creditops.timestamps import utc_ns
from feast_repo import definitions

logger = logging.getLogger(__name__)

_SEG = 32  # bytes per stream segment; every piece of a command is padded to this width, then compacted
_CRLF = np.frombuffer(b"\r\n", dtype=np.uint8)
# ValueProto oneof tags: (field number << 3) | wire type
VALUE_TAGS = {
    ValueType.INT32: 0x18,  # 3, varint
    ValueType.INT64: 0x20,  # 4, varint
    ValueType.DOUBLE: 0x29,  # 5, fixed64
    ValueType.FLOAT: 0x35,  # 6, fixed32
    ValueType.BOOL: 0x38,  # 7, varint
}


@dataclass(frozen=True)
class BulkResult:
    """What :func:`materialize_redis` did.

    Attributes:
        written: view name -> applicants whose hash fields for that view were written.
        fallback: views materialized by ``store.materialize`` instead.
    """

    written: dict[str, int] = field(default_factory=dict)
    fallback: list[str] = field(default_factory=list)


def materialize_redis(
    store: FeatureStore,
    tables: Mapping[str, pd.DataFrame],
    end: datetime,
    start: datetime | None = None,
    *,
    connections: int = 2,
    chunk_entities: int = 20_000,
) -> BulkResult:
    """Write the latest row per applicant of each view into Feast's Redis online store, like materialize.

    Args:
        store: an applied FeatureStore.
        tables: name -> feature table of view ``<name>_fv`` (a group for the built-in views): its join key,
            its source's timestamp field and its features. Must hold what the views' offline sources hold
            (fallback views are read from there).
        end: latest event time to load (naive = UTC).
        start: earliest event time; defaults to what :func:`feast_repo.store.materialize` uses.
        connections: parallel Redis connections (each sends whole chunks as one pipelined write).
        chunk_entities: applicants per pipelined write.

    Returns:
        Per view, how many applicants were written, and which views went through ``store.materialize``.
    """
    end = _aware(end)
    start = _aware(start) if start else end - max(definitions.TTL.values()) - timedelta(days=1)
    by_view = {f"{name}_fv": table for name, table in tables.items()}
    views = [fv for fv in store.list_feature_views() if fv.online and fv.name in by_view]
    bulk = [fv for fv in views if supported(fv)] if bulk_redis(store) else []
    result = BulkResult(fallback=[fv.name for fv in views if fv not in bulk])
    if result.fallback:
        logger.info("materializing %s with store.materialize", result.fallback)
        store.materialize(start_date=start, end_date=end, feature_views=result.fallback)
    if not bulk:
        return result

    config = store.config
    versioning = bool(getattr(config.registry, "enable_online_feature_view_versioning", False))
    encoders = [
        _ViewEncoder(fv, compute_versioned_name(fv, versioning), by_view[fv.name], start, end) for fv in bulk
    ]
    for join_key in dict.fromkeys(e.join_key for e in encoders):  # views sharing a key share its hash
        writer = _RedisWriter(store, [e for e in encoders if e.join_key == join_key])
        try:
            result.written.update(writer.run(connections, chunk_entities))
        finally:
            writer.close()
    for fv in bulk:  # materialization intervals (materialize-incremental reads them) and view state
        store.registry.apply_materialization(fv, store.project, start, end)
    _precompute_services(store, [fv.name for fv in bulk])
    return result


def _aware(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def bulk_redis(store: FeatureStore) -> bool:
    """A plain or sentinel Redis online store (the layout handled here; not Redis Cluster)."""
    online = store.config.online_store
    return getattr(online, "type", None) == "redis" and online.redis_type != RedisType.redis_cluster


def supported(fv: FeatureView) -> bool:
    """Views encoded here: one INT64 join key, scalar numeric/bool features, no field mapping/offline copy."""
    columns = fv.entity_columns
    return (
        not fv.offline
        and not fv.batch_source.field_mapping
        and len(columns) == 1
        and columns[0].dtype.to_value_type() == ValueType.INT64
        and all(f.dtype.to_value_type() in VALUE_TAGS for f in fv.features)
    )


def entity_key_prefix(config: RepoConfig, join_key: str) -> bytes:
    """Feast's serialized INT64 entity key minus its 8 value bytes (derived from Feast, then checked).

    A Redis key is ``prefix + int64 little-endian + project``.
    """
    probe = 0x0102030405060708
    key = serialize_entity_key(
        EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(int64_val=probe)]),
        entity_key_serialization_version=config.entity_key_serialization_version,
    )
    if not key.endswith(struct.pack("<q", probe)):
        raise ValueError(f"unexpected Feast entity key layout: {key!r}")
    return key[:-8]


def _precompute_services(store: FeatureStore, view_names: Sequence[str]) -> None:
    """Feast refreshes pre-computed vectors of services over materialized views; so do we."""
    for service in store.list_feature_services():
        if getattr(service, "precompute_online", False) and {
            p.name for p in service.feature_view_projections
        } & set(view_names):
            store.precompute_feature_service(service.name)


# --- byte building -------------------------------------------------------------------------------------


def _varint(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Protobuf varints of uint64 ``values``: (n, 10) bytes and lengths (1..10)."""
    v = values.astype(np.uint64, copy=False)
    out = np.zeros((len(v), 10), dtype=np.uint8)
    lens = np.ones(len(v), dtype=np.int64)
    for i in range(10):
        rest = v >> np.uint64(7 * (i + 1))
        more = rest != 0
        out[:, i] = ((v >> np.uint64(7 * i)) & np.uint64(0x7F)).astype(np.uint8) | (
            more.astype(np.uint8) << 7
        )
        lens += more
    return out, lens


def _concat(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise concatenation of variable-length byte rows (narrow parts only: loops over their width)."""
    n = len(parts[0][0])
    out = np.zeros((n, sum(p.shape[1] for p, _ in parts)), dtype=np.uint8)
    pos = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)
    for data, lens in parts:
        for j in range(data.shape[1]):
            m = j < lens
            out[rows[m], pos[m] + j] = data[m, j]
        pos += lens
    return out, pos


def _const(data: bytes, n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.broadcast_to(np.frombuffer(data, dtype=np.uint8), (n, len(data))), np.full(n, len(data))


def _decimal(values: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """ASCII decimal of non-negative ints below ``10**width``: (n, width) bytes, left-aligned, and lengths."""
    v = values.astype(np.int64)
    lens = np.ones(len(v), dtype=np.int64)
    for k in range(1, width):
        lens += v >= 10**k
    out = np.zeros((len(v), width), dtype=np.uint8)
    for j in range(width):
        digit = (v // 10 ** np.maximum(lens - 1 - j, 0)) % 10
        out[:, j] = np.where(j < lens, 48 + digit, 0)
    return out, lens


def _bulk_string(payload: np.ndarray, plen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RESP bulk strings (``$<len>``, CRLF, payload, CRLF) of short payloads (< 100 bytes)."""
    # few distinct lengths per column (a double is 9 bytes or null): one block copy per length
    out = np.zeros((len(plen), payload.shape[1] + 7), dtype=np.uint8)
    lens = np.empty(len(plen), dtype=np.int64)
    for length in np.unique(plen):
        rows = plen == length
        head = np.frombuffer(b"$%d\r\n" % length, dtype=np.uint8)
        at = len(head)
        out[rows, :at] = head
        out[rows, at : at + length] = payload[rows, :length]
        out[rows, at + length : at + length + 2] = _CRLF
        lens[rows] = at + length + 2
    return out, lens


def _resp_const(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _value_payload(value_type: ValueType, column: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Serialized ``ValueProto`` per row, as Feast's ``python_values_to_proto_values`` + SerializeToString.

    ``column`` is a Series, or the numpy array of a plain numeric / bool column (NaN = null): a stream batch
    has few rows and many columns, and numpy on the array costs a fraction of the Series methods.
    """
    n = len(column)
    tag = VALUE_TAGS[value_type]
    plain = isinstance(column, np.ndarray)
    if plain:
        null = np.isnan(column) if column.dtype.kind == "f" else np.zeros(n, dtype=bool)
    else:
        null = column.isna().to_numpy()
    if value_type in (ValueType.DOUBLE, ValueType.FLOAT):
        dtype = "<f8" if value_type == ValueType.DOUBLE else "<f4"
        floats = column.astype(np.float64) if plain else column.to_numpy(dtype="float64", na_value=np.nan)
        raw = floats.astype(dtype)
        width = raw.dtype.itemsize
        payload = np.empty((n, 1 + width), dtype=np.uint8)
        payload[:, 0] = tag
        payload[:, 1:] = raw.view(np.uint8).reshape(n, width)
        plen = np.where(null, 0, 1 + width)
        return payload, plen
    if value_type == ValueType.BOOL:
        payload = np.empty((n, 2), dtype=np.uint8)
        payload[:, 0] = tag
        flags = np.where(null, False, column) if plain else column.fillna(False).to_numpy()
        payload[:, 1] = flags.astype(bool)
        return payload, np.where(null, 0, 2)
    # INT32 / INT64: Feast calls int(x) (truncation for floats); negatives are 10-byte two's complement
    if plain and column.dtype.kind in "iu":
        ints = column.astype(np.int64)
    elif plain:
        ints = np.trunc(np.where(null, 0.0, column.astype(np.float64))).astype(np.int64)
    elif pd.api.types.is_integer_dtype(column.dtype):
        ints = column.to_numpy(dtype="int64", na_value=0)
    else:
        ints = np.trunc(column.to_numpy(dtype="float64", na_value=0.0)).astype(np.int64)
    var, vlen = _varint(ints.view(np.uint64))
    payload = np.empty((n, 11), dtype=np.uint8)
    payload[:, 0] = tag
    payload[:, 1:] = var
    return payload, np.where(null, 0, 1 + vlen)


def _plain_column(column: pd.Series) -> pd.Series | np.ndarray:
    """The numpy array of a plain numeric / bool column (what :func:`_value_payload` takes fastest)."""
    dtype = column.dtype
    return column.to_numpy() if isinstance(dtype, np.dtype) and dtype.kind in "fiub" else column


def _timestamp_payload(ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Serialized ``Timestamp`` of Feast's ``FromDatetime(to_pydatetime(t))``: microsecond truncation."""
    seconds = ns // 1_000_000_000
    nanos = (ns - seconds * 1_000_000_000) // 1000 * 1000
    n = len(ns)
    s_var, s_len = _varint(seconds.view(np.uint64))
    n_var, n_len = _varint(nanos.view(np.uint64))
    return _concat(
        [
            (np.full((n, 1), 0x08, dtype=np.uint8), (seconds != 0).astype(np.int64)),
            (s_var, np.where(seconds != 0, s_len, 0)),
            (np.full((n, 1), 0x10, dtype=np.uint8), (nanos != 0).astype(np.int64)),
            (n_var, np.where(nanos != 0, n_len, 0)),
        ]
    )


def _latest_rows(ids: np.ndarray, ts: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Rows of the latest event per applicant with ``lo <= ts <= hi`` (ns), in applicant order.

    Ties keep the last row in table order (Feast leaves ties unspecified).
    """
    rows = np.flatnonzero((ts >= lo) & (ts <= hi))
    ids_in, ts_in = ids[rows], ts[rows]
    if len(rows) > 1 and not np.all((np.diff(ids_in) > 0) | ((np.diff(ids_in) == 0) & (np.diff(ts_in) >= 0))):
        order = np.lexsort((ts_in, ids_in))
        rows, ids_in = rows[order], ids_in[order]
    last = np.ones(len(rows), dtype=bool)
    last[:-1] = ids_in[:-1] != ids_in[1:]
    return rows[last]


class _ViewEncoder:
    """One view's latest rows in the window, and their hash fields as RESP pieces."""

    def __init__(self, fv: FeatureView, name: str, table: pd.DataFrame, start: datetime, end: datetime):
        self.fv = fv
        self.name = name
        self.ts_field = f"_ts:{name}".encode()
        self.join_key = fv.entity_columns[0].name
        ts = utc_ns(table[fv.batch_source.timestamp_field])
        ids = table[self.join_key].to_numpy(dtype="int64")
        rows = _latest_rows(ids, ts, pd.Timestamp(start).value, pd.Timestamp(end).value)
        self.ids = ids[rows]
        self.ts_ns = ts[rows]
        self.frame = table.iloc[rows].reset_index(drop=True)
        self.names = [_resp_const(_mmh3(f"{name}:{f.name}")) for f in fv.features]
        self.columns = [_plain_column(self.frame[f.name]) for f in fv.features]
        self.argc = 2 * (len(fv.features) + 1)

    def pieces(self, rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(n, <=_SEG) byte pieces and lengths for ``rows`` of the latest frame: ts field, then features."""
        n = len(rows)
        out = list(_split(_const(_resp_const(self.ts_field), n)))
        out.append(_bulk_string(*_timestamp_payload(self.ts_ns[rows])))
        for f, name, column in zip(self.fv.features, self.names, self.columns, strict=True):
            picked = column[rows] if isinstance(column, np.ndarray) else column.iloc[rows]
            value, vlen = _bulk_string(*_value_payload(f.dtype.to_value_type(), picked))
            cell = np.empty((n, len(name) + value.shape[1]), dtype=np.uint8)
            cell[:, : len(name)] = np.frombuffer(name, dtype=np.uint8)
            cell[:, len(name) :] = value
            out.extend(_split((cell, len(name) + vlen)))
        return out


def _split(piece: tuple[np.ndarray, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cut a piece wider than a segment into segments (only fixed-length pieces may be that wide)."""
    data, lens = piece
    if data.shape[1] <= _SEG:
        return [piece]
    if not np.all(lens == data.shape[1]):
        raise ValueError("variable-length piece wider than a segment")
    return [
        (data[:, i : i + _SEG], np.full(len(lens), min(_SEG, data.shape[1] - i)))
        for i in range(0, data.shape[1], _SEG)
    ]


def _stream(pieces: Sequence[tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Row by row, piece by piece, the first ``len`` bytes of each: one boolean-mask compaction."""
    n = len(pieces[0][1])
    cells = np.zeros((n, len(pieces), _SEG), dtype=np.uint8)
    lens = np.empty((n, len(pieces)), dtype=np.int64)
    for s, (data, plen) in enumerate(pieces):
        cells[:, s, : data.shape[1]] = data
        lens[:, s] = plen
    return cells[np.arange(_SEG) < lens[..., None]].tobytes()


class _RedisWriter:
    """Applicants' HSETs (all views in one command) over pipelined raw-RESP connections."""

    def __init__(
        self, store: FeatureStore, encoders: Sequence[_ViewEncoder], client=None, dedup: bool | None = None
    ):
        self.config = store.config
        self.online = store.config.online_store
        self.encoders = encoders
        # the connection is made by Feast's own client factory (sentinel, auth, db, ssl as Feast does)
        self.client = client if client is not None else RedisOnlineStore()._get_client(self.online)
        # Feast's dedup (a stored row at least as new wins) unless the caller is the authority (the stream)
        self.dedup = (not self.online.skip_dedup) if dedup is None else dedup
        self.ids = np.unique(np.concatenate([e.ids for e in encoders]))
        self.rows = [np.searchsorted(e.ids, self.ids) for e in encoders]
        for e, r in zip(encoders, self.rows, strict=True):
            r[r >= len(e.ids)] = 0
            r[e.ids[r] != self.ids] = -1
        self.key_prefix = entity_key_prefix(self.config, self.encoders[0].join_key)
        self.project = self.config.project.encode("utf-8")

    def _keys(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """RESP bulk strings of the Redis keys (fixed length: prefix + int64 + project)."""
        n = len(ids)
        head = _resp_const(self.key_prefix + b"\0" * 8 + self.project)
        keys = np.broadcast_to(np.frombuffer(head, dtype=np.uint8), (n, len(head))).copy()
        at = head.index(b"\r\n") + 2 + len(self.key_prefix)
        keys[:, at : at + 8] = ids.astype("<i8").view(np.uint8).reshape(n, 8)
        return keys, np.full(n, len(head))

    def _existing_ns(self, conn, keys: np.ndarray) -> np.ndarray | None:
        """Stored ``_ts:<view>`` (ns; 0 = none) per key and view, or None when no key exists yet."""
        n = len(keys)
        conn.send_packed_command([b"*%d\r\n$6\r\nEXISTS\r\n" % (n + 1), keys.tobytes()], check_health=False)
        if int(conn.read_response()) == 0:
            return None
        fields = [e.ts_field for e in self.encoders]
        names = [bytes(k[k.tobytes().index(b"\r\n") + 2 : -2]) for k in keys]
        with self.client.pipeline(transaction=False) as pipe:
            for key in names:
                pipe.hmget(key, fields)
            replies = pipe.execute()
        out = np.zeros((n, len(fields)), dtype=np.int64)
        ts = Timestamp()
        for i, values in enumerate(replies):
            for j, raw in enumerate(values):
                if raw:
                    ts.ParseFromString(raw)
                    out[i, j] = ts.seconds * 1_000_000_000 + ts.nanos
        return out

    def _chunk(self, lo: int, hi: int) -> dict[str, int]:
        ids = self.ids[lo:hi]
        n = len(ids)
        keys, klen = self._keys(ids)
        present = [r[lo:hi] >= 0 for r in self.rows]
        with _connection(self.client) as conn:
            if self.dedup:
                existing = self._existing_ns(conn, keys)
                if existing is not None:  # Feast skips a row unless it is newer than what is stored
                    for j, e in enumerate(self.encoders):
                        rows = np.maximum(self.rows[j][lo:hi], 0)
                        newer = (existing[:, j] == 0) | (_feast_ns(e.ts_ns[rows]) > existing[:, j])
                        present[j] &= newer
            argc = 2 + sum(p * e.argc for p, e in zip(present, self.encoders, strict=True))
            any_view = argc > 2
            pieces = [
                _concat([_const(b"*", n), _decimal(argc, 7), _const(b"\r\n$4\r\nHSET\r\n", n)]),
                *_split((keys, klen)),
            ]
            for j, e in enumerate(self.encoders):
                rows = np.flatnonzero(present[j])
                for data, plen in e.pieces(self.rows[j][lo:hi][rows]):
                    full = np.zeros((n, data.shape[1]), dtype=np.uint8)
                    full[rows] = data
                    lens = np.zeros(n, dtype=np.int64)
                    lens[rows] = plen
                    pieces.append((full, lens))
            commands = int(any_view.sum())
            if self.online.key_ttl_seconds:
                pieces += [
                    _const(b"*3\r\n$6\r\nEXPIRE\r\n", n),
                    *_split((keys, klen)),
                    _const(_resp_const(str(self.online.key_ttl_seconds).encode()), n),
                ]
                commands *= 2
            pieces = [(d, np.where(any_view, plen, 0)) for d, plen in pieces]
            if commands:
                _send_all(conn, _stream(pieces), commands)
        return {e.name: int(p.sum()) for e, p in zip(self.encoders, present, strict=True)}

    def run(self, connections: int, chunk_entities: int) -> dict[str, int]:
        bounds = [
            (lo, min(lo + chunk_entities, len(self.ids))) for lo in range(0, len(self.ids), chunk_entities)
        ]
        written = dict.fromkeys((e.name for e in self.encoders), 0)
        if connections <= 1 or len(bounds) <= 1:  # a pool's thread start and hand-off cost ms a batch
            results = [self._chunk(*b) for b in bounds]
        else:
            with ThreadPoolExecutor(max_workers=connections) as pool:
                results = list(pool.map(lambda b: self._chunk(*b), bounds))
        for counts in results:
            for name, count in counts.items():
                written[name] += count
        return written

    def close(self) -> None:
        self.client.close()


@contextmanager
def _connection(client: Any) -> Iterator[Any]:
    """A connection of ``client``'s pool for raw pipelined commands, returned to the pool afterwards."""
    conn = client.connection_pool.get_connection()
    try:
        yield conn
    except BaseException:
        conn.disconnect()  # replies may still be pending: never hand this connection back for reuse
        raise
    finally:
        client.connection_pool.release(conn)


def _written() -> None:
    """The confirming call of a write with nothing left to confirm (RowWriter.send, the stream sink)."""


def _send_all(conn: Any, payload: bytes, commands: int) -> None:
    """Send ``commands`` packed commands at once and read every reply (raising the first error reply)."""
    conn.send_packed_command([payload], check_health=False)
    for _ in range(commands):
        conn.read_response()


def _feast_ns(ns: np.ndarray) -> np.ndarray:
    """Event time as Feast stores and compares it (microsecond precision)."""
    seconds = ns // 1_000_000_000
    return seconds * 1_000_000_000 + (ns - seconds * 1_000_000_000) // 1000 * 1000


# --- a few rows: the same bytes, built per row ---------------------------------------------------------
# A stream batch writes some 50 applicants: the column-wise builder above costs ~10 ms of fixed numpy
# overhead there (its varint alone loops 10 times per column); building each row's bytes from a few cached
# constants and the columns' raw bytes costs a fraction of that.

_NULL = b"$0\r\n\r\n"  # an empty ValueProto (NaN / None)


def _varint_bytes(value: int) -> bytes:
    """Protobuf varint of an int64 (negatives as 10-byte two's complement, as :func:`_varint`)."""
    value &= 0xFFFF_FFFF_FFFF_FFFF
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _resp_values(field: bytes, value_type: ValueType, column: np.ndarray) -> list[bytes]:
    """``field`` (RESP) then the RESP bulk string of the value's serialized ``ValueProto``, per value.

    The bytes of :func:`_value_payload`; ``column`` is a plain numeric / bool numpy array (NaN = null).
    """
    tag = VALUE_TAGS[value_type]
    null = np.isnan(column) if column.dtype.kind == "f" else np.zeros(len(column), dtype=bool)
    empty = field + _NULL
    if value_type in (ValueType.DOUBLE, ValueType.FLOAT):
        raw = column.astype(np.float64).astype("<f8" if value_type == ValueType.DOUBLE else "<f4").tobytes()
        width = 8 if value_type == ValueType.DOUBLE else 4
        head = field + b"$%d\r\n%c" % (width + 1, tag)
        return [
            empty if gone else head + raw[i * width : (i + 1) * width] + b"\r\n"
            for i, gone in enumerate(null.tolist())
        ]
    if value_type == ValueType.BOOL:
        flags = np.where(null, False, column).astype(bool)
        yes, no = field + b"$2\r\n%c\x01\r\n" % tag, field + b"$2\r\n%c\x00\r\n" % tag
        pairs = zip(flags.tolist(), null.tolist(), strict=True)
        return [empty if gone else (yes if f else no) for f, gone in pairs]
    if column.dtype.kind in "iu":
        ints = column.astype(np.int64)
    else:  # Feast calls int(x): truncation
        ints = np.trunc(np.where(null, 0.0, column.astype(np.float64))).astype(np.int64)
    out = []
    for v, gone in zip(ints.tolist(), null.tolist(), strict=True):
        if gone:
            out.append(empty)
        elif 0 <= v < 0x80:  # most counts: a one-byte varint
            out.append(b"%s$2\r\n%c%c\r\n" % (field, tag, v))
        else:
            payload = _varint_bytes(v)
            out.append(b"%s$%d\r\n%c%s\r\n" % (field, len(payload) + 1, tag, payload))
    return out


def _fixed_cell(value_type: ValueType, column: np.ndarray) -> tuple[bytes, np.ndarray] | None:
    """A column's values as one RESP head (``$<len>``, CRLF, tag) and (rows, k) value bytes, or None.

    The bytes :func:`_resp_values` builds, when every serialized value has the same length; None when they
    do not (nulls, varints of several lengths).
    """
    if column.dtype.kind == "f" and np.isnan(column).any():
        return None
    tag = VALUE_TAGS[value_type]
    n = len(column)
    if value_type in (ValueType.DOUBLE, ValueType.FLOAT):
        raw = column.astype(np.float64).astype("<f8" if value_type == ValueType.DOUBLE else "<f4")
        return b"$%d\r\n%c" % (raw.itemsize + 1, tag), raw.view(np.uint8).reshape(n, raw.itemsize)
    if value_type == ValueType.BOOL:
        return b"$2\r\n%c" % tag, column.astype(bool).astype(np.uint8).reshape(n, 1)
    if column.dtype.kind in "iu":
        ints = column.astype(np.int64)
    else:
        ints = np.trunc(column.astype(np.float64)).astype(np.int64)
    if n and (ints.min() < 0 or ints.max() >= 0x80):
        return None
    return b"$2\r\n%c" % tag, ints.astype(np.uint8).reshape(n, 1)


def _resp_timestamps(field: bytes, ns: np.ndarray) -> list[bytes]:
    """``field`` (RESP), then each serialized ``Timestamp`` as a RESP bulk string (``_timestamp_payload``)."""
    if len(ns) >= 64:  # numpy's fixed cost pays off; below, the per-row varints are faster
        payload, lens = _timestamp_payload(ns)
        width, data = payload.shape[1], payload.tobytes()
        return [
            b"%s$%d\r\n%s\r\n" % (field, k, data[i * width : i * width + k])
            for i, k in enumerate(lens.tolist())
        ]
    out = []
    for t in ns.tolist():
        seconds, rest = divmod(t, 1_000_000_000)
        nanos = rest // 1000 * 1000
        payload = (b"\x08" + _varint_bytes(seconds) if seconds else b"") + (
            b"\x10" + _varint_bytes(nanos) if nanos else b""
        )
        out.append(b"%s$%d\r\n%s\r\n" % (field, len(payload), payload))
    return out


class _RowEncoder:
    """One view's hash fields per applicant, built row by row (few rows; see :class:`_ViewEncoder`)."""

    def __init__(self, fv: FeatureView, name: str):
        self.join_key = fv.entity_columns[0].name
        self.ts_column = fv.batch_source.timestamp_field
        self.ts_field = _resp_const(f"_ts:{name}".encode())
        self.features = [
            (f.name, _resp_const(_mmh3(f"{name}:{f.name}")), f.dtype.to_value_type()) for f in fv.features
        ]
        self.argc = 2 * (len(fv.features) + 1)

    def fields(self, table, lo: int, hi: int) -> dict[int, bytes] | None:
        """Applicant -> its fields of this view (RESP), latest row in ``[lo, hi]`` (ns) per applicant.

        ``table`` is a frame or anything that gives its columns by name (the stream's
        :class:`~creditops.streaming.columns.Columns`). None when a feature column is not a plain numeric /
        bool numpy column (the caller then writes the table with :class:`_ViewEncoder`).
        """
        ts = utc_ns(table[self.ts_column])
        ids = np.asarray(table[self.join_key], dtype="int64")
        rows = _latest_rows(ids, ts, lo, hi)
        n = len(rows)
        columns = [_resp_timestamps(self.ts_field, ts[rows])]
        # a field whose every value has the same length (a double, a bool, a count below 128, none null)
        # goes into one (rows, bytes) block: a template row with each value's bytes put at its offset
        template: list[bytes] = []
        fixed: list[tuple[int, np.ndarray]] = []
        width = 0
        for column, name, value_type in self.features:
            series = table[column]
            if not (isinstance(series.dtype, np.dtype) and series.dtype.kind in "fiub"):
                return None
            values = np.asarray(series)[rows]
            cell = _fixed_cell(value_type, values)
            if cell is None:
                columns.append(_resp_values(name, value_type, values))
                continue
            head, raw = cell
            template += [name, head, bytes(raw.shape[1]), b"\r\n"]
            fixed.append((width + len(name) + len(head), raw))
            width += len(name) + len(head) + raw.shape[1] + 2
        if fixed:
            block = np.frombuffer(b"".join(template), dtype=np.uint8)[None, :].repeat(n, axis=0)
            for at, raw in fixed:
                block[:, at : at + raw.shape[1]] = raw
            data = block.tobytes()
            columns.append([data[i * width : (i + 1) * width] for i in range(n)])
        return dict(zip(ids[rows].tolist(), map(b"".join, zip(*columns, strict=True)), strict=True))


class RowWriter:
    """Few rows of several views -> one HSET per applicant (all its views), in one pipelined write.

    The bytes are :class:`_RedisWriter`'s (a test compares the hashes both leave); there is no dedup: the
    caller is the authority for what it writes (the stream processor).
    """

    def __init__(self, store: FeatureStore, views: Mapping[str, tuple[FeatureView, str]], client=None):
        self.online = store.config.online_store
        self.client = client if client is not None else RedisOnlineStore()._get_client(self.online)
        self.encoders = {key: _RowEncoder(fv, name) for key, (fv, name) in views.items()}
        join_keys = {e.join_key for e in self.encoders.values()}
        if len(join_keys) != 1:
            raise ValueError(f"views of one writer share one join key, got {sorted(join_keys)}")
        self.key_prefix = entity_key_prefix(store.config, join_keys.pop())
        self.project = store.config.project.encode("utf-8")
        ttl = self.online.key_ttl_seconds
        self.expire = b"*3\r\n$6\r\nEXPIRE\r\n%s" + _resp_const(str(ttl).encode()) if ttl else None

    def write(self, tables: Mapping[str, Any], start: datetime, end: datetime) -> bool:
        """Write each table (key of ``views``) like :class:`_RedisWriter` with ``dedup=False``.

        A table is a frame or the stream's columns (see :meth:`_RowEncoder.fields`).

        Returns False, having written nothing, when a table has a column this writer does not encode.
        """
        finish = self.send(tables, start, end)
        if finish is None:
            return False
        finish()
        return True

    def send(self, tables: Mapping[str, Any], start: datetime, end: datetime) -> Callable[[], None] | None:
        """:meth:`write` in two steps: this sends the commands; the call it returns reads their replies.

        The server writes while the caller goes on (the stream prepares its prune meanwhile); the rows are
        written once the returned call returned, and it must be called (it hands the connection back).
        None, having sent nothing, when a table has a column this writer does not encode.
        """
        lo, hi = pd.Timestamp(start).value, pd.Timestamp(end).value
        per_view = []
        for key, table in tables.items():
            encoder = self.encoders.get(key)
            if encoder is None or not len(table):
                continue
            fields = encoder.fields(table, lo, hi)
            if fields is None:
                return None
            per_view.append((encoder.argc, fields))
        applicants = sorted({a for _, fields in per_view for a in fields})
        if not applicants:
            return _written
        parts = []
        for applicant in applicants:
            key = _resp_const(self.key_prefix + struct.pack("<q", applicant) + self.project)
            mine = [(argc, fields[applicant]) for argc, fields in per_view if applicant in fields]
            parts.append(b"*%d\r\n$4\r\nHSET\r\n%s" % (2 + sum(a for a, _ in mine), key))
            parts.extend(f for _, f in mine)
            if self.expire is not None:
                parts.append(self.expire % key)
        commands = len(applicants) * (2 if self.expire is not None else 1)
        pool = self.client.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_packed_command([b"".join(parts)], check_health=False)
        except BaseException:
            conn.disconnect()
            pool.release(conn)
            raise

        def finish() -> None:
            try:
                for _ in range(commands):
                    conn.read_response()  # raises the first error reply
            except BaseException:
                conn.disconnect()  # replies may still be pending: never hand this connection back for reuse
                raise
            finally:
                pool.release(conn)

        return finish
