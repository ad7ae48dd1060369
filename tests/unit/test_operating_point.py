"""The operating point: decision thresholds from policy (PD cut-off, target FPR, target approval rate)."""

from __future__ import annotations

import numpy as np
import pytest

from creditops.config import ScoringConfig, load_config
from creditops.errors import ConfigError
from creditops.training.fit import choose_thresholds, false_positive_rate, threshold_at_share_below


@pytest.fixture(scope="module")
def validation() -> tuple[np.ndarray, np.ndarray]:
    """10,000 validation PDs, calibrated by construction (y ~ Bernoulli(pd)), ~12% defaulters."""
    rng = np.random.default_rng(0)
    pd_ = rng.beta(1.2, 8.0, 10_000)
    return pd_, (rng.uniform(size=pd_.size) < pd_).astype(int)


def _shares(pd_: np.ndarray, approve: float, decline: float) -> tuple[float, float, float]:
    a, d = float(np.mean(pd_ < approve)), float(np.mean(pd_ >= decline))
    return a, 1.0 - a - d, d


def test_policy_is_inferred_from_what_is_set() -> None:
    assert ScoringConfig().policy == "target_fpr"
    assert ScoringConfig(approve_below_pd=0.1, decline_at_or_above_pd=0.3).policy == "pd_cutoff"
    assert ScoringConfig(target_approval_rate=0.7).policy == "approval_rate"


@pytest.mark.parametrize(
    ("scoring", "field"),
    [
        ({"policy": "pd_cutoff", "approve_below_pd": 0.1}, "decline_at_or_above_pd"),
        ({"approve_below_pd": 0.4, "decline_at_or_above_pd": 0.3}, "must not exceed"),
        ({"policy": "approval_rate"}, "target_approval_rate"),
        ({"policy": "target_fpr", "decline_at_or_above_pd": 0.3}, "only used by policy pd_cutoff"),
        ({"target_approval_rate": 0.95, "review_share": 0.1}, "must stay below 1"),
        ({"policy": "lottery"}, "scoring.policy"),
    ],
)
def test_a_bad_policy_is_one_line_naming_the_field(scoring: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, {"scoring": scoring})
    message = str(err.value)
    assert field in message and "\n" not in message and "scoring" in message


def test_target_fpr_policy_declines_at_the_fpr_budget_and_refers_a_band(
    validation: tuple[np.ndarray, np.ndarray],
) -> None:
    pd_, y = validation
    t = choose_thresholds(pd_, y, ScoringConfig(target_fpr=0.03, review_share=0.10))
    assert false_positive_rate(pd_, y, t.decline_at_or_above_pd) <= 0.03
    below = pd_[pd_ < t.decline_at_or_above_pd].max()  # the lowest such PD: one step lower breaks the budget
    assert false_positive_rate(pd_, y, below) > 0.03
    approve, review, decline = _shares(pd_, t.approve_below_pd, t.decline_at_or_above_pd)
    assert t.approve_below_pd < t.decline_at_or_above_pd
    assert review == pytest.approx(0.10, abs=0.001)
    assert t.rule.startswith("policy target_fpr") and "review 10.0%" in t.rule
    no_band = choose_thresholds(pd_, y, ScoringConfig(target_fpr=0.03, review_share=0.0))
    assert no_band.approve_below_pd == no_band.decline_at_or_above_pd == t.decline_at_or_above_pd


def test_approval_rate_policy_approves_the_target_share(validation: tuple[np.ndarray, np.ndarray]) -> None:
    pd_, y = validation
    t = choose_thresholds(pd_, y, ScoringConfig(target_approval_rate=0.7, review_share=0.15))
    approve, review, decline = _shares(pd_, t.approve_below_pd, t.decline_at_or_above_pd)
    assert approve == pytest.approx(0.70, abs=0.001)
    assert review == pytest.approx(0.15, abs=0.001)
    assert decline == pytest.approx(0.15, abs=0.001)
    assert t.rule.startswith("policy approval_rate")


def test_pd_cutoff_policy_keeps_the_configured_pds(validation: tuple[np.ndarray, np.ndarray]) -> None:
    pd_, y = validation
    t = choose_thresholds(pd_, y, ScoringConfig(approve_below_pd=0.08, decline_at_or_above_pd=0.3))
    assert (t.approve_below_pd, t.decline_at_or_above_pd) == (0.08, 0.3)
    assert t.rule.startswith("policy pd_cutoff") and "on validation" in t.rule


def test_review_band_is_not_empty_when_the_pds_are_steps() -> None:
    # an isotonic calibration gives a few PD values: the old rule put both thresholds on the same step
    pd_ = np.repeat([0.02, 0.05, 0.1, 0.2, 0.4], [500, 300, 120, 50, 30])
    y = (np.random.default_rng(1).uniform(size=pd_.size) < pd_).astype(int)
    t = choose_thresholds(pd_, y, ScoringConfig(target_fpr=0.05, review_share=0.02))
    _, review, _ = _shares(pd_, t.approve_below_pd, t.decline_at_or_above_pd)
    assert t.approve_below_pd < t.decline_at_or_above_pd and review > 0
    a = choose_thresholds(pd_, y, ScoringConfig(target_approval_rate=0.8, review_share=0.01))
    assert a.approve_below_pd < a.decline_at_or_above_pd


def test_threshold_at_share_below_picks_the_closest_reachable_share() -> None:
    pd_ = np.array([0.1, 0.1, 0.1, 0.2, 0.3, 0.3, 0.4, 0.5, 0.6, 0.7])
    assert threshold_at_share_below(pd_, 0.3) == 0.2  # 3 of 10 below 0.2
    assert threshold_at_share_below(pd_, 0.2) in (0.1, 0.2)  # 0 or 3 below: ties make 2 unreachable
    assert threshold_at_share_below(pd_, 1.0) > 0.7  # everyone below: just above the highest PD
    assert threshold_at_share_below(pd_, 0.6, avoid=0.4, high=0.4) == 0.3
