from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from creditops.monitoring.drift import PSI_EPSILON, adjust_p_values, detect_drift, psi

FEATURES = ["income", "credit_score", "utilisation", "num_delinquencies_12m"]


def _frame(rng: np.random.Generator, n: int, shift: dict[str, float] | None = None) -> pd.DataFrame:
    shift = shift or {}
    return pd.DataFrame(
        {
            "income": rng.lognormal(10.5, 0.4, n) * (1 + shift.get("income", 0.0)),
            "credit_score": rng.normal(680, 60, n) + shift.get("credit_score", 0.0),
            "utilisation": rng.beta(2, 5, n) + shift.get("utilisation", 0.0),
            "num_delinquencies_12m": rng.poisson(0.4, n).astype(float),
        }
    )


def test_psi_identical_sample_is_zero() -> None:
    values = np.arange(1000, dtype=float)
    assert psi(values, values) == pytest.approx(0.0, abs=1e-12)


def test_psi_known_value_half_of_the_deciles_empty() -> None:
    ref = np.arange(1000, dtype=float)  # decile bins of 100 values each
    cur = np.repeat(np.arange(0, 500, 100, dtype=float) + 50, 20)  # 20% in each of the first five deciles
    expected = 5 * (0.2 - 0.1) * math.log(0.2 / 0.1) + 5 * (PSI_EPSILON - 0.1) * math.log(PSI_EPSILON / 0.1)
    assert psi(ref, cur) == pytest.approx(expected, rel=1e-9)


def test_psi_two_bins_known_value() -> None:
    ref = np.array([0.0, 0.0, 1.0, 1.0])
    cur = np.array([0.0, 1.0, 1.0, 1.0])
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi(ref, cur, bins=2) == pytest.approx(expected)


def test_psi_counts_values_outside_the_reference_range_and_missing_values() -> None:
    ref = np.linspace(0, 1, 100)
    assert psi(ref, ref + 10) > 5  # everything lands in the open top bin
    with_nan = np.where(np.arange(100) < 50, np.nan, ref)
    assert psi(ref, with_nan) > 1  # half missing where the reference had none


def test_psi_rejects_empty_samples() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        psi([], [1.0])


def test_adjust_p_values() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.5])
    np.testing.assert_allclose(adjust_p_values(p, "bonferroni"), [0.04, 0.16, 0.12, 1.0])
    # BH: sorted 0.01, 0.03, 0.04, 0.5 -> 0.04, 0.053.., 0.053.., 0.5 (step-up minimum)
    np.testing.assert_allclose(adjust_p_values(p, "fdr_bh"), [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    with pytest.raises(ValueError, match="correction"):
        adjust_p_values(p, "holm")  # type: ignore[arg-type]


@pytest.mark.parametrize("correction", ["bonferroni", "fdr_bh"])
def test_no_shift_means_no_drift(correction: str) -> None:
    rng = np.random.default_rng(1)
    report = detect_drift(_frame(rng, 2000), _frame(rng, 800), FEATURES, correction=correction)
    assert not report.drifted
    assert report.drifted_features == []
    assert [f.name for f in report.features] == FEATURES
    assert all(f.psi < 0.1 for f in report.features)


@pytest.mark.parametrize("correction", ["bonferroni", "fdr_bh"])
def test_shift_is_detected_on_exactly_the_shifted_feature(correction: str) -> None:
    rng = np.random.default_rng(2)
    report = detect_drift(
        _frame(rng, 2000), _frame(rng, 800, shift={"credit_score": -40.0}), FEATURES, correction=correction
    )
    assert report.drifted
    assert report.drifted_features == ["credit_score"]
    by_name = {f.name: f for f in report.features}
    assert by_name["credit_score"].p_adjusted < 0.05 <= by_name["income"].p_adjusted
    assert by_name["credit_score"].psi > 0.25
    assert report.to_dict()["drifted_features"] == ["credit_score"]
    assert (report.n_reference, report.n_current) == (2000, 800)


def test_missing_values_are_not_ks_tested_but_shift_psi() -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"months_since_last_delinquency": np.where(rng.random(1000) < 0.7, np.nan, 12.0)})
    cur = pd.DataFrame({"months_since_last_delinquency": np.where(rng.random(500) < 0.2, np.nan, 12.0)})
    feature = detect_drift(ref, cur, ["months_since_last_delinquency"]).features[0]
    assert feature.ks_stat == 0.0 and not feature.drifted
    assert feature.psi > 0.25


def test_missing_feature_column_is_named() -> None:
    frame = pd.DataFrame({"income": [1.0, 2.0]})
    with pytest.raises(ValueError, match="current data lacks feature columns: \\['credit_score'\\]"):
        detect_drift(frame.assign(credit_score=1.0), frame, ["income", "credit_score"])
