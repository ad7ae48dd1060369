"""The retraining trigger policy: each reason and each blocker shown on input built for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from creditops.config import RetrainingConfig
from creditops.monitoring.alerts import Alert
from creditops.monitoring.trigger import decide_retraining

NOW = datetime(2026, 6, 30, tzinfo=UTC)
RECENT = NOW - timedelta(days=10)  # past the cooldown, before the monthly schedule


def drift(feature: str, severity: str = "critical") -> Alert:
    return Alert(
        {"alertname": "FeatureDriftAct", "severity": severity, "model_version": "m@3", "feature": feature},
        {"summary": "s"},
    )


def decide(windows, **kw):
    args = {"now": NOW, "last_retrained_at": RECENT, "new_labelled_outcomes": 5000}
    args.update(kw)
    return decide_retraining(windows, **args)


def test_nothing_to_do():
    d = decide([[], []])
    assert not d.retrain and d.reasons == [] and d.blockers == []


def test_one_window_of_drift_is_not_enough_two_are():
    assert not decide([[], [drift("income")]]).retrain
    d = decide([[drift("income")], [drift("income", "warning")], [drift("income"), drift("age")]])
    assert d.retrain
    assert d.reasons == [
        "FeatureDriftAct (feature=income, model_version=m@3) firing in each of the last 2 windows"
    ]
    assert d.promotion_requires_approval


def test_different_features_in_consecutive_windows_do_not_persist():
    assert not decide([[drift("income")], [drift("age")]]).retrain


def test_resolved_and_non_persistent_alert_kinds_do_not_count():
    resolved = Alert(drift("income").labels, {}, status="resolved")
    assert not decide([[drift("income")], [resolved]]).retrain
    warn = Alert({"alertname": "FeatureDriftWarn", "severity": "warning", "feature": "x"}, {})
    assert not decide([[warn], [warn]]).retrain


def test_auc_floor_needs_enough_outcomes():
    assert decide([[]], matured_auc=0.74, matured_outcomes=500).reasons == [
        "AUC on 500 matured outcomes 0.740 < 0.78"
    ]
    assert not decide([[]], matured_auc=0.74, matured_outcomes=50).retrain
    assert not decide([[]], matured_auc=0.80, matured_outcomes=500).retrain


def test_monthly_schedule_and_first_run():
    d = decide([[]], last_retrained_at=NOW - timedelta(days=31))
    assert d.retrain and d.reasons[0].startswith("scheduled retraining: 31.0 days")
    assert decide([[]], last_retrained_at=None).reasons == ["scheduled retraining: never retrained"]
    assert not decide([[]], policy=RetrainingConfig(schedule_days=None), last_retrained_at=None).retrain


def test_cooldown_and_too_few_new_outcomes_block_with_reasons_kept():
    windows = [[drift("income")], [drift("income")]]
    d = decide(windows, last_retrained_at=NOW - timedelta(days=2))
    assert not d.retrain and d.reasons and d.blockers == ["cooldown: last retraining 2.0 days ago (< 7)"]
    d = decide(windows, new_labelled_outcomes=100)
    assert not d.retrain and d.blockers == ["only 100 new labelled outcomes (< 500)"]


def test_policy_is_configurable():
    policy = RetrainingConfig(persist_windows=3, auto_promote=True)
    windows = [[drift("income")], [drift("income")]]
    assert not decide(windows, policy=policy).retrain  # needs 3 windows now
    d = decide([*windows, [drift("income")]], policy=policy)
    assert d.retrain and not d.promotion_requires_approval
    assert d.to_dict()["decided_at"] == NOW.isoformat()
