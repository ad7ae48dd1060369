"""Bureau features: one row per monthly credit-bureau snapshot.

Every function takes the ``bureau`` frame (applicant_id, snapshot_ts, ... per DESIGN.md) and returns a Series
aligned to its index. Trend features compare a snapshot with the same applicant's snapshot N calendar months
earlier (or the earliest one on file when the history is shorter), so they only look backwards in time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

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
    return months.fillna(NEVER_DELINQUENT_MONTHS).clip(0, NEVER_DELINQUENT_MONTHS).rename(
        "months_since_last_delinquency"
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
    """``column`` minus its value ``months`` calendar months earlier (fallback: the applicant's first snapshot)."""
    ts_ns = _ns(bureau["snapshot_ts"])
    month = ts_ns.view("datetime64[ns]").astype("datetime64[M]").astype(np.int64)
    ids = bureau["applicant_id"].to_numpy(np.int64)
    values = bureau[column].to_numpy(np.float64)
    # Several snapshots in one calendar month: the later one is the state at the end of that month.
    by_key = pd.Series(np.arange(len(ids)), index=ids * 100_000 + month)
    if not by_key.index.is_unique:
        order = np.argsort(ts_ns, kind="stable")
        by_key = by_key.iloc[order].groupby(level=0).last()
    pos = by_key.index.get_indexer(ids * 100_000 + month - months)
    before = np.where(pos >= 0, values[by_key.to_numpy()[np.maximum(pos, 0)]], _earliest(ids, ts_ns, values))
    return pd.Series(values - before, index=bureau.index, dtype="float64")


def _earliest(ids: np.ndarray, ts_ns: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each row's applicant's value at their earliest snapshot."""
    order = np.lexsort((ts_ns, ids))
    sorted_ids = ids[order]
    starts = np.r_[True, sorted_ids[1:] != sorted_ids[:-1]]
    first_of_run = np.maximum.accumulate(np.where(starts, np.arange(len(ids)), 0))
    out = np.empty(len(ids), dtype=np.float64)
    out[order] = values[order][first_of_run]
    return out


def _ns(ts: pd.Series) -> np.ndarray:
    """UTC nanoseconds since the epoch, without materialising Timestamp objects."""
    return pd.DatetimeIndex(pd.to_datetime(ts, utc=True)).asi8
