"""A synthetic stream of new bank transactions for existing applicants (demos, tests, the bench).

Transactions follow the synthetic world's types (:data:`creditops.data.schema.TRANSACTION_TYPES`) with
plausible amounts, one event every ``1 / rate`` seconds of event time after ``start``. With a
:class:`StreamDrift`, the stream shows financial stress: more late payments, overdraft fees and smaller
salaries, the kind of change the behavioural features (and then the PD) must pick up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from creditops.data.schema import TRANSACTION_TYPES

_TYPE_SHARE = {
    "salary": 0.08,
    "card_purchase": 0.45,
    "bill_payment": 0.15,
    "loan_repayment": 0.06,
    "atm_withdrawal": 0.10,
    "transfer_in": 0.05,
    "transfer_out": 0.10,
    "overdraft_fee": 0.01,
}
_MEDIAN_AMOUNT = {
    "salary": 3000.0,
    "card_purchase": 45.0,
    "bill_payment": 120.0,
    "loan_repayment": 400.0,
    "atm_withdrawal": 80.0,
    "transfer_in": 300.0,
    "transfer_out": 250.0,
    "overdraft_fee": 25.0,
}


@dataclass(frozen=True)
class StreamDrift:
    """Financial stress injected into the stream.

    Attributes:
        late_rate: share of bill payments and repayments that are late (base 0.03).
        overdraft_share: share of events that are overdraft fees (base 0.01).
        salary_factor: multiplier on salary amounts (base 1).
    """

    late_rate: float = 0.35
    overdraft_share: float = 0.15
    salary_factor: float = 0.6


def synthetic_transactions(
    applicant_ids: np.ndarray,
    n_events: int,
    start: pd.Timestamp,
    *,
    rate: float = 1000.0,
    first_transaction_id: int = 10**12,
    seed: int = 0,
    drift: StreamDrift | None = None,
) -> pd.DataFrame:
    """``n_events`` new transactions of randomly chosen ``applicant_ids``, in event-time order.

    Args:
        applicant_ids: who the transactions belong to (existing applicants).
        n_events: how many.
        start: event time of the first transaction (UTC).
        rate: events per second of event time.
        first_transaction_id: ids are consecutive from here (disjoint from the world's own ids).
        seed: random seed.
        drift: financial stress to inject, or None.
    """
    rng = np.random.default_rng(seed)
    shares = dict(_TYPE_SHARE)
    late_rate = 0.03
    if drift is not None:
        shares["overdraft_fee"] = drift.overdraft_share
        late_rate = drift.late_rate
    types = np.asarray(TRANSACTION_TYPES, dtype=object)
    p = np.array([shares[t] for t in TRANSACTION_TYPES])
    kind = rng.choice(len(types), size=n_events, p=p / p.sum())
    median = np.array([_MEDIAN_AMOUNT[t] for t in TRANSACTION_TYPES])[kind]
    amount = np.round(median * rng.lognormal(0.0, 0.4, n_events), 2)
    if drift is not None:
        amount[types[kind] == "salary"] *= drift.salary_factor
    payable = np.isin(types[kind], ["bill_payment", "loan_repayment"])
    start = pd.Timestamp(start)
    start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
    return pd.DataFrame(
        {
            "transaction_id": np.arange(
                first_transaction_id, first_transaction_id + n_events, dtype=np.int64
            ),
            "applicant_id": rng.choice(np.asarray(applicant_ids, dtype=np.int64), size=n_events),
            "transaction_ts": start + pd.to_timedelta(np.arange(n_events) / rate, unit="s"),
            "amount": np.maximum(amount, 0.01),
            "type": types[kind],
            "is_late": payable & (rng.random(n_events) < late_rate),
        }
    )
