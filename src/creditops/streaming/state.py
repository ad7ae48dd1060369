"""Per-applicant event history in Redis: the state the streaming features are recomputed from.

Each applicant's transactions live in one hash ``<prefix>tx:<applicant_id>``, field = transaction id,
value = 18 packed bytes (event time ns, amount, type code, late flag). Adding is ``HSETNX``: a redelivered
event (same id, same content) changes nothing, so a consumer that crashed after writing state but before
acknowledging can simply process the batch again. The same id with different content is a conflict
(``duplicate_key``), as in batch validation. Applications live in ``<prefix>app:<applicant_id>`` (their raw
columns as JSON).

Transactions older than the feature window (365 days before the applicant's newest event) are pruned, so the
state of an applicant stays bounded.

A batch costs a few Redis commands, not a few per event: the per-key work (the horizon check, HSETNX and
the comparison of a redelivered value, EXISTS, reading every stored value of a history) runs in small Lua
scripts over all the batch's keys, one ``EVALSHA`` each (at most :data:`SCRIPT_KEYS` keys per call, so a
script never holds the server for long). Each script does what the commands it replaces did, key by key
and in order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import redis

from creditops.data.schema import TRANSACTION_TYPES
from creditops.features.behavioural import WINDOW_DAYS
from creditops.timestamps import utc_ns

SCRIPT_KEYS = 10_000
"""Keys per script call (a seed of 200k rows is 20 calls of a few ms each)."""

# KEYS = n histories, then the horizon hash; ARGV = n transaction ids, n values, n applicants, n event times
# (decimal ns). Per event: 0 = stored now, 1 = the same value was there (a redelivery), 2 = another value was
# there, 3 = at or before its applicant's horizon (expired: not stored). Times are compared as decimal text
# (Lua's numbers are doubles, which do not hold an int64 of nanoseconds exactly).
_ADD_SCRIPT = """
local function at_or_before(a, b)
  local neg_a, neg_b = a:sub(1, 1) == '-', b:sub(1, 1) == '-'
  if neg_a ~= neg_b then return neg_a end
  if neg_a then a, b = b:sub(2), a:sub(2) end
  if #a ~= #b then return #a < #b end
  return a <= b
end
local out = {}
local n = #KEYS - 1
for i = 1, n do
  local horizon = redis.call('HGET', KEYS[n + 1], ARGV[2 * n + i])
  if horizon and at_or_before(ARGV[3 * n + i], horizon) then
    out[i] = 3
  elseif redis.call('HSETNX', KEYS[i], ARGV[i], ARGV[n + i]) == 1 then
    out[i] = 0
  elseif redis.call('HGET', KEYS[i], ARGV[i]) == ARGV[n + i] then
    out[i] = 1
  else
    out[i] = 2
  end
end
return out
"""
_EXISTS_SCRIPT = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('EXISTS', key)
end
return out
"""
# every value of each hash, concatenated in HGETALL's order (fixed-size records: the caller splits them)
_VALUES_SCRIPT = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = table.concat(redis.call('HVALS', key))
end
return out
"""
# the stream's read per batch: KEYS = n histories, then their applicants' application keys; ARGV = n. Each
# history's values as _VALUES_SCRIPT gives them, then each application (nil where none): one round trip
_HISTORY_SCRIPT = """
local n = tonumber(ARGV[1])
local out = {}
for i = 1, n do
  out[i] = table.concat(redis.call('HVALS', KEYS[i]))
end
for i = n + 1, #KEYS do
  out[i] = redis.call('GET', KEYS[i])
end
return out
"""
# prune: KEYS = histories, then the horizon hash; ARGV = (applicant, horizon, high and low 32 bits of the
# horizon) per history. Every transaction at or before its history's horizon (the record starts with its
# time, int64 little-endian) is deleted and the horizon recorded, in one atomic step.
_PRUNE_SCRIPT = """
local n = #KEYS - 1
local deleted = 0
for i = 1, n do
  local top, bottom = tonumber(ARGV[4 * i - 1]), tonumber(ARGV[4 * i])
  local stored = redis.call('HGETALL', KEYS[i])
  local doomed = {}
  for j = 1, #stored, 2 do
    local low, high = struct.unpack('<I4i4', stored[j + 1])
    if high < top or (high == top and low <= bottom) then
      doomed[#doomed + 1] = stored[j]
    end
  end
  for j = 1, #doomed, 1000 do
    deleted = deleted + redis.call('HDEL', KEYS[i], unpack(doomed, j, math.min(j + 999, #doomed)))
  end
  redis.call('HSET', KEYS[n + 1], ARGV[4 * i - 3], ARGV[4 * i - 2])
end
return deleted
"""


def exists_many(client: redis.Redis, keys: Sequence[bytes]) -> np.ndarray:
    """Mask of ``keys`` that exist, in a script call per :data:`SCRIPT_KEYS` keys (not one EXISTS each)."""
    script = client.register_script(_EXISTS_SCRIPT)
    out = [script(keys=list(keys[lo : lo + SCRIPT_KEYS])) for lo in range(0, len(keys), SCRIPT_KEYS)]
    return np.asarray([x for part in out for x in part], dtype=bool)


_RECORD = np.dtype([("ts", "<i8"), ("amount", "<f8"), ("type", "i1"), ("late", "?")])
_NS_PER_DAY = 86_400 * 10**9


@dataclass(frozen=True)
class AddResult:
    """Outcome of :meth:`RedisEventState.add_transactions` per input row.

    Attributes:
        new: the row was not in the state and is now.
        duplicate: the same id with the same content was already there (a redelivery: nothing changed).
        conflict: the id was there with different content (rejected as ``duplicate_key``).
        expired: the event is older than the applicant's window can ever reach again (at or before the
            horizon left by pruning): it cannot change a feature, so it is counted and not stored.
    """

    new: np.ndarray
    duplicate: np.ndarray
    conflict: np.ndarray
    expired: np.ndarray


def pack_transactions(frame: pd.DataFrame) -> list[bytes]:
    """The stored value of each transaction row (``transaction_ts``, ``amount``, ``type``, ``is_late``)."""
    records = np.empty(len(frame), dtype=_RECORD)
    records["ts"] = utc_ns(frame["transaction_ts"])
    records["amount"] = frame["amount"].to_numpy(np.float64)
    records["type"] = pd.Index(TRANSACTION_TYPES).get_indexer(frame["type"].to_numpy())
    records["late"] = frame["is_late"].to_numpy(bool)
    raw = records.tobytes()
    size = _RECORD.itemsize
    return [raw[i * size : (i + 1) * size] for i in range(len(frame))]


class RedisEventState:
    """Transaction histories and applications of streamed applicants, in one Redis database.

    Args:
        client: a ``redis.Redis`` client (bytes responses).
        prefix: key prefix (one per deployment; tests use one per run).
    """

    def __init__(self, client: redis.Redis, prefix: str = "creditops:stream:"):
        self.client = client
        self.prefix = prefix.encode()
        self._horizon_key = self.prefix + b"horizon"
        self._add = client.register_script(_ADD_SCRIPT)
        self._values = client.register_script(_VALUES_SCRIPT)
        self._history = client.register_script(_HISTORY_SCRIPT)
        self._prune_script = client.register_script(_PRUNE_SCRIPT)

    def _tx_key(self, applicant_id: int) -> bytes:
        return self.prefix + b"tx:%d" % applicant_id

    def _app_key(self, applicant_id: int) -> bytes:
        return self.prefix + b"app:%d" % applicant_id

    def add_transactions(self, frame: pd.DataFrame) -> AddResult:
        """Store validated transaction rows; idempotent by ``transaction_id``."""
        n = len(frame)
        if n == 0:
            empty = np.zeros(0, bool)
            return AddResult(empty, empty, empty, empty)
        values = pack_transactions(frame)
        ids = frame["applicant_id"].to_numpy(np.int64).tolist()
        tx_ids = frame["transaction_id"].to_numpy(np.int64).tolist()
        ts = np.frombuffer(b"".join(values), dtype=_RECORD)["ts"].tolist()
        codes = np.full(n, -1, dtype=np.int64)
        for lo in range(0, n, SCRIPT_KEYS):
            hi = min(lo + SCRIPT_KEYS, n)
            keys = [self._tx_key(a) for a in ids[lo:hi]]
            args = [*map(str, tx_ids[lo:hi]), *values[lo:hi], *map(str, ids[lo:hi]), *map(str, ts[lo:hi])]
            codes[lo:hi] = self._add(keys=[*keys, self._horizon_key], args=args)
        return AddResult(codes == 0, codes == 1, codes == 2, codes == 3)

    def seed(self, transactions: pd.DataFrame, chunk_rows: int = 200_000) -> int:
        """Load a batch history (e.g. the snapshot's last 12 months) so the stream continues from it.

        Idempotent like every add (by transaction id); returns the rows newly stored.
        """
        added = 0
        for lo in range(0, len(transactions), chunk_rows):
            added += int(self.add_transactions(transactions.iloc[lo : lo + chunk_rows]).new.sum())
        self._prune_seeded(transactions)
        return added

    def _prune_seeded(self, transactions: pd.DataFrame) -> None:
        """Prune, now, what the seeded applicants' windows can no longer see.

        A batch history can reach further back than the window; left in place, it would be pruned by the
        stream's first read of each applicant, on the path of a live event. The horizon is the seed's newest
        event per applicant less the window: at or before the one the stream would set (its newest can only be
        newer), and applied only where it moves an applicant's stored horizon forward.
        """
        if not len(transactions):
            return
        ts = pd.Series(utc_ns(transactions["transaction_ts"]))
        by_applicant = ts.groupby(transactions["applicant_id"].to_numpy(np.int64))
        horizon = by_applicant.max() - WINDOW_DAYS * _NS_PER_DAY
        due = by_applicant.min() <= horizon
        applicants = horizon.index.to_numpy(np.int64)[due.to_numpy()]
        horizons = horizon.to_numpy(np.int64)[due.to_numpy()]
        if not len(applicants):
            return
        forward = horizons > self._horizons(applicants)
        self._prune(applicants[forward], horizons[forward])

    def _horizons(self, applicants: np.ndarray) -> np.ndarray:
        """Each applicant's pruning horizon (ns; int64 minimum where none was recorded)."""
        stored = self.client.hmget(self._horizon_key, [str(int(a)) for a in applicants])
        return np.array([int(h) if h else np.iinfo(np.int64).min for h in stored], dtype=np.int64)

    def add_applications(self, frame: pd.DataFrame) -> None:
        """Store validated application rows (the latest write wins: an application may be corrected)."""
        if frame.empty:
            return
        records = frame.drop(columns=["event_index"], errors="ignore").to_json(
            orient="records", lines=True, date_format="iso"
        )
        with self.client.pipeline(transaction=False) as pipe:
            for applicant, line in zip(frame["applicant_id"], records.splitlines(), strict=True):
                pipe.set(self._app_key(int(applicant)), line)
            pipe.execute()

    def known(self, ids: np.ndarray) -> np.ndarray:
        """Mask of applicants whose application the stream has seen."""
        return exists_many(self.client, [self._app_key(int(i)) for i in ids])

    def applications(self, ids: Sequence[int]) -> pd.DataFrame:
        """The stored applications of ``ids`` that have one."""
        raw = self.client.mget([self._app_key(int(i)) for i in ids]) if len(ids) else []
        return _applications_frame(raw)

    def transactions(self, ids: Sequence[int], prune: bool = True) -> pd.DataFrame:
        """Every stored transaction of ``ids`` (``applicant_id, transaction_ts, amount, type, is_late``).

        With ``prune``, transactions older than the window before each applicant's newest one are deleted
        (:meth:`prune_windows`).
        """
        keys = [self._tx_key(int(i)) for i in ids]
        replies = [
            v
            for lo in range(0, len(keys), SCRIPT_KEYS)
            for v in self._values(keys=keys[lo : lo + SCRIPT_KEYS])
        ]
        history = _transactions_frame(ids, replies)
        if prune:
            self.prune_windows(history)
        return history

    def history_records(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
        """The stored transactions and :meth:`applications` of ``ids``, in one round trip (not pruned).

        The stream reads both for every batch before it can write the batch's features: a round trip saved
        here is saved on every event's path. The transactions come as arrays: each one's applicant, and the
        stored records.

        The records (fields ``ts`` in UTC ns, ``amount``, ``type`` code into ``TRANSACTION_TYPES``, ``late``)
        are what the stream's features are computed from; a frame of a batch's few histories costs more to
        build than the features (prune them with :meth:`prune_records`).
        """
        ids = np.asarray(ids, dtype=np.int64)
        values: list[bytes] = []
        apps: list[bytes | None] = []
        step = SCRIPT_KEYS // 2
        for lo in range(0, len(ids), step):
            part = ids[lo : lo + step]
            keys = [self._tx_key(int(i)) for i in part] + [self._app_key(int(i)) for i in part]
            reply = self._history(keys=keys, args=[len(part)])
            values += reply[: len(part)]
            apps += reply[len(part) :]
        return (*_records(ids, values), _applications_frame(apps))

    def prune_windows(self, history: pd.DataFrame) -> None:
        """Delete the transactions of a read ``history`` that its applicants' windows can no longer see.

        Those at or before the applicant's newest transaction less the window; the horizon is recorded, so a
        later event at or before it is counted expired (:class:`AddResult`).
        """
        if len(history):
            self.prune_records(history["applicant_id"].to_numpy(np.int64), utc_ns(history["transaction_ts"]))

    def prune_records(self, owner: np.ndarray, ts: np.ndarray) -> None:
        """:meth:`prune_windows` of a history as arrays (each transaction's applicant, its time in ns)."""
        if not len(owner):
            return
        owners, at = np.unique(owner, return_inverse=True)
        newest = np.full(len(owners), np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(newest, at, ts)
        horizon = newest - WINDOW_DAYS * _NS_PER_DAY
        old = ts <= horizon[at]
        if old.any():
            # the horizon only moves forward: an event at or before it can never enter a window again
            due = np.unique(at[old])
            self._prune(owners[due], horizon[due])

    def _prune(self, applicants: np.ndarray, horizons: np.ndarray) -> None:
        """Delete each applicant's transactions at or before its horizon and record the horizon."""
        for lo in range(0, len(applicants), SCRIPT_KEYS):
            args = []
            for a, h in zip(applicants[lo : lo + SCRIPT_KEYS], horizons[lo : lo + SCRIPT_KEYS], strict=True):
                top, bottom = divmod(int(h), 2**32)
                args += [int(a), int(h), top, bottom]
            keys = [self._tx_key(int(a)) for a in applicants[lo : lo + SCRIPT_KEYS]]
            self._prune_script(keys=[*keys, self._horizon_key], args=args)

    def clear(self) -> int:
        """Delete every key under the prefix (tests, re-seeding); returns how many."""
        keys = list(self.client.scan_iter(match=self.prefix + b"*", count=1000))
        for i in range(0, len(keys), 1000):
            self.client.delete(*keys[i : i + 1000])
        return len(keys)


def _applications_frame(raw: Sequence[bytes | None]) -> pd.DataFrame:
    """Stored applications (JSON lines; None where an applicant has none) as a frame."""
    return pd.DataFrame([json.loads(r) for r in raw if r])


def _records(ids: Sequence[int], replies: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The stored histories of ``ids`` (each one reply: its records concatenated): owners and records."""
    counts = np.array([len(r) // _RECORD.itemsize for r in replies], dtype=np.int64)
    records = np.frombuffer(b"".join(replies), dtype=_RECORD)
    return np.repeat(np.asarray(ids, dtype=np.int64), counts), records


def _transactions_frame(ids: Sequence[int], replies: Sequence[bytes]) -> pd.DataFrame:
    """The stored histories of ``ids`` (each one reply: its records concatenated) as a transactions frame."""
    return _records_frame(*_records(ids, replies))


def _records_frame(owner: np.ndarray, records: np.ndarray) -> pd.DataFrame:
    """Stored records and their applicants as a transactions frame."""
    return pd.DataFrame(
        {
            "applicant_id": owner,
            "transaction_ts": pd.DatetimeIndex(records["ts"].astype("datetime64[ns]")).tz_localize("UTC"),
            "amount": records["amount"],
            # categorical: the window reads the stored codes, no string lookup per transaction
            "type": pd.Categorical.from_codes(records["type"].astype(np.int64), TRANSACTION_TYPES),
            "is_late": records["late"],
        }
    )
