"""Behavioural features from bank transactions in the 12 months up to an as-of time.

Transactions are grouped once into a :class:`TransactionWindow` (vectorised: one integer group index per
transaction, no per-applicant Python loop); every feature function takes that window and returns one value
per group, as a Series named after its column. Only transactions with ``as_of - 365 days < ts <= as_of``
belong to a group, so nothing after the as-of time can leak in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from creditops.data.schema import TRANSACTION_TYPES
from creditops.timestamps import utc_ns

WINDOW_DAYS = 365
MONTH_DAYS = WINDOW_DAYS / 12
TYPES = TRANSACTION_TYPES
INFLOW_TYPES = ("salary", "transfer_in")
_NS_PER_DAY = 86_400 * 10**9


@dataclass(frozen=True)
class TransactionWindow:
    """Transactions of ``n_groups`` (applicant, as-of) groups, each cut to its 12-month window.

    Attributes:
        n_groups: number of groups; group ``g`` is row ``g`` of the ``groups`` frame given to :meth:`build`.
        group: group index of each transaction in the window.
        amount: transaction amount.
        type_code: index into :data:`TYPES` (-1 for an unknown type).
        is_late: late-payment flag.
        days_before: days from the transaction to its group's as-of time, in [0, 365).
    """

    n_groups: int
    group: np.ndarray
    amount: np.ndarray
    type_code: np.ndarray
    is_late: np.ndarray
    days_before: np.ndarray

    @classmethod
    def build(cls, transactions: pd.DataFrame, groups: pd.DataFrame, window_days: int = WINDOW_DAYS):
        """Assign transactions to groups.

        Args:
            transactions: raw transactions (applicant_id, transaction_ts, amount, type, is_late).
            groups: one row per group with ``applicant_id`` and ``as_of`` (UTC timestamps); an applicant may
                appear several times (e.g. as of the application and as of today).
            window_days: window length.
        """
        return cls.from_arrays(
            transactions["applicant_id"].to_numpy(np.int64),
            utc_ns(transactions["transaction_ts"]),
            transactions["amount"].to_numpy(np.float64),
            _type_codes(transactions["type"]),
            transactions["is_late"].to_numpy(bool),
            groups["applicant_id"].to_numpy(np.int64),
            utc_ns(groups["as_of"]),
            window_days,
        )

    @classmethod
    def from_arrays(
        cls,
        tx_ids: np.ndarray,
        tx_ts: np.ndarray,
        amount: np.ndarray,
        type_code: np.ndarray,
        is_late: np.ndarray,
        g_ids: np.ndarray,
        g_as_of: np.ndarray,
        window_days: int = WINDOW_DAYS,
    ):
        """:meth:`build` from the columns as arrays (times in int64 UTC ns, types as codes into ``TYPES``).

        The stream's state holds its histories as such arrays: no frame to build and take apart again.
        """
        # Slot j = the j-th group of an applicant; within a slot each applicant has at most one group, so a
        # hash lookup maps every transaction to its group in one vectorised step.
        if pd.Index(g_ids).is_unique:  # one group per applicant (the stream's case): no groupby needed
            slot = np.zeros(len(g_ids), dtype=np.int64)
        else:
            slot = pd.Series(g_ids).groupby(g_ids).cumcount().to_numpy()
        parts = []
        for j in range(int(slot.max()) + 1 if len(slot) else 0):
            in_slot = np.flatnonzero(slot == j)
            pos = pd.Index(g_ids[in_slot]).get_indexer(tx_ids)
            hit = np.flatnonzero(pos >= 0)
            grp = in_slot[pos[hit]]
            delta = g_as_of[grp] - tx_ts[hit]
            keep = (delta >= 0) & (delta < window_days * _NS_PER_DAY)
            parts.append((hit[keep], grp[keep], delta[keep]))
        rows = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
        return cls(
            n_groups=len(g_ids),
            group=np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.int64),
            amount=np.asarray(amount, dtype=np.float64)[rows],
            type_code=np.asarray(type_code, dtype=np.int64)[rows],
            is_late=np.asarray(is_late, dtype=bool)[rows],
            days_before=(np.concatenate([p[2] for p in parts]) / _NS_PER_DAY) if parts else np.empty(0),
        )

    def is_type(self, *names: str) -> np.ndarray:
        """Mask of transactions of any of the given types."""
        # a lookup table by code (np.isin sorts on every call); code -1 (unknown) reads the False at the end
        table = np.zeros(len(TYPES) + 1, dtype=bool)
        table[[TYPES.index(n) for n in names]] = True
        return table[self.type_code]

    def count(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Number of (masked) transactions per group."""
        group = self.group if mask is None else self.group[mask]
        return np.bincount(group, minlength=self.n_groups)

    def total(self, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Sum of ``values`` over (masked) transactions per group."""
        if mask is None:
            return np.bincount(self.group, weights=values, minlength=self.n_groups)
        return np.bincount(self.group[mask], weights=values[mask], minlength=self.n_groups)

    def months_with(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Number of distinct 30-day months (counted back from as-of) with a (masked) transaction."""
        month = np.minimum((self.days_before // MONTH_DAYS).astype(np.int64), 11)
        cell = self.group * 12 + month
        hits = np.bincount(cell if mask is None else cell[mask], minlength=self.n_groups * 12)
        return (hits.reshape(self.n_groups, 12) > 0).sum(axis=1)


def _type_codes(types: pd.Series) -> np.ndarray:
    """Index of each type in :data:`TYPES` (-1 if unknown); a categorical over TYPES has them as its codes."""
    dtype = types.dtype
    if isinstance(dtype, pd.CategoricalDtype) and tuple(dtype.categories) == TYPES:
        return np.asarray(types.cat.codes, dtype=np.int64)
    return pd.Index(TYPES).get_indexer(types.to_numpy())


def _series(values: np.ndarray, name: str, dtype: str = "float64") -> pd.Series:
    # the cast on the array: Series.astype costs more than the feature itself on a stream's few rows
    return pd.Series(np.asarray(values, dtype=dtype), name=name)


def _safe_div(num: np.ndarray, den: np.ndarray, empty: float = 0.0) -> np.ndarray:
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.full(den.shape, empty, dtype=np.float64), where=den != 0)


def avg_transaction_amount_12m(window: TransactionWindow) -> pd.Series:
    """Mean transaction amount (0 with no transactions)."""
    return _series(_safe_div(window.total(window.amount), window.count()), "avg_transaction_amount_12m")


def monthly_transaction_count(window: TransactionWindow) -> pd.Series:
    """Transactions per month over the 12-month window."""
    return _series(window.count() / 12.0, "monthly_transaction_count")


def active_months_12m(window: TransactionWindow) -> pd.Series:
    """Months with at least one transaction."""
    return _series(window.months_with(), "active_months_12m", "int64")


def salary_months_12m(window: TransactionWindow) -> pd.Series:
    """Months in which a salary arrived."""
    return _series(window.months_with(window.is_type("salary")), "salary_months_12m", "int64")


def avg_monthly_salary(window: TransactionWindow) -> pd.Series:
    """Salary received over the window divided by 12."""
    return _series(window.total(window.amount, window.is_type("salary")) / 12.0, "avg_monthly_salary")


def salary_amount_cv(window: TransactionWindow) -> pd.Series:
    """Standard deviation / mean of the salary payments (0 with fewer than two payments)."""
    salary = window.is_type("salary")
    n = window.count(salary).astype(np.float64)
    s1 = window.total(window.amount, salary)
    s2 = window.total(window.amount**2, salary)
    mean = _safe_div(s1, n)
    var = np.maximum(_safe_div(s2, n) - mean**2, 0.0)
    cv = np.where(n >= 2, _safe_div(np.sqrt(var), mean), 0.0)
    return _series(cv, "salary_amount_cv")


def days_since_last_salary(window: TransactionWindow) -> pd.Series:
    """Days since the most recent salary, 365 when none arrived in the window."""
    salary = window.is_type("salary")
    out = np.full(window.n_groups, float(WINDOW_DAYS))
    np.minimum.at(out, window.group[salary], window.days_before[salary])
    return _series(out, "days_since_last_salary")


def bill_payment_count_12m(window: TransactionWindow) -> pd.Series:
    """Bill payments made."""
    return _series(window.count(window.is_type("bill_payment")), "bill_payment_count_12m", "int64")


def loan_repayment_count_12m(window: TransactionWindow) -> pd.Series:
    """Loan repayments made."""
    return _series(window.count(window.is_type("loan_repayment")), "loan_repayment_count_12m", "int64")


def late_payment_count_12m(window: TransactionWindow) -> pd.Series:
    """Late bill payments and loan repayments."""
    late = window.is_late & window.is_type("bill_payment", "loan_repayment")
    return _series(window.count(late), "late_payment_count_12m", "int64")


def late_payment_count_3m(window: TransactionWindow) -> pd.Series:
    """Late bill payments and loan repayments in the last 3 months (91 days)."""
    late = (
        window.is_late
        & window.is_type("bill_payment", "loan_repayment")
        & (window.days_before < 3 * MONTH_DAYS)
    )
    return _series(window.count(late), "late_payment_count_3m", "int64")


def overdraft_fee_count_12m(window: TransactionWindow) -> pd.Series:
    """Overdraft fees charged."""
    return _series(window.count(window.is_type("overdraft_fee")), "overdraft_fee_count_12m", "int64")


def overdraft_fee_total_12m(window: TransactionWindow) -> pd.Series:
    """Sum of overdraft fees."""
    return _series(window.total(window.amount, window.is_type("overdraft_fee")), "overdraft_fee_total_12m")


def total_inflow_12m(window: TransactionWindow) -> pd.Series:
    """Money in (salary, transfers in)."""
    return _series(window.total(window.amount, window.is_type(*INFLOW_TYPES)), "total_inflow_12m")


def total_outflow_12m(window: TransactionWindow) -> pd.Series:
    """Money out (every other known type)."""
    out = (window.type_code >= 0) & ~window.is_type(*INFLOW_TYPES)
    return _series(window.total(window.amount, out), "total_outflow_12m")


def net_cash_flow_12m(window: TransactionWindow) -> pd.Series:
    """Inflow minus outflow."""
    net = total_inflow_12m(window).to_numpy() - total_outflow_12m(window).to_numpy()
    return _series(net, "net_cash_flow_12m")


def atm_withdrawal_share_12m(window: TransactionWindow) -> pd.Series:
    """Share of the outflow taken as cash (0 with no outflow)."""
    atm = window.total(window.amount, window.is_type("atm_withdrawal"))
    return _series(_safe_div(atm, total_outflow_12m(window).to_numpy()), "atm_withdrawal_share_12m")
