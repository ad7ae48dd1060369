"""Bureau features: one row per monthly credit-bureau snapshot.

Every function takes the ``bureau`` frame (applicant_id, snapshot_ts, ... per DESIGN.md) and returns a Series
aligned to its index. Trend features compare a snapshot with the same applicant's snapshot N calendar months
earlier (or the earliest one on file when the history is shorter), so they only look backwards in time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from creditops.timestamps import utc_ns

NEVER_DELINQUENT_MONTHS = 120.0


def credit_score(bureau: pd.DataFrame) -> pd.Series:
    """Bureau credit score."""
    return bureau["credit_score"].astype("int64").rename("credit_score")


def num_credit_lines(bureau: pd.DataFrame) -> pd.Series:
    """Open credit lines."""
    return bureau["num_credit_lines"].astype("int64").rename("num_credit_lines")


def total_debt(bureau: pd.DataFrame) -> pd.Series:
    """Total outstanding debt."""
    return bureau["total_debt"].astype("float64").rename("total_debt")


def revolving_balance(bureau: pd.DataFrame) -> pd.Series:
    """Outstanding revolving balance."""
    return bureau["revolving_balance"].astype("float64").rename("revolving_balance")


def credit_limit(bureau: pd.DataFrame) -> pd.Series:
    """Total revolving credit limit."""
    return bureau["credit_limit"].astype("float64").rename("credit_limit")


def num_delinquencies_12m(bureau: pd.DataFrame) -> pd.Series:
    """Delinquencies in the last 12 months."""
    return bureau["num_delinquencies_12m"].astype("int64").rename("num_delinquencies_12m")


def months_since_last_delinquency(bureau: pd.DataFrame) -> pd.Series:
    """Months since the last delinquency; never (NaN) and anything older become the 120-month cap.

    The cap keeps the value finite, so request validation and monotone constraints both work.
    """
    months = bureau["months_since_last_delinquency"].astype("float64")
    return (
        months.fillna(NEVER_DELINQUENT_MONTHS)
        .clip(0, NEVER_DELINQUENT_MONTHS)
        .rename("months_since_last_delinquency")
    )


def ever_delinquent(bureau: pd.DataFrame) -> pd.Series:
    """1 if the bureau reports any delinquency, ever."""
    ever = bureau["months_since_last_delinquency"].notna() | (bureau["num_delinquencies_12m"] > 0)
    return ever.astype("int64").rename("ever_delinquent")


def num_hard_inquiries_6m(bureau: pd.DataFrame) -> pd.Series:
    """Hard inquiries in the last 6 months."""
    return bureau["num_hard_inquiries_6m"].astype("int64").rename("num_hard_inquiries_6m")


def oldest_account_months(bureau: pd.DataFrame) -> pd.Series:
    """Age of the oldest account in months."""
    return bureau["oldest_account_months"].astype("int64").rename("oldest_account_months")


def credit_score_trend_6m(bureau: pd.DataFrame) -> pd.Series:
    """Credit score now minus 6 months earlier."""
    return _change(bureau, "credit_score", 6).rename("credit_score_trend_6m")


def credit_score_trend_12m(bureau: pd.DataFrame) -> pd.Series:
    """Credit score now minus 12 months earlier."""
    return _change(bureau, "credit_score", 12).rename("credit_score_trend_12m")


def total_debt_trend_6m(bureau: pd.DataFrame) -> pd.Series:
    """Total debt now minus 6 months earlier."""
    return _change(bureau, "total_debt", 6).rename("total_debt_trend_6m")


def _change(bureau: pd.DataFrame, column: str, months: int) -> pd.Series:
    """``column`` minus its value at the latest snapshot at or before the same day ``months`` months earlier.

    Falls back to the applicant's first snapshot when there is none that old. Vectorised: one sort (skipped
    when the frame is already ordered by applicant and time) and one ``searchsorted`` on a packed
    (applicant rank, seconds) key.
    """
    ids = bureau["applicant_id"].to_numpy(np.int64)
    ts = utc_ns(bureau["snapshot_ts"])
    ordered = len(ids) < 2 or bool(
        np.all((ids[1:] > ids[:-1]) | ((ids[1:] == ids[:-1]) & (ts[1:] >= ts[:-1])))
    )
    order = np.arange(len(ids)) if ordered else np.lexsort((ts, ids))
    sid, sts = ids[order], ts[order]
    svalues = bureau[column].to_numpy(np.float64)[order]
    starts = np.r_[True, sid[1:] != sid[:-1]] if len(sid) else np.zeros(0, bool)
    rank = np.cumsum(starts) - 1
    origin = sts.min() if len(sts) else 0
    key = rank * _RANK_STRIDE + (sts - origin) // _NS_PER_S
    target = rank * _RANK_STRIDE + np.maximum((_months_back(sts, months) - origin) // _NS_PER_S, -1)
    pos = np.searchsorted(key, target, side="right") - 1
    safe = np.maximum(pos, 0)
    first = np.maximum.accumulate(np.where(starts, np.arange(len(sid)), 0))
    before = np.where((pos >= 0) & (rank[safe] == rank), svalues[safe], svalues[first])
    out = np.empty(len(ids), dtype=np.float64)
    out[order] = svalues - before
    return pd.Series(out, index=bureau.index, dtype="float64")


_NS_PER_S = 10**9
_RANK_STRIDE = 2**40  # > seconds in 30 000 years: packed keys never overlap between applicants
_MAX_DAY_OFFSET = 28 * 86_400 * _NS_PER_S - 1  # a 31st maps to the 28th/29th, never into the next month


def _months_back(ts_ns: np.ndarray, months: int) -> np.ndarray:
    """The same time of month ``months`` calendar months earlier (day capped at the 28th)."""
    month = ts_ns.view("datetime64[ns]").astype("datetime64[M]")
    offset = np.minimum(ts_ns - month.astype("datetime64[ns]").view(np.int64), _MAX_DAY_OFFSET)
    return (month - months).astype("datetime64[ns]").view(np.int64) + offset
