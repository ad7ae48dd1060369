from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_difference, equal_opportunity_difference

from creditops.governance.fairness import MISSING_GROUP, assess_fairness, group_frame


def _biased(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], n)
    band = rng.choice(["18-25", "26-35"], n)
    y = rng.integers(0, 2, n)
    score = np.clip(0.3 * y + rng.uniform(0, 0.7, n) + np.where(sex == "female", 0.2, 0.0), 0, 1)
    pred = (score >= 0.6).astype(int)
    return y, pred, score, pd.DataFrame({"sex": sex, "age_band": band})


def test_disparities_match_fairlearn_on_every_attribute() -> None:
    y, pred, score, sens = _biased()
    results = assess_fairness(y, pred, score, sens, ["sex", "age_band"])
    assert set(results) == {"sex", "age_band"}
    for attr, result in results.items():
        assert result.demographic_parity_difference == pytest.approx(
            demographic_parity_difference(y, pred, sensitive_features=sens[attr])
        )
        assert result.equal_opportunity_difference == pytest.approx(
            equal_opportunity_difference(y, pred, sensitive_features=sens[attr])
        )
    # the score was shifted for women only: sex shows a large gap, the independent age band a small one
    assert results["sex"].demographic_parity_difference > 0.15
    assert results["age_band"].demographic_parity_difference < 0.1


def test_group_frame_columns_and_values() -> None:
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0])
    pred = np.array([1, 0, 1, 0, 1, 1, 1, 0])
    score = np.array([0.9, 0.4, 0.7, 0.1, 0.8, 0.6, 0.7, 0.2])
    groups = pd.Series(["a", "a", "a", "a", "b", "b", "b", "b"])
    frame = group_frame(y, pred, score, groups)
    assert list(frame.columns) == ["selection_rate", "tpr", "fpr", "auc", "count", "positives"]
    assert frame.loc["a", "selection_rate"] == pytest.approx(0.5)
    assert frame.loc["a", "tpr"] == pytest.approx(0.5)
    assert frame.loc["a", "fpr"] == pytest.approx(0.5)
    assert frame.loc["b", "tpr"] == pytest.approx(1.0)
    assert frame.loc["b", "fpr"] == pytest.approx(2 / 3)
    assert frame.loc["b", "auc"] == pytest.approx(1.0)
    assert frame["count"].tolist() == [4, 4]


def test_small_groups_are_listed_but_left_out_of_the_disparity() -> None:
    y, pred, score, sens = _biased(n=400)
    sens = sens.copy()
    sens.loc[:4, "age_band"] = "65+"  # five rows: a rate from five rows is noise
    pred = pred.copy()
    pred[:5] = 1
    result = assess_fairness(y, pred, score, sens, ["age_band"], min_group_size=20)["age_band"]
    assert "65+" in result.by_group.index
    assert "65+" in result.excluded_groups
    eligible = sens["age_band"] != "65+"
    assert result.demographic_parity_difference == pytest.approx(
        demographic_parity_difference(
            y[eligible], pred[eligible], sensitive_features=sens["age_band"][eligible]
        )
    )


def test_missing_values_form_their_own_group_and_unknown_attribute_fails() -> None:
    y, pred, score, sens = _biased(n=100)
    sens = sens.copy()
    sens["sex"] = sens["sex"].where(np.arange(100) % 10 != 0)
    frame = assess_fairness(y, pred, score, sens, ["sex"])["sex"].by_group
    assert MISSING_GROUP in frame.index
    assert frame["count"].sum() == 100
    with pytest.raises(KeyError, match="race"):
        assess_fairness(y, pred, score, sens, ["race"])
