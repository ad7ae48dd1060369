"""Derived features: ratios across groups, all taken as of the same time.

Every function takes a frame holding the identity, bureau and behavioural feature columns valid at one as-of
time (one row per applicant and as-of) and returns a Series aligned to its index. Division by zero yields
the neutral value stated in each docstring, never inf or NaN. A mapping of column name -> numpy array works
as the frame too (the stream's few rows, :mod:`creditops.streaming.consumer`): the Series are then indexed
0..n-1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _ratio(num: pd.Series | np.ndarray, den: pd.Series | np.ndarray, name: str, empty: float = 0.0):
    num_a, den_a = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.divide(num_a, den_a, out=np.full(len(den_a), empty), where=den_a != 0)
    return pd.Series(out, index=getattr(num, "index", None), name=name)


def debt_to_income(frame: pd.DataFrame) -> pd.Series:
    """Total debt / annual income (0 when income is 0)."""
    return _ratio(frame["total_debt"], frame["income"], "debt_to_income")


def credit_utilisation(frame: pd.DataFrame) -> pd.Series:
    """Revolving balance / credit limit (0 without a limit)."""
    return _ratio(frame["revolving_balance"], frame["credit_limit"], "credit_utilisation")


def loan_to_income(frame: pd.DataFrame) -> pd.Series:
    """Requested amount / annual income (0 when income is 0)."""
    return _ratio(frame["requested_amount"], frame["income"], "loan_to_income")


def installment_to_income(frame: pd.DataFrame) -> pd.Series:
    """Straight-line monthly instalment (amount / term) / monthly income (0 when income is 0)."""
    instalment = _ratio(frame["requested_amount"], frame["loan_term_months"], "i")
    return _ratio(instalment, frame["income"] / 12.0, "installment_to_income")


def payment_consistency_score(frame: pd.DataFrame) -> pd.Series:
    """On-time share of bill payments and loan repayments (1 with no payments: nothing was late)."""
    made = frame["bill_payment_count_12m"] + frame["loan_repayment_count_12m"]
    late = _ratio(frame["late_payment_count_12m"], made, "late")
    on_time = np.clip(1.0 - late.to_numpy(), 0.0, 1.0)  # numpy's clip: Series.clip costs ~0.5 ms a call
    return pd.Series(on_time, index=late.index, name="payment_consistency_score")


def income_verification_ratio(frame: pd.DataFrame) -> pd.Series:
    """Salary seen in the account over 12 months / declared annual income (0 when income is 0)."""
    return _ratio(frame["avg_monthly_salary"] * 12.0, frame["income"], "income_verification_ratio")


def cash_flow_to_debt(frame: pd.DataFrame) -> pd.Series:
    """Net 12-month cash flow / (total debt + 1)."""
    return _ratio(frame["net_cash_flow_12m"], frame["total_debt"] + 1.0, "cash_flow_to_debt")


def inquiries_per_credit_line(frame: pd.DataFrame) -> pd.Series:
    """Hard inquiries in 6 months / (open credit lines + 1)."""
    return _ratio(
        frame["num_hard_inquiries_6m"], frame["num_credit_lines"] + 1.0, "inquiries_per_credit_line"
    )
