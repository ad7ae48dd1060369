"""Per-applicant event history in Redis: the state the streaming features are recomputed from.

Each applicant's transactions live in one hash ``<prefix>tx:<applicant_id>``, field = transaction id,
value = 26 packed bytes (event time ns, amount, type code, late flag, transaction id). Adding is ``HSETNX``:
a redelivered event (same id, same content) changes nothing, so a consumer that crashed after writing state
but before acknowledging can simply process the batch again. The same id with different content is a
conflict (``duplicate_key``), as in batch validation. Each new record is also appended to the applicant's
log ``<prefix>log:<applicant_id>`` (one string, the records back to back), which is what the stream reads:
one ``MGET`` for a batch's histories, instead of a hash's values one by one. Applications live in
``<prefix>app:<applicant_id>`` (their raw columns as JSON). ``<prefix>layout`` names this layout
(:data:`LAYOUT`); a state written by another one is refused, not misread.

Transactions older than the feature window (365 days before the applicant's newest event) are pruned, so the
state of an applicant stays bounded: deleted from the hash by id and the log rewritten without them, from
what the stream has just read (nothing is read again for it).

A batch costs a few round trips, not a few per event: the per-key work (the horizon check, HSETNX, the
comparison of a redelivered value and the log append; EXISTS; pruning) runs in small Lua scripts over all
the batch's keys, one ``EVALSHA`` each (at most :data:`SCRIPT_KEYS` keys per call, so a script never holds
the server for long). Each script does what the commands it replaces did, key by key and in order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import redis

from creditops.data.schema import TRANSACTION_TYPES
from creditops.errors import ConfigError
from creditops.features.behavioural import WINDOW_DAYS
from creditops.timestamps import utc_ns

SCRIPT_KEYS = 10_000
"""Keys per script call (a seed of 200k rows is 20 calls of a few ms each)."""
LAYOUT = b"2"
"""The state layout (1: histories read from the hashes' values, 18-byte records without the id)."""

# KEYS = n histories, their n logs, then the horizon hash; ARGV = n transaction ids, n values, n applicants,
# n event times (decimal ns). Per event: 0 = stored now (and appended to the log), 1 = the same value was
# there (a redelivery), 2 = another value was there, 3 = at or before its applicant's horizon (expired: not
# stored). Times are compared as decimal text (Lua's numbers are doubles, which do not hold an int64 of
# nanoseconds exactly).
_ADD_SCRIPT = """
local function at_or_before(a, b)
  local neg_a, neg_b = a:sub(1, 1) == '-', b:sub(1, 1) == '-'
  if neg_a ~= neg_b then return neg_a end
  if neg_a then a, b = b:sub(2), a:sub(2) end
  if #a ~= #b then return #a < #b end
  return a <= b
end
local out = {}
local n = (#KEYS - 1) / 2
for i = 1, n do
  local horizon = redis.call('HGET', KEYS[2 * n + 1], ARGV[2 * n + i])
  if horizon and at_or_before(ARGV[3 * n + i], horizon) then
    out[i] = 3
  elseif redis.call('HSETNX', KEYS[i], ARGV[i], ARGV[n + i]) == 1 then
    redis.call('APPEND', KEYS[n + i], ARGV[n + i])
    out[i] = 0
  elseif redis.call('HGET', KEYS[i], ARGV[i]) == ARGV[n + i] then
    out[i] = 1
  else
    out[i] = 2
  end
end
return out
"""
# prune: KEYS = per applicant its history and its log, then the horizon hash; ARGV = per applicant: the log's
# length when read, the records it keeps, the applicant, the horizon, the count of ids to delete, those ids.
# A log that grew since it was read (appended records) keeps what was appended; one that shrank (pruned
# meanwhile) is left as it is.
_PRUNE_SCRIPT = """
local n = (#KEYS - 1) / 2
local at = 1
for i = 1, n do
  local history, log = KEYS[2 * i - 1], KEYS[2 * i]
  local read, kept, count = tonumber(ARGV[at]), ARGV[at + 1], tonumber(ARGV[at + 4])
  local size = redis.call('STRLEN', log)
  if size >= read then
    if size > read then kept = kept .. redis.call('GETRANGE', log, read, -1) end
    if #kept > 0 then redis.call('SET', log, kept) else redis.call('DEL', log) end
  end
  for j = at + 5, at + 4 + count, 1000 do
    redis.call('HDEL', history, unpack(ARGV, j, math.min(j + 999, at + 4 + count)))
  end
  redis.call('HSET', KEYS[#KEYS], ARGV[at + 2], ARGV[at + 3])
  at = at + 5 + count
end
return at
"""
_EXISTS_SCRIPT = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('EXISTS', key)
end
return out
"""


def exists_many(client: redis.Redis, keys: Sequence[bytes]) -> np.ndarray:
    """Mask of ``keys`` that exist: a script call per :data:`SCRIPT_KEYS` keys (not one EXISTS each).

    Up to 100 keys (a small batch) a pipeline of EXISTS, cheaper than a script call.
    """
    if len(keys) <= 100:
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.exists(key)
            return np.asarray(pipe.execute(), dtype=bool).reshape(len(keys))
    script = client.register_script(_EXISTS_SCRIPT)
    out = [script(keys=list(keys[lo : lo + SCRIPT_KEYS])) for lo in range(0, len(keys), SCRIPT_KEYS)]
    return np.asarray([x for part in out for x in part], dtype=bool)


_RECORD = np.dtype([("ts", "<i8"), ("amount", "<f8"), ("type", "i1"), ("late", "?"), ("id", "<i8")])
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
    """The stored value of each transaction row (time, ``amount``, ``type``, ``is_late``, transaction id)."""
    records = np.empty(len(frame), dtype=_RECORD)
    records["ts"] = utc_ns(frame["transaction_ts"])
    records["amount"] = frame["amount"].to_numpy(np.float64)
    records["type"] = pd.Index(TRANSACTION_TYPES).get_indexer(frame["type"].to_numpy())
    records["late"] = frame["is_late"].to_numpy(bool)
    records["id"] = frame["transaction_id"].to_numpy(np.int64)
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
        self._layout_key = self.prefix + b"layout"
        self._layout_checked = False
        self._add = client.register_script(_ADD_SCRIPT)
        self._prune_script = client.register_script(_PRUNE_SCRIPT)
        self._sent: tuple[Any, list[tuple[list[bytes], list[Any]]]] | None = None  # a prune not waited for

    def settle(self) -> None:
        """Wait for the prune sent with ``wait=False`` (:meth:`prune_records`): its replies, its errors.

        Every other method of this state settles first, so what it reads or writes follows the prune.
        """
        if self._sent is None:
            return
        (conn, calls), self._sent = self._sent, None
        unloaded = []
        try:
            for keys, args in calls:
                try:
                    conn.read_response()
                except redis.exceptions.NoScriptError:  # the server lost its scripts: run it again, loaded
                    unloaded.append((keys, args))
        except BaseException:
            conn.disconnect()  # replies may still be pending: never hand this connection back for reuse
            raise
        finally:
            self.client.connection_pool.release(conn)
        for keys, args in unloaded:
            self._prune_script(keys=keys, args=args)

    def _check_layout(self) -> None:
        """Claim the prefix for :data:`LAYOUT`, or refuse a state another layout wrote (once per instance)."""
        self.settle()
        if self._layout_checked:
            return
        if self.client.set(self._layout_key, LAYOUT, nx=True):
            if self.client.exists(self._horizon_key):  # pruned before, yet unmarked: the first layout
                self.client.delete(self._layout_key)
                raise ConfigError(
                    f"stream state under {self.prefix.decode()!r} has layout 1: seed a new prefix"
                )
        elif (stored := self.client.get(self._layout_key)) != LAYOUT:
            raise ConfigError(
                f"stream state under {self.prefix.decode()!r} has layout {stored!r}; this version reads "
                f"{LAYOUT!r}: seed a new prefix"
            )
        self._layout_checked = True

    def _tx_key(self, applicant_id: int) -> bytes:
        return self.prefix + b"tx:%d" % applicant_id

    def _app_key(self, applicant_id: int) -> bytes:
        return self.prefix + b"app:%d" % applicant_id

    def _log_key(self, applicant_id: int) -> bytes:
        return self.prefix + b"log:%d" % applicant_id

    def add_transactions(self, frame: pd.DataFrame) -> AddResult:
        """Store validated transaction rows; idempotent by ``transaction_id``."""
        n = len(frame)
        if n == 0:
            empty = np.zeros(0, bool)
            return AddResult(empty, empty, empty, empty)
        self._check_layout()
        values = pack_transactions(frame)
        ids = frame["applicant_id"].to_numpy(np.int64).tolist()
        tx_ids = frame["transaction_id"].to_numpy(np.int64).tolist()
        ts = np.frombuffer(b"".join(values), dtype=_RECORD)["ts"].tolist()
        codes = np.full(n, -1, dtype=np.int64)
        for lo in range(0, n, SCRIPT_KEYS):
            hi = min(lo + SCRIPT_KEYS, n)
            keys = [self._tx_key(a) for a in ids[lo:hi]] + [self._log_key(a) for a in ids[lo:hi]]
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
        applicants, horizons = applicants[forward], horizons[forward]
        for lo in range(0, len(applicants), SCRIPT_KEYS):
            # each of these has a log: its newest seeded record lies after both its old and its new horizon
            part = applicants[lo : lo + SCRIPT_KEYS]
            owner, records = _records(part, self.client.mget([self._log_key(int(a)) for a in part.tolist()]))
            starts = _block_starts(owner)
            horizon = horizons[lo : lo + SCRIPT_KEYS][np.searchsorted(part, owner[starts])]  # part is sorted
            self._prune_blocks(owner, records, starts, horizon, every=True)

    def _horizons(self, applicants: np.ndarray) -> np.ndarray:
        """Each applicant's pruning horizon (ns; int64 minimum where none was recorded)."""
        self.settle()
        stored = self.client.hmget(self._horizon_key, [str(int(a)) for a in applicants])
        return np.array([int(h) if h else np.iinfo(np.int64).min for h in stored], dtype=np.int64)

    def add_applications(self, frame: pd.DataFrame) -> None:
        """Store validated application rows (the latest write wins: an application may be corrected)."""
        self.settle()
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
        self.settle()
        return exists_many(self.client, [self._app_key(int(i)) for i in ids])

    def applications(self, ids: Sequence[int]) -> pd.DataFrame:
        """The stored applications of ``ids`` that have one."""
        self.settle()
        raw = self.client.mget([self._app_key(int(i)) for i in ids]) if len(ids) else []
        return _applications_frame(raw)

    def transactions(self, ids: Sequence[int], prune: bool = True) -> pd.DataFrame:
        """Every stored transaction of ``ids`` (``applicant_id, transaction_ts, amount, type, is_late``).

        With ``prune``, transactions older than the window before each applicant's newest one are deleted
        (:meth:`prune_records`).
        """
        owner, records, _ = self.history_records(ids)
        if prune:
            self.prune_records(owner, records)
        return _records_frame(owner, records)

    def history_records(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
        """The stored transactions and :meth:`applications` of ``ids``, in one ``MGET`` (not pruned).

        The stream reads both for every batch before it can write the batch's features: a round trip saved
        here is saved on every event's path. The transactions come as arrays: each one's applicant (each
        applicant's records next to each other, in ``ids`` order), and the stored records.

        The records (fields ``ts`` in UTC ns, ``amount``, ``type`` code into ``TRANSACTION_TYPES``, ``late``,
        ``id``) are what the stream's features are computed from; a frame of a batch's few histories costs
        more to build than the features (prune them with :meth:`prune_records`).
        """
        ids = np.asarray(ids, dtype=np.int64)
        self._check_layout()
        logs: list[bytes | None] = []
        apps: list[bytes | None] = []
        step = SCRIPT_KEYS // 2
        for lo in range(0, len(ids), step):
            part = ids[lo : lo + step].tolist()
            reply = self.client.mget([self._log_key(i) for i in part] + [self._app_key(i) for i in part])
            logs += reply[: len(part)]
            apps += reply[len(part) :]
        return (*_records(ids, logs), _applications_frame(apps) if any(apps) else _NO_APPLICATIONS)

    def prune_records(self, owner: np.ndarray, records: np.ndarray, wait: bool = True) -> None:
        """Delete the read transactions no window can see again (at or before the newest less the window).

        The horizon is recorded, so a later event at or before it is counted expired. ``owner`` and
        ``records`` are what :meth:`history_records` returned: each applicant's records next to each other,
        the whole of its log as read. With ``wait=False`` the prune is sent and its replies are read by the
        next call of this state (:meth:`settle`): the server prunes while the caller goes on (the stream's
        next batch is validated meanwhile). Its effects are the same: the script keeps what was appended
        since the read, and leaves a log that was pruned meanwhile as it is.
        """
        self.settle()
        if not len(owner):
            return
        starts = _block_starts(owner)
        # the horizon only moves forward: an event at or before it can never enter a window again
        horizon = np.maximum.reduceat(records["ts"], starts) - WINDOW_DAYS * _NS_PER_DAY
        self._prune_blocks(owner, records, starts, horizon, wait=wait)

    def _prune_blocks(
        self,
        owner: np.ndarray,
        records: np.ndarray,
        starts: np.ndarray,
        horizon: np.ndarray,
        every: bool = False,
        wait: bool = True,
    ) -> None:
        """Prune a read history's applicants (blocks starting at ``starts``) at their ``horizon``.

        Those with a record at or before it, or with ``every``, all of them (each horizon recorded).
        """
        if not len(starts):
            return
        ends = np.r_[starts[1:], len(owner)]
        old = records["ts"] <= np.repeat(horizon, ends - starts)
        due = np.arange(len(starts)) if every else np.flatnonzero(np.logical_or.reduceat(old, starts))
        if not len(due):
            return
        # the kept records and deleted ids of each due applicant, sliced out of all of them (no numpy each)
        size = _RECORD.itemsize
        kept = records[~old].tobytes()
        kept_at = (np.r_[0, np.cumsum(np.add.reduceat((~old).astype(np.int64), starts))] * size).tolist()
        doomed_ids = records["id"][old].tolist()
        doomed_at = np.r_[0, np.cumsum(np.add.reduceat(old.astype(np.int64), starts))].tolist()
        first, length, limit = starts.tolist(), (ends - starts).tolist(), horizon.tolist()
        self._prune(
            [
                (
                    int(owner[first[b]]),
                    length[b] * size,
                    kept[kept_at[b] : kept_at[b + 1]],
                    limit[b],
                    doomed_ids[doomed_at[b] : doomed_at[b + 1]],
                )
                for b in due.tolist()
            ],
            wait=wait,
        )

    def _prune(self, items: Sequence[tuple[int, int, bytes, int, list[int]]], wait: bool = True) -> None:
        """Per (applicant, its log's length as read, the records it keeps, horizon, ids to delete): prune.

        The ids leave the history, the log keeps its kept records (and whatever was appended since it was
        read), and the horizon is recorded: one script call per few thousand applicants (see
        :meth:`prune_records` for ``wait``).
        """
        calls = []
        for lo in range(0, len(items), SCRIPT_KEYS // 2):
            keys: list[bytes] = []
            args: list[Any] = []
            for applicant, read, kept, horizon, ids in items[lo : lo + SCRIPT_KEYS // 2]:
                keys += [self._tx_key(applicant), self._log_key(applicant)]
                args += [read, kept, applicant, horizon, len(ids), *ids]
            calls.append(([*keys, self._horizon_key], args))
        if wait:
            for keys, args in calls:
                self._prune_script(keys=keys, args=args)
            return
        self.settle()
        conn = self.client.connection_pool.get_connection()
        try:
            for keys, args in calls:
                conn.send_command("EVALSHA", self._prune_script.sha, len(keys), *keys, *args)
        except BaseException:
            conn.disconnect()
            self.client.connection_pool.release(conn)
            raise
        self._sent = (conn, calls)

    def clear(self) -> int:
        """Delete every key under the prefix (tests, re-seeding); returns how many."""
        self.settle()
        self._layout_checked = False  # the layout mark goes too: the next write claims the prefix again
        keys = list(self.client.scan_iter(match=self.prefix + b"*", count=1000))
        for i in range(0, len(keys), 1000):
            self.client.delete(*keys[i : i + 1000])
        return len(keys)


_NO_APPLICATIONS = pd.DataFrame()
"""What :meth:`RedisEventState.history_records` returns for no stored application (shared: read only)."""


def _applications_frame(raw: Sequence[bytes | None]) -> pd.DataFrame:
    """Stored applications (JSON lines; None where an applicant has none) as a frame."""
    records = [json.loads(r) for r in raw if r]
    return pd.DataFrame(records) if records else pd.DataFrame()  # DataFrame([]) costs ten times more


def _records(ids: Sequence[int], logs: Sequence[bytes | None]) -> tuple[np.ndarray, np.ndarray]:
    """The logs of ``ids`` (their records back to back; None where none): owners and records."""
    counts = np.fromiter(
        (len(x) // _RECORD.itemsize if x else 0 for x in logs), dtype=np.int64, count=len(logs)
    )
    records = np.frombuffer(b"".join(x for x in logs if x), dtype=_RECORD)
    return np.repeat(np.asarray(ids, dtype=np.int64), counts), records


def _block_starts(owner: np.ndarray) -> np.ndarray:
    """Where each applicant's records start in a read history (its records are next to each other)."""
    return np.r_[0, np.flatnonzero(owner[1:] != owner[:-1]) + 1] if len(owner) else np.zeros(0, np.int64)


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
