"""The synthetic credit world: contract, reproducibility, scale of signal, drift, fairness realism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from creditops.data.schema import (
    AGE_BANDS,
    HOME_OWNERSHIP,
    PURPOSES,
    RACES,
    SEXES,
    TRANSACTION_TYPES,
    WORLD_SCHEMAS,
)
from creditops.data.synthetic import CreditWorld, Drift, generate_world

CONTRACT = {
    "applications": [
        "applicant_id", "application_ts", "age", "income", "employment_length", "requested_amount",
        "loan_term_months", "purpose", "home_ownership", "num_dependents", "sex", "age_band", "race",
        "defaulted",
    ],
    "bureau": [
        "applicant_id", "snapshot_ts", "credit_score", "num_credit_lines", "total_debt", "revolving_balance",
        "credit_limit", "num_delinquencies_12m", "months_since_last_delinquency", "num_hard_inquiries_6m",
        "oldest_account_months",
    ],
    "transactions": ["transaction_id", "applicant_id", "transaction_ts", "amount", "type", "is_late"],
}  # fmt: skip


@pytest.fixture(scope="module")
def world() -> CreditWorld:
    return generate_world(3_000, seed=7)


@pytest.fixture(scope="module")
def big_world() -> CreditWorld:
    return generate_world(20_000, seed=7)


@pytest.mark.parametrize("table", list(CONTRACT))
def test_columns_follow_the_contract(world: CreditWorld, table: str) -> None:
    df = getattr(world, table)
    assert list(df.columns) == CONTRACT[table]
    assert [r.name for r in WORLD_SCHEMAS[table].columns] == CONTRACT[table]
    for col in df.columns:
        kind = next(r.kind for r in WORLD_SCHEMAS[table].columns if r.name == col)
        dtype = df[col].dtype
        if col.endswith("_id"):
            assert dtype == np.int64, col
        elif kind == "timestamp":
            assert isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC", col
        elif kind == "int":
            assert pd.api.types.is_integer_dtype(dtype), col
        elif kind == "float":
            assert pd.api.types.is_float_dtype(dtype), col
        elif kind == "bool":
            assert pd.api.types.is_bool_dtype(dtype), col


def test_categories_and_ranges(world: CreditWorld) -> None:
    apps, bureau, tx = world.applications, world.bureau, world.transactions
    for col, allowed in [
        ("purpose", PURPOSES), ("home_ownership", HOME_OWNERSHIP), ("sex", SEXES), ("age_band", AGE_BANDS),
        ("race", RACES),
    ]:  # fmt: skip
        assert set(apps[col].astype(str)) <= set(allowed)
    assert set(tx["type"].astype(str)) == set(TRANSACTION_TYPES)
    assert apps["applicant_id"].is_unique and tx["transaction_id"].is_unique
    assert set(apps["defaulted"].unique()) == {0, 1}
    assert bureau["credit_score"].between(300, 850).all()
    assert (tx["amount"] > 0).all()
    assert not tx.loc[~tx["type"].isin(["bill_payment", "loan_repayment"]), "is_late"].any()
    assert (bureau["revolving_balance"] <= bureau["credit_limit"] * 1.5 + 1).all()


def test_history_windows_and_as_of(world: CreditWorld) -> None:
    apps = world.applications.set_index("applicant_id")["application_ts"]
    bureau = world.bureau
    assert bureau.groupby("applicant_id").size().eq(15).all()
    rel = bureau["snapshot_ts"] - bureau["applicant_id"].map(apps)
    assert (rel <= pd.Timedelta(0)).groupby(bureau["applicant_id"]).sum().eq(12).all()
    tx = world.transactions
    trel = tx["transaction_ts"] - tx["applicant_id"].map(apps)
    assert trel.min() >= pd.Timedelta(days=-365) and trel.max() <= pd.Timedelta(days=91)
    assert 20 <= len(tx) / len(apps) <= 35
    for col, df in [("application_ts", apps.reset_index()), ("snapshot_ts", bureau), ("transaction_ts", tx)]:
        assert df[col].max() <= world.as_of


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b, c = generate_world(500, seed=3), generate_world(500, seed=3), generate_world(500, seed=4)
    for name in CONTRACT:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert not a.applications["income"].equals(c.applications["income"])


def test_default_rate_and_protected_mix(big_world: CreditWorld) -> None:
    apps = big_world.applications
    assert 0.10 <= apps["defaulted"].mean() <= 0.15
    assert 0.40 <= (apps["sex"] == "male").mean() <= 0.60
    assert apps["race"].value_counts(normalize=True)["white"] == pytest.approx(0.6, abs=0.03)


def engineered(world: CreditWorld) -> pd.DataFrame:
    """A few aggregates as of the application (what a feature pipeline computes, minimal version)."""
    apps = world.applications.set_index("applicant_id")
    app_ts = world.bureau["applicant_id"].map(apps["application_ts"])
    pre = world.bureau[world.bureau["snapshot_ts"] <= app_ts]
    by = pre.groupby("applicant_id")
    last, first = by.last(), by.first()
    tx = world.transactions
    rel = tx["transaction_ts"] - tx["applicant_id"].map(apps["application_ts"])
    tx = tx[(rel < pd.Timedelta(0)) & (rel >= pd.Timedelta(days=-365))]
    salary = tx[tx["type"] == "salary"].groupby("applicant_id")["amount"]
    out = pd.DataFrame(index=apps.index)
    out["late_12m"] = tx[tx["is_late"]].groupby("applicant_id").size()
    out["overdrafts_12m"] = tx[tx["type"] == "overdraft_fee"].groupby("applicant_id").size()
    out["salary_count"] = salary.size()
    out["salary_cv"] = salary.std() / salary.mean()
    out = out.fillna(0)
    out["utilisation"] = last["revolving_balance"] / last["credit_limit"]
    out["debt_to_income"] = last["total_debt"] / apps["income"]
    out["credit_score"] = last["credit_score"]
    out["score_trend"] = last["credit_score"] - first["credit_score"]
    out["utilisation_trend"] = out["utilisation"] - first["revolving_balance"] / first["credit_limit"]
    out["delinquencies_12m"] = last["num_delinquencies_12m"]
    return out


def raw_fields(world: CreditWorld) -> pd.DataFrame:
    apps = world.applications.set_index("applicant_id")
    app_ts = world.bureau["applicant_id"].map(apps["application_ts"])
    last = world.bureau[world.bureau["snapshot_ts"] <= app_ts].groupby("applicant_id").last()
    cols = ["age", "income", "employment_length", "requested_amount", "loan_term_months", "num_dependents"]
    return apps[cols].join(last.drop(columns="snapshot_ts").fillna(600)).astype("float64")


def test_tree_on_engineered_features_beats_logistic_on_raw_fields(big_world: CreditWorld) -> None:
    y = big_world.applications.set_index("applicant_id")["defaulted"].to_numpy()
    eng, raw = engineered(big_world), raw_fields(big_world)
    tr, te = train_test_split(np.arange(len(y)), test_size=0.3, random_state=0, stratify=y)
    tree = xgb.XGBClassifier(n_estimators=200, max_depth=3, learning_rate=0.08, subsample=0.8, n_jobs=2)
    tree.fit(eng.to_numpy()[tr], y[tr])
    auc_tree = roc_auc_score(y[te], tree.predict_proba(eng.to_numpy()[te])[:, 1])
    logit = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(raw.to_numpy()[tr], y[tr])
    auc_logit = roc_auc_score(y[te], logit.predict_proba(raw.to_numpy()[te])[:, 1])
    print(f"AUC xgboost/engineered={auc_tree:.3f} logistic/raw={auc_logit:.3f}")
    assert 0.78 <= auc_tree <= 0.88
    assert 0.66 <= auc_logit <= 0.79
    assert auc_tree - auc_logit >= 0.04
    # protected attributes are not inputs, and a good model's decline-rate gaps stay moderate
    p = tree.predict_proba(eng.to_numpy()[te])[:, 1]
    decline = p >= np.quantile(p, 0.9)
    apps = big_world.applications.iloc[te]
    for attr in ("sex", "age_band", "race"):
        rates = pd.Series(decline).groupby(apps[attr].to_numpy(), observed=True).mean()
        assert rates.max() - rates.min() < 0.1, (attr, rates.to_dict())


def test_outcome_does_not_depend_on_protected_attributes_given_risk(big_world: CreditWorld) -> None:
    """Within an engineered-risk decile, default rates by sex and race differ only by noise."""
    apps = big_world.applications.set_index("applicant_id")
    eng = engineered(big_world)
    risk = eng["late_12m"] + 3 * eng["salary_cv"]
    for attr in ("sex", "race"):
        gap = apps.groupby(attr, observed=True)["defaulted"].mean()
        assert gap.max() - gap.min() < 0.05, gap.to_dict()
    assert risk.corr(apps["defaulted"]) > 0.1


@pytest.mark.parametrize(
    ("drift", "column", "table", "direction"),
    [
        (Drift(income_scale=0.8), "income", "applications", -1),
        (Drift(credit_score_shift=-40), "credit_score", "bureau", -1),
        (Drift(utilisation_shift=0.15), "revolving_balance", "bureau", 1),
        (Drift(requested_amount_scale=1.3), "requested_amount", "applications", 1),
    ],
)
def test_drift_moves_the_population(drift: Drift, column: str, table: str, direction: int) -> None:
    base, moved = generate_world(800, seed=5), generate_world(800, seed=5, drift=drift)
    delta = getattr(moved, table)[column].mean() - getattr(base, table)[column].mean()
    assert np.sign(delta) == direction
    assert len(moved.transactions) > 0


def test_risk_shift_raises_default_rate() -> None:
    base = generate_world(5_000, seed=2).applications["defaulted"].mean()
    risky = generate_world(5_000, seed=2, drift=Drift(risk_shift=-1.0)).applications["defaulted"].mean()
    assert risky > base + 0.02


def test_invalid_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        generate_world(0)
