"""The stream processor: one batch of events in, features of the applicants it touched out.

For a batch (in this order, so a crash at any point loses nothing and double-counts nothing):

1. validate every event with the batch rules (:func:`creditops.streaming.events.validate_events`); a bad
   event is returned for the dead-letter stream with its reason;
2. add the transactions to the idempotent state (a redelivered event changes nothing; the same transaction
   id with other content is a ``duplicate_key`` rejection) and the applications;
3. recompute, for every applicant the batch touched (redelivered events included, since the crash may have
   come before step 4), the behavioural features from the applicant's whole stored history with the batch
   functions (:class:`~creditops.features.behavioural.TransactionWindow`, ``compute_columns``), as of the
   applicant's newest event; the derived features from them and the applicant's identity and bureau features
   (read from the online store); the identity features of new applications;
4. write those rows to the online store, and keep them for the offline store; then prune the histories
   read in step 3 (their windows' horizons move forward), off the path of the batch's events: the prune is
   sent and the server runs it while the next batch is validated (the state's next call waits for it);
5. write the kept rows of all batches since the last flush offline (:meth:`~StreamProcessor.take_pending`,
   :meth:`~StreamProcessor.write_offline`);
6. only then may the caller acknowledge those batches to the broker.

The offline write is off an event's path to the online store: a Parquet part per batch cost about as much as
the online write and came first, and the next batch waited for both. Writing the rows of many batches as one
part (the caller flushes by size or age, when idle and at shutdown) keeps crash safety, since a batch is
acknowledged only after its offline write too: a consumer killed between the two is redelivered the batch,
and recomputing it from the idempotent state writes the same rows again.

Counts: ``events == applied + duplicates + expired + dead_lettered`` for every batch (:class:`BatchOutcome`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from creditops.features.behavioural import TransactionWindow
from creditops.features.build import compute_columns, identity_table
from creditops.features.registry import JOIN_KEY, TIMESTAMP, features_in
from creditops.streaming.columns import Columns
from creditops.streaming.events import Rejected, validate_events
from creditops.streaming.state import RedisEventState
from creditops.timestamps import utc_ns

STREAM_GROUPS = ("identity", "behavioural", "derived")
"""Feature groups the stream writes (bureau snapshots arrive in batch)."""
_NO_EVENT = np.iinfo(np.int64).min  # an applicant without a stored event has no behavioural row


class FeatureSink(Protocol):
    """Where recomputed feature rows go: ``group -> rows`` (``applicant_id, event_timestamp, features``).

    The rows are :class:`~creditops.streaming.columns.Columns` (no frame built): one batch's rows for the
    online sinks, the rows of every batch since the last flush for the offline ones. An online sink may also
    have ``send(tables)``, which sends the write and returns the call that confirms it (see ``process``).
    """

    def write(self, tables: Mapping[str, Columns]) -> None:  # noqa: D102
        ...


ContextReader = Callable[[np.ndarray], "pd.DataFrame | Columns"]
"""ids -> rows of the identity and bureau features the derived ones need (NaN where unknown), id order."""


@dataclass
class BatchOutcome:
    """What one batch did.

    Attributes:
        events: events in the batch.
        applied: events that changed the state (new transactions, applications).
        duplicates: redelivered events recognised by their id (nothing changed).
        expired: valid transactions older than any window the applicant's features can still see.
        dead_lettered: events rejected, each with its reason (``rejected``).
        applicants: applicants whose features were recomputed and written.
        rejected: (position in the batch, rejection).
        columns: the feature rows written, by group (see :attr:`tables` for frames).
    """

    events: int
    applied: int = 0
    duplicates: int = 0
    expired: int = 0
    dead_lettered: int = 0
    applicants: int = 0
    rejected: list[tuple[int, Rejected]] = field(default_factory=list)
    columns: dict[str, Columns] = field(default_factory=dict)

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """The feature rows written, by group, as frames (built on each call)."""
        return {group: rows.frame() for group, rows in self.columns.items()}


def _send(sink: FeatureSink, tables: Mapping[str, Columns]) -> Callable[[], None]:
    """``sink.send(tables)`` when the sink has it (returns the call that confirms the write), else a write."""
    send = getattr(sink, "send", None)
    if send is not None:
        return send(tables)
    sink.write(tables)
    return lambda: None


class StreamProcessor:
    """Validate, apply and featurise batches of events (see the module docstring).

    Args:
        state: the idempotent event state.
        sinks: feature sinks written by :meth:`process` (the online store).
        offline: feature sinks written by :meth:`write_offline` with the rows of every batch processed since
            the last flush (the offline store).
        context: reader of the identity and bureau features the derived features need; None writes the
            behavioural and identity views only.
        known_applicants: ids -> mask of applicants known outside the stream (e.g. present in the online
            store); the stream's own applications always count. None accepts any applicant id.
        now: clock for the ``future_timestamp`` rule (None skips it).
    """

    def __init__(
        self,
        state: RedisEventState,
        sinks: Sequence[FeatureSink] = (),
        context: ContextReader | None = None,
        known_applicants: Callable[[np.ndarray], np.ndarray] | None = None,
        now: Callable[[], pd.Timestamp] | None = None,
        offline: Sequence[FeatureSink] = (),
    ):
        self.state = state
        self.sinks = list(sinks)
        self.offline = list(offline)
        self._kept: dict[str, list[Columns]] = {}  # rows for the offline sinks, by group
        self.context = context
        self.known_applicants = known_applicants
        self.now = now

    def _known(self, ids: np.ndarray) -> np.ndarray:
        # each applicant once; the state is asked only about those the online store does not hold (an
        # applicant the stream applied and the store did not yet), so a batch of known applicants asks once
        unique, inverse = np.unique(ids, return_inverse=True)
        known = np.asarray(self.known_applicants(unique), dtype=bool)
        if not known.all():
            rest = np.flatnonzero(~known)
            known[rest] = self.state.known(unique[rest])
        return known[inverse]

    def settle(self) -> None:
        """Wait for the last batch's prune (:meth:`RedisEventState.settle`): its errors are raised here."""
        self.state.settle()

    @property
    def pending(self) -> bool:
        """Whether processed rows wait to be written offline (their batches may not be acknowledged yet)."""
        return bool(self._kept)

    def take_pending(self) -> dict[str, list[Columns]]:
        """Step 5: the kept rows (by group) for :meth:`write_offline`, leaving none.

        :meth:`process` keeps anew. Their batches are acknowledged once the write returned; if it fails, they
        are redelivered.
        """
        kept, self._kept = self._kept, {}
        return kept

    def write_offline(self, kept: dict[str, list[Columns]]) -> None:
        """Write kept rows to every offline sink, one table per group (thread-safe beside :meth:`process`)."""
        if not kept:
            return
        tables = {group: Columns.concat(parts) for group, parts in kept.items()}
        for sink in self.offline:
            sink.write(tables)

    def process(self, raws: Sequence[bytes]) -> BatchOutcome:
        """Run steps 1-4 on one batch; acknowledge it only once this returned and its rows are offline."""
        now = self.now() if self.now else None
        checked = self._known if self.known_applicants is not None else None
        batch = validate_events(raws, now=now, known_applicants=checked)
        outcome = BatchOutcome(events=len(raws), rejected=list(batch.rejected))
        transactions = batch.tables.get("transactions", pd.DataFrame())
        applications = batch.tables.get("applications", pd.DataFrame())
        if len(transactions):
            added = self.state.add_transactions(transactions)
            if added.conflict.any():
                for r in transactions.loc[added.conflict].itertuples(index=False):
                    detail = f"transaction_id {r.transaction_id} already applied with other content"
                    outcome.rejected.append(
                        (int(r.event_index), Rejected(raws[r.event_index], "duplicate_key", detail))
                    )
                transactions = transactions.loc[~added.conflict]
            outcome.applied += int(added.new.sum())
            outcome.duplicates += int(added.duplicate.sum())
            outcome.expired += int(added.expired.sum())
        if len(applications):
            self.state.add_applications(applications)
            outcome.applied += len(applications)
        outcome.rejected.sort(key=lambda item: item[0])
        outcome.dead_lettered = len(outcome.rejected)
        ids = np.unique(
            np.concatenate(
                [
                    transactions["applicant_id"].to_numpy(np.int64)
                    if len(transactions)
                    else np.empty(0, np.int64),
                    applications["applicant_id"].to_numpy(np.int64)
                    if len(applications)
                    else np.empty(0, np.int64),
                ]
            )
        )
        if len(ids):
            outcome.columns, history = self._features(ids, applications)
            outcome.applicants = len(ids)
            # a sink that can send its writes and confirm them later (send) confirms them after the prune is
            # sent: the server writes while the prune is prepared. The prune's reply is not waited for
            finishes = [_send(sink, outcome.columns) for sink in self.sinks]
            try:
                self.state.prune_records(*history, wait=False)
            finally:
                for finish in finishes:
                    finish()
            if self.offline:
                for group, rows in outcome.columns.items():
                    if len(rows):
                        self._kept.setdefault(group, []).append(rows)
        if outcome.events != outcome.applied + outcome.duplicates + outcome.expired + outcome.dead_lettered:
            raise RuntimeError(f"stream batch lost events: {outcome}")
        return outcome

    def features(self, ids: np.ndarray, applications: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
        """Identity (new applications), behavioural and derived rows of ``ids`` from the stored state.

        Each applicant's behavioural row is as of its newest stored event (transaction or application).
        """
        columns, history = self._features(ids, applications)
        self.state.prune_records(*history)
        return {group: rows.frame() for group, rows in columns.items()}

    def _features(
        self, ids: np.ndarray, applications: pd.DataFrame | None = None
    ) -> tuple[dict[str, Columns], tuple[np.ndarray, np.ndarray]]:
        """:meth:`features` as columns, and the stored history they came from (not pruned yet).

        The history stays arrays (:meth:`RedisEventState.history_records`), each table is the feature
        functions' columns (:func:`compute_columns`) and the derived functions read their inputs from a
        mapping of arrays: for a batch's few applicants, frames cost more than the features.
        """
        ids = np.asarray(ids, dtype=np.int64)
        owner, records, stored_apps = self.state.history_records(ids)
        ts = records["ts"]
        # newest event per applicant in int64 ns (numpy, not pandas alignment: small batches pay its overhead)
        position = pd.Index(ids)
        newest = np.full(len(ids), _NO_EVENT, dtype=np.int64)
        if len(owner):
            np.maximum.at(newest, position.get_indexer(owner), ts)
        if len(stored_apps):
            at = position.get_indexer(stored_apps["applicant_id"].to_numpy(np.int64))
            np.maximum.at(newest, at, utc_ns(stored_apps["application_ts"]))
        seen = newest != _NO_EVENT
        keys = {JOIN_KEY: ids[seen], TIMESTAMP: newest[seen].view("datetime64[ns]")}
        tables: dict[str, Columns] = {}
        identity = None
        if applications is not None and len(applications):
            apps = applications.drop(columns=["event_index"]).reset_index(drop=True)
            identity = identity_table(apps)
            tables["identity"] = Columns.of(identity)
        window = TransactionWindow.from_arrays(
            owner, ts, records["amount"], records["type"], records["late"], keys[JOIN_KEY], newest[seen]
        )
        behavioural = compute_columns("behavioural", window)
        tables["behavioural"] = Columns({**keys, **behavioural})
        if self.context is not None and seen.any():
            read = self.context(keys[JOIN_KEY])
            context = {c: np.array(read[c], dtype=np.float64) for c in read.columns}  # a copy: written below
            if identity is not None:  # a fresh application beats what the online store held
                fresh = identity.drop_duplicates(JOIN_KEY, keep="last")
                idx = pd.Index(keys[JOIN_KEY]).get_indexer(fresh[JOIN_KEY].to_numpy(np.int64))
                for column in [f.name for f in features_in("identity") if f.name in context]:
                    context[column][idx[idx >= 0]] = fresh[column].to_numpy()[idx >= 0]
            derived = compute_columns("derived", {**behavioural, **context})
            for name, values in derived.items():  # a missing input gives 0 (NaN never reaches the store)
                if values.dtype.kind == "f":
                    derived[name] = np.where(np.isnan(values), 0.0, values)
            tables["derived"] = Columns({**keys, **derived})
        return tables, (owner, records)
