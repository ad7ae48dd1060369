"""Shared by the streaming tests and bench: a small world as events, and the batch answer to compare with."""

from __future__ import annotations

import numpy as np
import pandas as pd

from creditops.data.synthetic import CreditWorld
from creditops.features.build import behavioural_table, bureau_table, derived_table, identity_table
from creditops.features.registry import JOIN_KEY, TIMESTAMP, features_in
from creditops.streaming.events import encode_applications, encode_transactions

transaction_events = encode_transactions
application_events = encode_applications


def newest_event(world: CreditWorld, transactions: pd.DataFrame) -> pd.DataFrame:
    """(applicant_id, as_of) = each applicant's newest event: application or transaction."""
    apps = world.applications[[JOIN_KEY, "application_ts"]].rename(columns={"application_ts": "as_of"})
    txs = transactions[[JOIN_KEY, "transaction_ts"]].rename(columns={"transaction_ts": "as_of"})
    both = pd.concat([apps, txs], ignore_index=True)
    both["as_of"] = pd.to_datetime(both["as_of"], utc=True)
    return both.groupby(JOIN_KEY, as_index=False)["as_of"].max()


def batch_answer(
    world: CreditWorld, transactions: pd.DataFrame, points: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """The batch feature functions' behavioural and derived rows at ``points``."""
    identity = identity_table(world.applications)
    bureau = bureau_table(world.bureau)
    behavioural = behavioural_table(transactions, points)
    derived = derived_table(identity, bureau, behavioural)
    return {"behavioural": behavioural, "derived": derived}


def context_at(world: CreditWorld, points: pd.DataFrame):
    """A context reader answering what the online store holds at each point (identity, bureau as of it)."""
    identity = identity_table(world.applications).drop(columns=[TIMESTAMP])
    bureau = bureau_table(world.bureau).rename(columns={TIMESTAMP: "_ts"}).sort_values("_ts")
    at = points.rename(columns={"as_of": "_ts"}).sort_values("_ts")
    latest = pd.merge_asof(at, bureau, on="_ts", by=JOIN_KEY, direction="backward")
    frame = latest.merge(identity, on=JOIN_KEY, how="left").set_index(JOIN_KEY)
    columns = [f.name for g in ("identity", "bureau") for f in features_in(g)]

    def read(ids: np.ndarray) -> pd.DataFrame:
        return frame.reindex(ids)[columns].reset_index(drop=True)

    return read


def latest_rows(outcomes, group: str) -> pd.DataFrame:
    """The last row written per applicant for ``group`` over a sequence of batch outcomes."""
    frames = [o.tables[group] for o in outcomes if group in o.tables and len(o.tables[group])]
    rows = pd.concat(frames, ignore_index=True)
    return rows.groupby(JOIN_KEY, as_index=False).tail(1).sort_values(JOIN_KEY).reset_index(drop=True)
