"""Per-applicant event history in Redis: the state the streaming features are recomputed from.

Each applicant's transactions live in one hash ``<prefix>tx:<applicant_id>``, field = transaction id,
value = 18 packed bytes (event time ns, amount, type code, late flag). Adding is ``HSETNX``: a redelivered
event (same id, same content) changes nothing, so a consumer that crashed after writing state but before
acknowledging can simply process the batch again. The same id with different content is a conflict
(``duplicate_key``), as in batch validation. Applications live in ``<prefix>app:<applicant_id>`` (their raw
columns as JSON).

Transactions older than the feature window (365 days before the applicant's newest event) are pruned, so the
state of an applicant stays bounded.
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
    records["ts"] = pd.DatetimeIndex(pd.to_datetime(frame["transaction_ts"], utc=True)).as_unit("ns").asi8
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
        ids = frame["applicant_id"].to_numpy(np.int64)
        tx_ids = frame["transaction_id"].to_numpy(np.int64)
        ts = np.frombuffer(b"".join(values), dtype=_RECORD)["ts"]
        horizon = self.client.hmget(self._horizon_key, [str(int(i)) for i in ids])
        expired = ts <= np.array([int(h) if h else np.iinfo(np.int64).min for h in horizon], dtype=np.int64)
        live = np.flatnonzero(~expired)
        with self.client.pipeline(transaction=False) as pipe:
            for i in live:
                pipe.hsetnx(self._tx_key(int(ids[i])), str(int(tx_ids[i])), values[i])
            added = np.zeros(n, bool)
            added[live] = np.asarray(pipe.execute(), dtype=bool)
        new = added.copy()
        duplicate = np.zeros(n, bool)
        conflict = np.zeros(n, bool)
        old = np.flatnonzero(~added & ~expired)
        if len(old):
            with self.client.pipeline(transaction=False) as pipe:
                for i in old:
                    pipe.hget(self._tx_key(int(ids[i])), str(int(tx_ids[i])))
                stored = pipe.execute()
            same = np.array([s == values[i] for s, i in zip(stored, old, strict=True)], dtype=bool)
            duplicate[old[same]] = True
            conflict[old[~same]] = True
        return AddResult(new, duplicate, conflict, expired)

    def seed(self, transactions: pd.DataFrame, chunk_rows: int = 200_000) -> int:
        """Load a batch history (e.g. the snapshot's last 12 months) so the stream continues from it.

        Idempotent like every add (by transaction id); returns the rows newly stored.
        """
        added = 0
        for lo in range(0, len(transactions), chunk_rows):
            added += int(self.add_transactions(transactions.iloc[lo : lo + chunk_rows]).new.sum())
        return added

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
        with self.client.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.exists(self._app_key(int(i)))
            return np.asarray(pipe.execute(), dtype=bool)

    def applications(self, ids: Sequence[int]) -> pd.DataFrame:
        """The stored applications of ``ids`` that have one."""
        raw = self.client.mget([self._app_key(int(i)) for i in ids]) if len(ids) else []
        rows = [json.loads(r) for r in raw if r]
        return pd.DataFrame(rows)

    def transactions(self, ids: Sequence[int], prune: bool = True) -> pd.DataFrame:
        """Every stored transaction of ``ids`` (``applicant_id, transaction_ts, amount, type, is_late``).

        With ``prune``, transactions older than the window before each applicant's newest one are deleted.
        """
        with self.client.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hgetall(self._tx_key(int(i)))
            replies = pipe.execute()
        counts = np.array([len(r) for r in replies], dtype=np.int64)
        blob = b"".join(v for r in replies for v in r.values())
        records = np.frombuffer(blob, dtype=_RECORD)
        owner = np.repeat(np.asarray(ids, dtype=np.int64), counts)
        if prune and len(records):
            newest = np.repeat(
                np.maximum.reduceat(records["ts"], np.r_[0, np.cumsum(counts)[:-1]][counts > 0]),
                counts[counts > 0],
            )
            horizon = newest - WINDOW_DAYS * _NS_PER_DAY
            old = records["ts"] <= horizon
            if old.any():
                fields = [f for r in replies for f in r.keys()]
                # the horizon only moves forward: an event at or before it can never enter a window again
                marks = pd.Series(horizon[old]).groupby(owner[old]).max()
                doomed = np.flatnonzero(old)  # grouped by owner already (replies come applicant by applicant)
                cuts = np.flatnonzero(np.diff(owner[doomed])) + 1
                with self.client.pipeline(transaction=False) as pipe:
                    for ks in np.split(doomed, cuts):
                        pipe.hdel(self._tx_key(int(owner[ks[0]])), *[fields[k] for k in ks])
                    pipe.hset(self._horizon_key, mapping={str(int(a)): str(int(h)) for a, h in marks.items()})
                    pipe.execute()
        return pd.DataFrame(
            {
                "applicant_id": owner,
                "transaction_ts": pd.to_datetime(records["ts"], utc=True),
                "amount": records["amount"],
                "type": np.asarray(TRANSACTION_TYPES, dtype=object)[records["type"].astype(np.int64)]
                if len(records)
                else np.array([], dtype=object),
                "is_late": records["late"],
            }
        )

    def clear(self) -> int:
        """Delete every key under the prefix (tests, re-seeding); returns how many."""
        keys = list(self.client.scan_iter(match=self.prefix + b"*", count=1000))
        for i in range(0, len(keys), 1000):
            self.client.delete(*keys[i : i + 1000])
        return len(keys)
