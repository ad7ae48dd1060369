from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from creditops.features import behavioural, bureau, derived, identity
from creditops.features.behavioural import TransactionWindow
from creditops.features.build import (
    build_feature_tables,
    compute_group,
    entity_frame,
)
from creditops.features.registry import FEATURES, GROUPS, features_in

T0 = pd.Timestamp("2025-06-15", tz="UTC")
AS_OF = pd.Timestamp("2026-01-01", tz="UTC")


def _applications() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "applicant_id": [1, 2],
            "application_ts": [T0, T0 + pd.Timedelta(days=10)],
            "age": [30, 55],
            "income": [60_000.0, 0.0],
            "employment_length": [3.0, 20.0],
            "requested_amount": [12_000.0, 5_000.0],
            "loan_term_months": [24, 12],
            "purpose": ["car", "medical"],
            "home_ownership": ["rent", "own"],
            "num_dependents": [0, 2],
            "sex": ["female", "male"],
            "age_band": ["26-35", "51-65"],
            "race": ["white", "asian"],
            "defaulted": [0, 1],
        }
    )


def _bureau() -> pd.DataFrame:
    rows = []
    for applicant, start_score in ((1, 700), (2, 600)):
        for k in range(-12, 4):  # 12 monthly snapshots before the application month, 3 after
            rows.append(
                {
                    "applicant_id": applicant,
                    "snapshot_ts": pd.Timestamp("2025-06-01", tz="UTC") + pd.DateOffset(months=k),
                    "credit_score": start_score + 10 * (k + 12),
                    "num_credit_lines": 3,
                    "total_debt": 1_000.0 * (k + 13),
                    "revolving_balance": 500.0,
                    "credit_limit": 2_000.0,
                    "num_delinquencies_12m": 0 if applicant == 1 else 2,
                    "months_since_last_delinquency": np.nan if applicant == 1 else 4.0,
                    "num_hard_inquiries_6m": 1,
                    "oldest_account_months": 60,
                }
            )
    return pd.DataFrame(rows)


def _transactions() -> pd.DataFrame:
    d = pd.Timedelta
    rows = [
        # applicant 1, before application
        (1, T0 - d(days=5), 3_000.0, "salary", False),
        (1, T0 - d(days=35), 3_000.0, "salary", False),
        (1, T0 - d(days=65), 3_000.0, "salary", False),
        (1, T0 - d(days=10), 100.0, "bill_payment", True),
        (1, T0 - d(days=200), 100.0, "bill_payment", False),
        (1, T0 - d(days=20), 400.0, "atm_withdrawal", False),
        (1, T0 - d(days=25), 25.0, "overdraft_fee", False),
        (1, T0 - d(days=400), 9_999.0, "card_purchase", False),  # older than 12 months: ignored
        # applicant 1, after application: must not appear in the as-of-application row
        (1, T0 + d(days=3), 50_000.0, "transfer_in", False),
        (1, T0 + d(days=4), 80.0, "loan_repayment", True),
        # applicant 2: two salaries of different size
        (2, T0 - d(days=1), 1_000.0, "salary", False),
        (2, T0 - d(days=31), 3_000.0, "salary", False),
    ]
    return pd.DataFrame(rows, columns=["applicant_id", "transaction_ts", "amount", "type", "is_late"]).assign(
        transaction_id=lambda f: np.arange(len(f), dtype="int64")
    )


@pytest.fixture()
def world() -> SimpleNamespace:
    return SimpleNamespace(
        applications=_applications(), bureau=_bureau(), transactions=_transactions(), as_of=AS_OF
    )


@pytest.fixture()
def at_application(world) -> TransactionWindow:
    groups = world.applications.rename(columns={"application_ts": "as_of"})[["applicant_id", "as_of"]]
    return TransactionWindow.build(world.transactions, groups)


def test_identity_values(world):
    apps = world.applications
    assert identity.home_ownership_code(apps).tolist() == [0, 2]
    assert identity.purpose_code(apps).tolist() == [0, 5]
    assert identity.income(apps).tolist() == [60_000.0, 0.0]


def test_bureau_values_and_trends(world):
    b = world.bureau
    assert bureau.months_since_last_delinquency(b).iloc[[0, 16]].tolist() == [120.0, 4.0]
    assert bureau.ever_delinquent(b).iloc[[0, 16]].tolist() == [0, 1]
    trend6 = bureau.credit_score_trend_6m(b)
    trend12 = bureau.credit_score_trend_12m(b)
    # score grows 10/month; the 13th snapshot (index 12) has 12 months of history
    assert trend6.iloc[12] == 60.0 and trend12.iloc[12] == 120.0
    # first snapshot: no history -> 0; third snapshot: falls back to the first one -> 20
    assert trend6.iloc[0] == 0.0 and trend6.iloc[2] == 20.0
    assert bureau.total_debt_trend_6m(b).iloc[12] == 6_000.0


def test_behavioural_window_ignores_future_and_old_events(at_application):
    w = at_application
    assert behavioural.late_payment_count_12m(w).tolist() == [1, 0]
    assert behavioural.late_payment_count_3m(w).tolist() == [1, 0]
    assert behavioural.bill_payment_count_12m(w).tolist() == [2, 0]
    assert behavioural.loan_repayment_count_12m(w).tolist() == [0, 0]
    assert behavioural.total_inflow_12m(w).tolist() == [9_000.0, 4_000.0]
    assert behavioural.total_outflow_12m(w).tolist() == [625.0, 0.0]
    assert behavioural.net_cash_flow_12m(w).tolist() == [8_375.0, 4_000.0]
    assert behavioural.overdraft_fee_count_12m(w).tolist() == [1, 0]
    assert behavioural.overdraft_fee_total_12m(w).tolist() == [25.0, 0.0]
    assert behavioural.salary_months_12m(w).tolist() == [3, 2]
    assert behavioural.active_months_12m(w).tolist() == [4, 2]  # days 5-25, 35, 65, 200
    assert behavioural.days_since_last_salary(w).tolist() == [5.0, 11.0]
    assert behavioural.avg_monthly_salary(w).tolist() == [750.0, 4_000.0 / 12]
    assert behavioural.salary_amount_cv(w).tolist() == pytest.approx([0.0, 0.5])
    assert behavioural.monthly_transaction_count(w).tolist() == [7 / 12, 2 / 12]
    assert behavioural.avg_transaction_amount_12m(w).tolist() == pytest.approx([9_625 / 7, 2_000.0])
    assert behavioural.atm_withdrawal_share_12m(w).tolist() == pytest.approx([400 / 625, 0.0])


def test_empty_window_gives_neutral_values():
    groups = pd.DataFrame({"applicant_id": [9], "as_of": [T0]})
    empty = pd.DataFrame(
        {
            "applicant_id": [],
            "transaction_ts": pd.to_datetime([], utc=True),
            "amount": [],
            "type": [],
            "is_late": [],
        }
    )
    frame = compute_group(
        "behavioural", TransactionWindow.build(empty.astype({"applicant_id": "int64"}), groups)
    )
    assert frame.loc[0, "days_since_last_salary"] == 365.0
    assert np.isfinite(frame.to_numpy(dtype=float)).all()


def test_derived_values_handle_zero_denominators():
    frame = pd.DataFrame(
        {
            "total_debt": [10_000.0, 5.0],
            "income": [50_000.0, 0.0],
            "revolving_balance": [500.0, 1.0],
            "credit_limit": [2_000.0, 0.0],
            "requested_amount": [12_000.0, 100.0],
            "loan_term_months": [24, 12],
            "bill_payment_count_12m": [3, 0],
            "loan_repayment_count_12m": [1, 0],
            "late_payment_count_12m": [1, 0],
            "avg_monthly_salary": [2_000.0, 0.0],
            "net_cash_flow_12m": [1_000.0, -5.0],
            "num_hard_inquiries_6m": [2, 0],
            "num_credit_lines": [3, 0],
        }
    )
    assert derived.debt_to_income(frame).tolist() == [0.2, 0.0]
    assert derived.credit_utilisation(frame).tolist() == [0.25, 0.0]
    assert derived.loan_to_income(frame).tolist() == [0.24, 0.0]
    assert derived.installment_to_income(frame).tolist() == pytest.approx([500 / (50_000 / 12), 0.0])
    assert derived.payment_consistency_score(frame).tolist() == [0.75, 1.0]
    assert derived.income_verification_ratio(frame).tolist() == pytest.approx([24_000 / 50_000, 0.0])
    assert derived.cash_flow_to_debt(frame).tolist() == pytest.approx([1_000 / 10_001, -5 / 6])
    assert derived.inquiries_per_credit_line(frame).tolist() == [0.5, 0.0]


def test_build_feature_tables_shapes_and_point_in_time(world):
    tables = build_feature_tables(world)
    assert list(tables) == list(GROUPS)
    for group, table in tables.items():
        assert list(table.columns) == ["applicant_id", "event_timestamp"] + [
            f.name for f in features_in(group)
        ]
        assert str(table["event_timestamp"].dtype) == "datetime64[ns, UTC]"
        assert np.isfinite(table.iloc[:, 2:].to_numpy(dtype=float)).all(), group
        for f in features_in(group):
            assert table[f.name].dtype == ("int64" if f.dtype == "int" else "float64")
    assert len(tables["identity"]) == 2 and len(tables["bureau"]) == 32
    beh = tables["behavioural"].set_index(["applicant_id", "event_timestamp"])
    assert len(beh) == 4
    # as of the application the future transfer and late repayment are invisible; as of now they count
    assert beh.loc[(1, T0), "total_inflow_12m"] == 9_000.0
    assert beh.loc[(1, AS_OF), "total_inflow_12m"] > 50_000.0
    assert beh.loc[(1, T0), "loan_repayment_count_12m"] == 0
    assert beh.loc[(1, AS_OF), "loan_repayment_count_12m"] == 1
    der = tables["derived"].set_index(["applicant_id", "event_timestamp"])
    # latest snapshot at/before 2025-06-15 is 2025-06-01: total_debt 13_000; as of now: the last (16_000)
    assert der.loc[(1, T0), "debt_to_income"] == pytest.approx(13_000 / 60_000)
    assert der.loc[(1, AS_OF), "debt_to_income"] == pytest.approx(16_000 / 60_000)
    assert der.loc[(1, T0), "payment_consistency_score"] == 0.5


def test_entity_frame(world):
    frame = entity_frame(world.applications)
    assert list(frame.columns) == ["applicant_id", "event_timestamp", "defaulted", "sex", "age_band", "race"]
    assert str(frame["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    assert not set(frame.columns) & {f.name for f in FEATURES}


def test_bureau_trend_does_not_depend_on_row_order(world):
    shuffled = world.bureau.sample(frac=1.0, random_state=0)
    expected = bureau.credit_score_trend_6m(world.bureau)
    assert bureau.credit_score_trend_6m(shuffled).sort_index().tolist() == expected.tolist()
