"""Identity features: what the applicant declared on the application (one row per application).

Every function takes the ``applications`` frame (DESIGN.md raw-data contract) and returns a Series aligned
to its index, named after the column it produces.
"""

from __future__ import annotations

import pandas as pd

HOME_OWNERSHIP_CODES: dict[str, int] = {"rent": 0, "mortgage": 1, "own": 2}
PURPOSE_CODES: dict[str, int] = {
    "car": 0,
    "home_improvement": 1,
    "debt_consolidation": 2,
    "education": 3,
    "business": 4,
    "medical": 5,
    "other": 6,
}


def income(applications: pd.DataFrame) -> pd.Series:
    """Declared annual income."""
    return applications["income"].astype("float64").rename("income")


def employment_length(applications: pd.DataFrame) -> pd.Series:
    """Years with the current employer."""
    return applications["employment_length"].astype("float64").rename("employment_length")


def requested_amount(applications: pd.DataFrame) -> pd.Series:
    """Requested loan amount."""
    return applications["requested_amount"].astype("float64").rename("requested_amount")


def loan_term_months(applications: pd.DataFrame) -> pd.Series:
    """Requested term in months."""
    return applications["loan_term_months"].astype("int64").rename("loan_term_months")


def num_dependents(applications: pd.DataFrame) -> pd.Series:
    """Number of dependents."""
    return applications["num_dependents"].astype("int64").rename("num_dependents")


def home_ownership_code(applications: pd.DataFrame) -> pd.Series:
    """Housing status, ordered by stability: rent 0, mortgage 1, own 2 (unknown values -> 0, like rent)."""
    codes = applications["home_ownership"].map(HOME_OWNERSHIP_CODES).fillna(0)
    return codes.astype("int64").rename("home_ownership_code")


def purpose_code(applications: pd.DataFrame) -> pd.Series:
    """Loan purpose as an integer code (:data:`PURPOSE_CODES`; unknown -> ``other``)."""
    codes = applications["purpose"].map(PURPOSE_CODES).fillna(PURPOSE_CODES["other"])
    return codes.astype("int64").rename("purpose_code")
