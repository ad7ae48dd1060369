"""The daily run's monitoring check and retraining policy on frames built to drift and not to."""

import numpy as np
import pandas as pd
import pytest

from creditops.daily import (
    MonitoringSummary,
    RetrainPolicy,
    daily_drift,
    monitoring_check,
    retraining_decision,
)


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({"a": rng.normal(shift, 1, n), "b": rng.normal(0, 1, n), "c": rng.exponential(1, n)})


def test_same_distribution_no_retraining() -> None:
    rng = np.random.default_rng(0)
    summary = monitoring_check(_frame(rng, 2000), _frame(rng, 1000), ["a", "b", "c"])
    assert summary.drifted_features == []
    decision = retraining_decision(summary)
    assert decision == decision.__class__(False, [])


def test_a_shifted_feature_triggers_retraining_with_its_reasons() -> None:
    rng = np.random.default_rng(1)
    summary = monitoring_check(_frame(rng, 2000), _frame(rng, 1000, shift=1.5), ["a", "b", "c"])
    assert summary.drifted_features == ["a"]
    decision = retraining_decision(summary)
    assert decision.retrain
    assert decision.reasons[0].startswith("1/3 features drifted (33% > 20%): a")
    assert any(r.startswith("PSI of a is ") for r in decision.reasons)


@pytest.mark.parametrize(
    ("drifted", "psi", "policy", "retrain", "reason"),
    [
        (["a"], {"a": 0.1}, RetrainPolicy(max_drifted_share=0.5), False, None),
        (["a", "b"], {"a": 0.1}, RetrainPolicy(max_drifted_share=0.5), True, "2/3 features drifted"),
        ([], {"c": 0.3}, RetrainPolicy(), True, "PSI of c is 0.300 (> 0.25)"),
        ([], {"c": 0.25}, RetrainPolicy(), False, None),
    ],
)
def test_policy_thresholds(drifted, psi, policy, retrain, reason) -> None:
    summary = MonitoringSummary(500, 500, ["a", "b", "c"], drifted, psi)
    decision = retraining_decision(summary, policy)
    assert decision.retrain is retrain
    assert (reason is None and decision.reasons == []) or any(reason in r for r in decision.reasons)


def test_too_few_current_rows_is_inconclusive_not_a_retrain() -> None:
    summary = MonitoringSummary(500, 20, ["a"], ["a"], {"a": 3.0})
    decision = retraining_decision(summary)
    assert not decision.retrain and "inconclusive" in decision.reasons[0]


def test_daily_drift_compares_the_recent_window_with_the_history() -> None:
    rng = np.random.default_rng(2)
    as_of = pd.Timestamp("2026-12-01", tz="UTC")
    old, new = _frame(rng, 1500), _frame(rng, 500, shift=2.0)
    ts = [as_of - pd.Timedelta(days=400)] * 1500 + [as_of] * 500
    table = pd.concat([old, new], ignore_index=True).assign(event_timestamp=ts)
    summary = daily_drift({"t": table}, as_of, ["a", "b"])
    assert (summary.n_reference, summary.n_current) == (1500, 500)
    assert summary.drifted_features == ["a"]
    steady = table.assign(a=rng.normal(0, 1, 2000))
    assert daily_drift({"t": steady}, as_of, ["a", "b"]).drifted_features == []
