"""Request-time features: what the applicant asks for at the moment of the decision, against what we know.

A loan request carries the amount and term asked for *now* (:data:`REQUEST_INPUTS`); no batch table knows
them. Each feature of :data:`REQUEST_FEATURES` is computed by the function of the same name from the request
inputs and the applicant's identity row (``income``, ``requested_amount`` = the amount on the application).

The request inputs are deliberately *not* called ``requested_amount`` / ``loan_term_months``: those are
identity features, and Feast keys request data and features by the same short name, so a request field of
that name is silently replaced by the stored identity value.

Every function takes columns by name, either a ``dict`` of lists (what a Feast ``mode="python"`` on-demand
view receives) or a DataFrame, and returns a list of floats for a dict, a Series named after the feature
(aligned to the frame's index) for a frame. Division by zero gives the neutral value stated in each
docstring, never inf or NaN; a missing input (``None``/NaN) gives NaN, i.e. no value.

These features are not model inputs: ``credit_scoring_v1`` and the registry's ``FEATURES`` are unchanged.
"""

# ruff: noqa: E501  (the feature table reads best one feature per line)
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

#: FeatureService of the model inputs plus the request-time features.
REQUEST_FEATURE_SERVICE = "credit_request_v1"
#: Nominal annual interest rate of the indicative annuity payment (12 % = 1 % a month).
NOMINAL_ANNUAL_RATE = 0.12

Columns = Mapping[str, Any]
"""Columns by name: a ``dict`` of lists / arrays, or a DataFrame."""


@dataclass(frozen=True)
class RequestInput:
    """A value sent with the loan request (a field of the Feast ``RequestSource``).

    Attributes:
        name: field name in the request (and in Feast ``entity_rows``).
        dtype: ``float`` or ``int``.
        description: what the value is.
        valid_range: inclusive (low, high) bounds of an acceptable request; ``None`` = unbounded.
    """

    name: str
    dtype: Literal["float", "int"]
    description: str
    valid_range: tuple[float | None, float | None] = (None, None)


@dataclass(frozen=True)
class RequestFeatureDef:
    """A request-time feature, like :class:`~creditops.features.registry.FeatureDef` but without a batch group.

    Attributes:
        name: column name, also the name of the function computing it.
        dtype: ``float`` or ``int``.
        direction: expected effect on the probability of default (+1 raises risk, -1 lowers it, 0 unclear).
        description: what the value is.
        reason: plain-language adverse-action reason used when this feature pushes the PD up.
        valid_range: inclusive (low, high) bounds a served value must respect; ``None`` = unbounded.
    """

    name: str
    dtype: Literal["float", "int"]
    direction: Literal[-1, 0, 1]
    description: str
    reason: str
    valid_range: tuple[float | None, float | None] = (None, None)


REQUEST_INPUTS: tuple[RequestInput, ...] = (
    RequestInput("request_amount", "float", "Loan amount asked for at decision time.", (0, None)),
    RequestInput("request_term_months", "int", "Loan term in months asked for at decision time.", (1, 480)),
)  # fmt: skip

REQUEST_FEATURES: tuple[RequestFeatureDef, ...] = (
    RequestFeatureDef("requested_loan_to_income", "float", 1, "Request amount / declared annual income (0 when income is 0).", "Amount requested is high relative to income", (0, None)),
    RequestFeatureDef("requested_payment_to_income", "float", 1, "Annuity payment of the request (12 % nominal) / monthly income (0 when income or term is 0).", "Monthly repayment would be high relative to income", (0, None)),
    RequestFeatureDef("requested_amount_vs_declared", "float", 1, "Request amount / amount on the application (1 when the application amount is 0).", "Amount requested exceeds the amount applied for", (0, None)),
)  # fmt: skip


def request_feature_names() -> list[str]:
    """Ordered request-time features (the order of the on-demand view's schema)."""
    return [f.name for f in REQUEST_FEATURES]


def _column(columns: Columns, name: str) -> np.ndarray:
    values = columns[name]
    if isinstance(values, pd.Series):
        return values.to_numpy(np.float64, na_value=np.nan)
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _ratio(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    return np.divide(num, den, out=np.full(len(den), empty), where=den != 0)


def _as_output(columns: Columns, values: np.ndarray, name: str) -> list[float] | pd.Series:
    if isinstance(columns, pd.DataFrame):
        return pd.Series(values, index=columns.index, name=name)
    return values.tolist()


def annuity_payment(
    amount: np.ndarray, term_months: np.ndarray, rate: float = NOMINAL_ANNUAL_RATE
) -> np.ndarray:
    """Fixed monthly payment repaying ``amount`` over ``term_months`` at nominal annual ``rate``.

    ``amount * r / (1 - (1 + r) ** -n)`` with ``r = rate / 12`` (``amount / n`` at rate 0); 0 for a
    term of 0 or less (no schedule), NaN where an input is NaN.
    """
    r = rate / 12.0
    n = np.where(term_months > 0, term_months, np.nan)
    with np.errstate(invalid="ignore"):
        payment = amount / n if r == 0 else amount * r / (1.0 - (1.0 + r) ** -n)
    return np.where(term_months <= 0, 0.0, payment)


def requested_loan_to_income(columns: Columns) -> list[float] | pd.Series:
    """Request amount / declared annual income (0 when income is 0)."""
    ratio = _ratio(_column(columns, "request_amount"), _column(columns, "income"), 0.0)
    return _as_output(columns, ratio, "requested_loan_to_income")


def requested_payment_to_income(columns: Columns) -> list[float] | pd.Series:
    """Annuity payment of the request at :data:`NOMINAL_ANNUAL_RATE` / monthly income.

    0 when income is 0 or the term is 0 (neither gives a meaningful burden; the model never sees inf).
    """
    payment = annuity_payment(_column(columns, "request_amount"), _column(columns, "request_term_months"))
    ratio = _ratio(payment, _column(columns, "income") / 12.0, 0.0)
    return _as_output(columns, ratio, "requested_payment_to_income")


def requested_amount_vs_declared(columns: Columns) -> list[float] | pd.Series:
    """Request amount / ``requested_amount`` on the application (1, "as declared", when that is 0)."""
    ratio = _ratio(_column(columns, "request_amount"), _column(columns, "requested_amount"), 1.0)
    return _as_output(columns, ratio, "requested_amount_vs_declared")


_FUNCTIONS: dict[str, Callable[[Columns], list[float] | pd.Series]] = {
    f.__name__: f
    for f in (requested_loan_to_income, requested_payment_to_income, requested_amount_vs_declared)
}


def compute_request_features(columns: Columns) -> dict[str, list[float] | pd.Series]:
    """Every request-time feature of ``columns``, by name, in :data:`REQUEST_FEATURES` order."""
    return {f.name: _FUNCTIONS[f.name](columns) for f in REQUEST_FEATURES}
