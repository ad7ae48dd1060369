"""The one list of model features: training, Feast and serving all read it.

Each :class:`FeatureDef` names a column produced by exactly one function of the same name in
``creditops.features.<group>``. Order matters: :func:`model_feature_names` is the order of the Feast
FeatureService ``credit_scoring_v1``, of the training frame and of the model's input vector.
"""

# ruff: noqa: E501  (the feature table reads best one feature per line)
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

Group = Literal["identity", "bureau", "behavioural", "derived"]
GROUPS: tuple[Group, ...] = ("identity", "bureau", "behavioural", "derived")
FEATURE_SERVICE = "credit_scoring_v1"
ENTITY = "applicant"
JOIN_KEY = "applicant_id"
TIMESTAMP = "event_timestamp"


@dataclass(frozen=True)
class FeatureDef:
    """A model feature.

    Attributes:
        name: column name, also the name of the function computing it.
        group: which feature table (and Feast view ``<group>_fv``) holds it.
        dtype: ``float`` or ``int``.
        direction: expected effect on the probability of default: +1 higher value = higher risk,
            -1 higher value = lower risk, 0 unclear (no monotone constraint).
        description: what the value is.
        reason: plain-language adverse-action reason used when this feature pushes the PD up.
        valid_range: inclusive (low, high) bounds a served value must respect; ``None`` = unbounded.
    """

    name: str
    group: Group
    dtype: Literal["float", "int"]
    direction: Literal[-1, 0, 1]
    description: str
    reason: str
    valid_range: tuple[float | None, float | None] = (None, None)


def _f(
    name: str,
    group: Group,
    dtype: Literal["float", "int"],
    direction: Literal[-1, 0, 1],
    description: str,
    reason: str,
    low: float | None = None,
    high: float | None = None,
) -> FeatureDef:
    return FeatureDef(name, group, dtype, direction, description, reason, (low, high))


FEATURES: tuple[FeatureDef, ...] = (
    # identity: what the applicant declared on the application (never age, sex or race: see FEATURE_SOURCES)
    _f("income", "identity", "float", -1, "Declared annual income.", "Income insufficient for amount of credit requested", 0, None),
    _f("employment_length", "identity", "float", -1, "Years with current employer.", "Length of employment", 0, 80),
    _f("requested_amount", "identity", "float", 1, "Loan amount requested.", "Amount of credit requested is high", 0, None),
    _f("loan_term_months", "identity", "int", 1, "Requested loan term in months.", "Requested loan term is long", 1, 480),
    _f("num_dependents", "identity", "int", 0, "Number of dependents.", "Number of dependents", 0, 20),
    _f("home_ownership_code", "identity", "int", -1, "Housing: 0 rent, 1 mortgage, 2 own.", "Housing status (not a home owner)", 0, 2),
    _f("purpose_code", "identity", "int", 0, "Loan purpose encoded 0..6 (see identity.PURPOSE_CODES).", "Purpose of the loan", 0, 6),
    # bureau: monthly credit-bureau snapshots
    _f("credit_score", "bureau", "int", -1, "Bureau credit score (300-850).", "Credit score is low", 300, 850),
    _f("num_credit_lines", "bureau", "int", 0, "Open credit lines.", "Number of open credit lines", 0, None),
    _f("total_debt", "bureau", "float", 1, "Total outstanding debt.", "Total outstanding debt is high", 0, None),
    _f("revolving_balance", "bureau", "float", 1, "Outstanding revolving balance.", "Revolving balances are high", 0, None),
    _f("credit_limit", "bureau", "float", -1, "Total revolving credit limit.", "Limited available credit history", 0, None),
    _f("num_delinquencies_12m", "bureau", "int", 1, "Delinquencies reported in the last 12 months.", "Recent delinquency on credit accounts", 0, None),
    _f("months_since_last_delinquency", "bureau", "float", -1, "Months since the last delinquency, capped at 120 (120 = never).", "Delinquency too recent", 0, 120),
    _f("ever_delinquent", "bureau", "int", 1, "1 if any delinquency was ever reported.", "History of delinquency", 0, 1),
    _f("num_hard_inquiries_6m", "bureau", "int", 1, "Hard credit inquiries in the last 6 months.", "Too many recent credit inquiries", 0, None),
    _f("oldest_account_months", "bureau", "int", -1, "Age of the oldest account in months.", "Length of credit history is short", 0, None),
    _f("credit_score_trend_6m", "bureau", "float", -1, "Credit score change over the last 6 months.", "Credit score has fallen recently", -550, 550),
    _f("credit_score_trend_12m", "bureau", "float", -1, "Credit score change over the last 12 months.", "Credit score has fallen over the past year", -550, 550),
    _f("total_debt_trend_6m", "bureau", "float", 1, "Change in total debt over the last 6 months.", "Debt has grown recently", None, None),
    # behavioural: bank transactions in the 12 months before the as-of time
    _f("avg_transaction_amount_12m", "behavioural", "float", 0, "Mean transaction amount.", "Transaction pattern", 0, None),
    _f("monthly_transaction_count", "behavioural", "float", 0, "Transactions per month.", "Account activity level", 0, None),
    _f("active_months_12m", "behavioural", "int", -1, "Months with at least one transaction.", "Limited account activity", 0, 12),
    _f("salary_months_12m", "behavioural", "int", -1, "Months in which a salary was received.", "Irregular or missing salary income", 0, 12),
    _f("avg_monthly_salary", "behavioural", "float", -1, "Salary received per month on average.", "Verified income is low", 0, None),
    _f("salary_amount_cv", "behavioural", "float", 1, "Coefficient of variation of salary payments (0 = perfectly regular).", "Salary payments are irregular", 0, None),
    _f("days_since_last_salary", "behavioural", "float", 1, "Days since the last salary payment, capped at 365.", "No recent salary payment", 0, 365),
    _f("bill_payment_count_12m", "behavioural", "int", -1, "Bill payments made.", "Limited bill payment history", 0, None),
    _f("loan_repayment_count_12m", "behavioural", "int", 0, "Loan repayments made.", "Existing loan repayments", 0, None),
    _f("late_payment_count_12m", "behavioural", "int", 1, "Late bill payments and loan repayments.", "Late payments on bills or loans", 0, None),
    _f("late_payment_count_3m", "behavioural", "int", 1, "Late payments in the last 3 months.", "Recent late payments", 0, None),
    _f("overdraft_fee_count_12m", "behavioural", "int", 1, "Overdraft fees charged.", "Frequent overdrafts", 0, None),
    _f("overdraft_fee_total_12m", "behavioural", "float", 1, "Total overdraft fees.", "Overdraft fees are high", 0, None),
    _f("total_inflow_12m", "behavioural", "float", -1, "Money in: salary and transfers in.", "Low income into the account", 0, None),
    _f("total_outflow_12m", "behavioural", "float", 0, "Money out: all other transactions.", "Spending level", 0, None),
    _f("net_cash_flow_12m", "behavioural", "float", -1, "Inflow minus outflow.", "Spending exceeds income", None, None),
    _f("atm_withdrawal_share_12m", "behavioural", "float", 0, "Share of outflow withdrawn as cash.", "Cash withdrawal pattern", 0, 1),
    # derived: ratios across groups as of the same time
    _f("debt_to_income", "derived", "float", 1, "Total debt / annual income.", "Debt is high relative to income", 0, None),
    _f("credit_utilisation", "derived", "float", 1, "Revolving balance / credit limit.", "Credit card balances are high relative to limits", 0, None),
    _f("loan_to_income", "derived", "float", 1, "Requested amount / annual income.", "Amount requested is high relative to income", 0, None),
    _f("installment_to_income", "derived", "float", 1, "Monthly instalment (amount / term) / monthly income.", "Monthly repayment would be high relative to income", 0, None),
    _f("payment_consistency_score", "derived", "float", -1, "Share of bill payments and repayments made on time (1 = always).", "Payments are not made consistently on time", 0, 1),
    _f("income_verification_ratio", "derived", "float", -1, "Salary seen in the account over 12 months / declared income.", "Declared income not confirmed by account salary", 0, None),
    _f("cash_flow_to_debt", "derived", "float", -1, "Net 12-month cash flow / (total debt + 1).", "Cash flow is low relative to debt", None, None),
    _f("inquiries_per_credit_line", "derived", "float", 1, "Hard inquiries (6m) / (credit lines + 1).", "Many credit inquiries relative to accounts", 0, None),
)  # fmt: skip


#: Declared lineage of the identity features: the raw ``applications`` columns each one reads.
IDENTITY_SOURCES: dict[str, tuple[str, ...]] = {
    "income": ("income",),
    "employment_length": ("employment_length",),
    "requested_amount": ("requested_amount",),
    "loan_term_months": ("loan_term_months",),
    "num_dependents": ("num_dependents",),
    "home_ownership_code": ("home_ownership",),
    "purpose_code": ("purpose",),
}
#: Declared lineage of the derived features: the other features each one is a ratio of.
DERIVED_SOURCES: dict[str, tuple[str, ...]] = {
    "debt_to_income": ("total_debt", "income"),
    "credit_utilisation": ("revolving_balance", "credit_limit"),
    "loan_to_income": ("requested_amount", "income"),
    "installment_to_income": ("requested_amount", "loan_term_months", "income"),
    "payment_consistency_score": (
        "bill_payment_count_12m",
        "loan_repayment_count_12m",
        "late_payment_count_12m",
    ),
    "income_verification_ratio": ("avg_monthly_salary", "income"),
    "cash_flow_to_debt": ("net_cash_flow_12m", "total_debt"),
    "inquiries_per_credit_line": ("num_hard_inquiries_6m", "num_credit_lines"),
}
#: Raw table each non-identity group reads (``bureau.*``: any column of the bureau table, none protected).
_GROUP_TABLE: dict[str, str] = {"bureau": "bureau.*", "behavioural": "transactions.*"}


def _raw_sources(name: str) -> tuple[str, ...]:
    feature = _by_name()[name]
    if feature.group == "identity":
        return IDENTITY_SOURCES[name]
    if feature.group == "derived":
        return tuple(dict.fromkeys(c for source in DERIVED_SOURCES[name] for c in _raw_sources(source)))
    return (_GROUP_TABLE[feature.group],)


def feature_sources() -> dict[str, tuple[str, ...]]:
    """Feature -> the raw columns it is computed from (declared lineage, derived features resolved)."""
    return {f.name: _raw_sources(f.name) for f in FEATURES}


def model_feature_names() -> list[str]:
    """Ordered model inputs: the FeatureService order, the training-frame order, the model's input order."""
    return [f.name for f in FEATURES]


def feature_directions() -> dict[str, int]:
    """Feature name -> monotone direction (+1 raises risk, -1 lowers it, 0 unconstrained)."""
    return {f.name: f.direction for f in FEATURES}


def features_in(group: Group) -> list[FeatureDef]:
    """The features of one group, in registry order."""
    return [f for f in FEATURES if f.group == group]


@cache
def _by_name() -> dict[str, FeatureDef]:
    return {f.name: f for f in FEATURES}


def get_feature(name: str) -> FeatureDef:
    """Look a feature up by name.

    Raises:
        KeyError: no such feature (the message names it).
    """
    try:
        return _by_name()[name]
    except KeyError:
        raise KeyError(f"unknown feature {name!r}") from None
