"""Outcomes (synthetic emitter, validation, join) and the judges on matured outcomes, on hand-built input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from creditops.data.outcomes import ingest_outcomes, join_outcomes, synthetic_outcomes, validate_outcomes
from creditops.errors import DataError
from creditops.monitoring.fairness import fairness_by_group
from creditops.monitoring.performance import (
    calibration_backtest,
    discrimination_with_intervals,
    hosmer_lemeshow,
    vintage_curves,
)
from creditops.monitoring.reference import discrimination

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def test_auc_and_ks_pinned_on_a_tiny_example():
    y = np.array([0, 0, 1, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.5])
    # pairs (bad, good) ranked right: 8 of 9 (bad 0.3 < good 0.4); ties none across classes
    auc, ks = discrimination(y, p)
    assert auc == pytest.approx(8 / 9)
    assert ks == pytest.approx(2 / 3)  # above 0.4: TPR 2/3, FPR 0
    assert math.isnan(discrimination(np.zeros(4), np.arange(4))[0])


def test_bootstrap_interval_brackets_the_estimate():
    rng = np.random.default_rng(0)
    p = rng.beta(2, 10, 3000)
    y = rng.random(3000) < p
    out = discrimination_with_intervals(y, p, n_boot=200)
    assert out["auc_lo"] < out["auc"] < out["auc_hi"]
    assert out["auc_hi"] - out["auc_lo"] < 0.08
    assert out["gini"] == pytest.approx(2 * out["auc"] - 1)


def test_jeffreys_lights_green_for_calibrated_red_for_tripled_default_rate():
    rng = np.random.default_rng(1)
    p = np.full(2000, 0.04)  # all grade C (2.5 %-5 %)
    assert calibration_backtest(rng.random(2000) < p, p)[0]["light"] == "green"
    row = calibration_backtest(rng.random(2000) < 3 * p, p)[0]
    assert row["grade"] == "C" and row["light"] == "red" and row["jeffreys_p"] < 1e-3
    assert row["binomial_p"] < 1e-3
    assert row["rate_lo"] < row["default_rate"] < row["rate_hi"]


def test_hosmer_lemeshow_rejects_miscalibration_only():
    rng = np.random.default_rng(2)
    p = rng.uniform(0.01, 0.3, 5000)
    assert hosmer_lemeshow(rng.random(5000) < p, p)["p_value"] > 0.01
    assert hosmer_lemeshow(rng.random(5000) < np.minimum(2 * p, 1), p)["p_value"] < 1e-6


def test_vintage_curves_show_only_observable_months():
    booked = [T0, T0 + pd.Timedelta(days=5), T0 + pd.Timedelta(days=40)]
    event = [T0 + pd.Timedelta(days=20), pd.NaT, pd.NaT]
    v = vintage_curves(booked, event, as_of=T0 + pd.Timedelta(days=100), months=6)
    jan = v.set_index("vintage").loc["2026-01"]
    assert jan["accounts"] == 2 and jan["mob_1"] == 0.5 and jan["mob_3"] == 0.5
    assert math.isnan(jan["mob_4"])  # the vintage's last booking has < 4 months on book
    assert math.isnan(v.set_index("vintage").loc["2026-02"]["mob_3"])


def test_fairness_air_and_equal_opportunity_by_hand():
    approved = np.array([1, 1, 1, 0] * 10 + [1, 0, 0, 0] * 10, dtype=float)  # A: 75 %, B: 25 %
    groups = pd.DataFrame({"sex": ["A"] * 40 + ["B"] * 40})
    defaulted = np.zeros(80)
    rows = {r["group"]: r for r in fairness_by_group(approved, groups, defaulted, min_group=30)}
    assert rows["A"]["approval_rate"] == 0.75 and rows["B"]["approval_rate"] == 0.25
    assert rows["B"]["air"] == pytest.approx(1 / 3) and rows["A"]["air"] == 1.0
    assert rows["B"]["eo_gap"] == pytest.approx(0.5)
    # groups below min_group get no ratio
    small = fairness_by_group(approved, groups, None, min_group=50)
    assert all(math.isnan(r["air"]) for r in small)


def _decisions(n=1000):
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "applicant_id": np.arange(n).astype(str),
            "ts": [T0 + pd.Timedelta(hours=i) for i in range(n)],
            "pd": rng.beta(2, 12, n),
        }
    )


def test_synthetic_outcomes_delay_and_maturity():
    d = _decisions()
    out = synthetic_outcomes(d, horizon_days=90, delay_days=10)
    lag = (out["outcome_date"] - pd.to_datetime(d["ts"], utc=True)).dt.days
    assert (lag[out["defaulted"] == 0] == 100).all()  # good accounts known at the horizon + delay
    assert ((lag[out["defaulted"] == 1] >= 70) & (lag[out["defaulted"] == 1] < 100)).all()
    partial = synthetic_outcomes(d, horizon_days=90, delay_days=10, as_of=T0 + pd.Timedelta(days=100))
    assert 0 < len(partial) < len(out)
    assert abs(out["defaulted"].mean() - d["pd"].mean()) < 0.03
    with pytest.raises(DataError, match="concept_drift"):
        synthetic_outcomes(d, concept_drift=1.5)


def test_validation_quarantines_bad_rows_with_the_field_named():
    raw = pd.DataFrame(
        {
            "applicant_id": ["1", "2", "", "4", "5"],
            "outcome_date": ["2026-05-01", "soon", "2026-05-01", "2026-05-01", "2026-05-01"],
            "defaulted": ["1", "0", "0", "maybe", "0"],
        }
    )
    good, bad = validate_outcomes(raw)
    assert good["applicant_id"].tolist() == ["1", "5"]
    assert bad["reason"].tolist() == [
        "outcome_date: not a date",
        "applicant_id: empty",
        "defaulted: must be 0 or 1",
    ]
    assert len(good) + len(bad) == len(raw)
    with pytest.raises(DataError, match="unknown column"):
        validate_outcomes(raw.assign(score=1))


def test_ingest_merges_and_a_correction_replaces(tmp_path):
    first = tmp_path / "a.csv"
    pd.DataFrame(
        {"applicant_id": ["1", "2"], "outcome_date": ["2026-05-01"] * 2, "defaulted": [0, 0]}
    ).to_csv(first, index=False)
    second = tmp_path / "b.csv"
    pd.DataFrame({"applicant_id": ["2"], "outcome_date": ["2026-06-01"], "defaulted": [1]}).to_csv(
        second, index=False
    )
    ingest_outcomes(first, tmp_path / "store")
    result = ingest_outcomes(second, tmp_path / "store")
    assert result.store_rows == 2
    store = pd.read_parquet(result.store_path).set_index("applicant_id")
    assert store.loc["2", "defaulted"] == 1


def test_join_by_applicant_goes_to_the_decision_before_the_outcome():
    pid = np.array(["p1", "p2", "p3"])
    aid = np.array(["A", "A", "B"])
    ts = np.array(["2026-01-01", "2026-09-01", "2026-01-01"], dtype="datetime64[ns]")
    outcomes = pd.DataFrame(
        {"applicant_id": ["A", "B"], "outcome_date": ["2026-06-01", "2027-02-01"], "defaulted": [1, 0]}
    )
    joined = join_outcomes(pid, aid, ts, outcomes)
    assert joined["defaulted"].tolist()[:1] == [1.0]
    assert math.isnan(joined["defaulted"][1])  # the re-application after the default does not inherit it
    assert joined["defaulted"][2] == 0.0
    early = join_outcomes(pid, aid, ts, outcomes, as_of="2026-12-31")
    assert math.isnan(early["defaulted"][2])  # not known yet
    late = pd.DataFrame({"prediction_id": ["p2"], "outcome_date": ["2027-01-01"], "defaulted": [1]})
    by_pid = join_outcomes(pid, aid, ts, late)
    assert by_pid["defaulted"].isna().tolist() == [True, False, True]
