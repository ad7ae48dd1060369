"""The raw-table contract of the synthetic credit world: categories, dtypes and validation rules.

One place names every allowed category and every column's logical type and valid range; the generator
(:mod:`creditops.data.synthetic`) produces it and the validator (:mod:`creditops.data.validation`) checks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

PURPOSES: tuple[str, ...] = (
    "car",
    "home_improvement",
    "debt_consolidation",
    "education",
    "business",
    "medical",
    "other",
)
HOME_OWNERSHIP: tuple[str, ...] = ("rent", "own", "mortgage")
SEXES: tuple[str, ...] = ("female", "male")
AGE_BANDS: tuple[str, ...] = ("18-25", "26-35", "36-50", "51-65", "65+")
RACES: tuple[str, ...] = ("white", "black", "hispanic", "asian", "other")
TRANSACTION_TYPES: tuple[str, ...] = (
    "salary",
    "card_purchase",
    "bill_payment",
    "loan_repayment",
    "atm_withdrawal",
    "transfer_in",
    "transfer_out",
    "overdraft_fee",
)
LOAN_TERMS: tuple[int, ...] = (12, 24, 36, 48, 60)

Kind = Literal["int", "float", "str", "bool", "timestamp", "any"]


def age_band(age: pd.Series | np.ndarray) -> pd.Categorical:
    """Map ages in years to the protected age bands ``18-25|26-35|36-50|51-65|65+`` (65+ means over 65).

    Args:
        age: Ages in whole or fractional years; missing or under-18 values map to NaN.

    Returns:
        A categorical with the bands of :data:`AGE_BANDS` as categories.
    """
    return pd.cut(
        np.asarray(age, dtype="float64"),
        bins=[17.5, 25.5, 35.5, 50.5, 65.5, np.inf],
        labels=list(AGE_BANDS),
    )


@dataclass(frozen=True)
class ColumnRule:
    """What a valid value of one column looks like.

    Attributes:
        name: Column name.
        kind: Logical type; values that cannot be parsed as this type break the ``type`` rule (``any``: no
            type check).
        nullable: Whether a missing value is allowed (``null`` rule otherwise).
        min: Smallest allowed value (numeric kinds), ``None`` for no bound.
        max: Largest allowed value (numeric kinds), ``None`` for no bound.
        min_inclusive: Whether ``min`` itself is allowed (``amount > 0`` is ``min=0, min_inclusive=False``).
        categories: Allowed values for a ``str`` column (``category`` rule), ``None`` for any string.
    """

    name: str
    kind: Kind
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    min_inclusive: bool = True
    categories: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TableSchema:
    """Validation rules for one table.

    Attributes:
        name: Table name (used in the quarantine frame and report).
        key: Columns that identify a row; duplicates break ``duplicate_key``.
        columns: One rule per expected column.
        timestamp_columns: Timestamp columns that must not lie after ``now`` (``future_timestamp`` rule).
        parent: ``(table, column)`` this table's ``applicant_id`` must reference (``orphan`` rule), if any.
    """

    name: str
    key: tuple[str, ...]
    columns: tuple[ColumnRule, ...]
    timestamp_columns: tuple[str, ...] = ()
    parent: tuple[str, str] | None = None


APPLICATIONS = TableSchema(
    name="applications",
    key=("applicant_id",),
    columns=(
        ColumnRule("applicant_id", "int", min=0),
        ColumnRule("application_ts", "timestamp"),
        ColumnRule("age", "int", min=18, max=100),
        ColumnRule("income", "float", min=0, max=1e8),
        ColumnRule("employment_length", "float", min=0, max=82),
        ColumnRule("requested_amount", "float", min=0, max=1e8, min_inclusive=False),
        ColumnRule("loan_term_months", "int", min=1, max=480),
        ColumnRule("purpose", "str", categories=PURPOSES),
        ColumnRule("home_ownership", "str", categories=HOME_OWNERSHIP),
        ColumnRule("num_dependents", "int", min=0, max=20),
        ColumnRule("sex", "str", categories=SEXES),
        ColumnRule("age_band", "str", categories=AGE_BANDS),
        ColumnRule("race", "str", categories=RACES),
        ColumnRule("defaulted", "int", min=0, max=1),
    ),
    timestamp_columns=("application_ts",),
)

BUREAU = TableSchema(
    name="bureau",
    key=("applicant_id", "snapshot_ts"),
    columns=(
        ColumnRule("applicant_id", "int", min=0),
        ColumnRule("snapshot_ts", "timestamp"),
        ColumnRule("credit_score", "int", min=300, max=850),
        ColumnRule("num_credit_lines", "int", min=0, max=200),
        ColumnRule("total_debt", "float", min=0, max=1e9),
        ColumnRule("revolving_balance", "float", min=0, max=1e9),
        ColumnRule("credit_limit", "float", min=0, max=1e9),
        ColumnRule("num_delinquencies_12m", "int", min=0, max=12),
        ColumnRule("months_since_last_delinquency", "float", nullable=True, min=0, max=1200),
        ColumnRule("num_hard_inquiries_6m", "int", min=0, max=100),
        ColumnRule("oldest_account_months", "int", min=0, max=1200),
    ),
    timestamp_columns=("snapshot_ts",),
    parent=("applications", "applicant_id"),
)

TRANSACTIONS = TableSchema(
    name="transactions",
    key=("transaction_id",),
    columns=(
        ColumnRule("transaction_id", "int", min=0),
        ColumnRule("applicant_id", "int", min=0),
        ColumnRule("transaction_ts", "timestamp"),
        ColumnRule("amount", "float", min=0, max=1e8, min_inclusive=False),
        ColumnRule("type", "str", categories=TRANSACTION_TYPES),
        ColumnRule("is_late", "bool"),
    ),
    timestamp_columns=("transaction_ts",),
    parent=("applications", "applicant_id"),
)

WORLD_SCHEMAS: dict[str, TableSchema] = {s.name: s for s in (APPLICATIONS, BUREAU, TRANSACTIONS)}
"""Validation rules for the three raw tables of a :class:`~creditops.data.synthetic.CreditWorld`."""
