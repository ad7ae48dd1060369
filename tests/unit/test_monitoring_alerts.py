"""Alerts from windows: which judge fires on input built to fire it, severity, runbook, deduplication."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from creditops.config import MonitoringConfig
from creditops.monitoring.alerts import (
    RUNBOOK,
    Alert,
    AlertDispatcher,
    LogSink,
    evaluate_alerts,
    parse_webhook,
)
from creditops.monitoring.reference import build_reference
from creditops.monitoring.window import analyse_window, window_from_frame

FEATURES = ["income", "utilisation", "num_late", "purpose_code"]


def _frame(rng: np.random.Generator, n: int, util_shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "income": rng.lognormal(10.5, 0.4, n),
            "utilisation": rng.beta(2, 5, n) + util_shift,
            "num_late": rng.poisson(0.5, n).astype(float),
            "purpose_code": rng.integers(0, 4, n).astype(float),
        }
    )


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(0)
    train = _frame(rng, 20_000)
    pd_valid = rng.beta(2, 18, 5000)
    y = (rng.random(5000) < pd_valid).astype(float)
    score = 600 + 20 * np.log((1 - pd_valid) / pd_valid) / np.log(2)
    decisions = np.where(pd_valid < 0.1, "approve", np.where(pd_valid < 0.3, "review", "decline"))
    return build_reference(
        train, FEATURES, pd_valid, y, score, decisions, model_name="m", labels=["m@1"],
        valid_ranges={"utilisation": (0.0, 1.0)},
    )  # fmt: skip


def _window(reference, frame: pd.DataFrame, pd_: np.ndarray, **kw):
    rng = np.random.default_rng(1)
    frame = frame.assign(
        pd=pd_,
        score=600 + 20 * np.log((1 - pd_) / pd_) / np.log(2),
        decision=np.where(pd_ < 0.1, "approve", np.where(pd_ < 0.3, "review", "decline")),
        caller_id=rng.choice(["a", "b"], len(frame)),
    )
    w = window_from_frame(frame, FEATURES, "m@1", "2026-06-01", "2026-06-02")
    return analyse_window(reference, w, **kw)


def test_a_clean_window_raises_no_alert(reference):
    rng = np.random.default_rng(2)
    report = _window(reference, _frame(rng, 3000), rng.beta(2, 18, 3000))
    assert evaluate_alerts(report) == []


def test_drift_quality_and_pd_alerts_fire_on_input_built_to_fire_them(reference):
    rng = np.random.default_rng(3)
    frame = _frame(rng, 3000, util_shift=0.5)  # utilisation: ~3 SD shift, ~11 % above its valid range 1.0
    frame.loc[:299, "purpose_code"] = 9.0  # unseen category
    frame.loc[:599, "income"] = np.nan  # 20 % missing
    report = _window(reference, frame, rng.beta(4, 12, 3000))  # mean PD 0.25 vs 0.10 expected
    alerts = evaluate_alerts(report)
    by = {(a.name, a.labels.get("feature", "")) for a in alerts}
    assert ("FeatureDriftAct", "utilisation") in by
    assert ("DataQuality", "utilisation") in by  # out of range
    assert ("DataQuality", "purpose_code") in by  # unseen
    assert ("DataQuality", "income") in by  # missing
    assert ("MeanPDDrift", "") in by
    assert ("ScoreDrift", "") in by
    assert ("FeatureDriftAct", "num_late") not in by
    for a in alerts:
        assert a.severity in ("warning", "critical")
        assert a.annotations["runbook"] == RUNBOOK[a.name]
        assert a.labels["model_version"] == "m@1"
    assert {a.severity for a in alerts if a.name == "FeatureDriftAct"} == {"critical"}


def test_performance_calibration_and_fairness_alerts(reference):
    rng = np.random.default_rng(4)
    report = _window(reference, _frame(rng, 3000), rng.beta(2, 18, 3000))
    report.performance = {"matured": 500, "auc": 0.70, "auc_lo": 0.66, "auc_hi": 0.74, "validation_auc": 0.82}
    report.calibration = [
        {"grade": "C", "n": 400, "defaults": 60, "default_rate": 0.15, "mean_pd": 0.04, "jeffreys_p": 1e-9,
         "light": "red"},
        {"grade": "B", "n": 400, "defaults": 8, "default_rate": 0.02, "mean_pd": 0.02, "jeffreys_p": 0.5,
         "light": "green"},
    ]  # fmt: skip
    report.fairness = [
        {"attribute": "sex", "group": "female", "approval_rate": 0.5, "air": 0.7, "eo_gap": 0.15},
        {"attribute": "sex", "group": "male", "approval_rate": 0.71, "air": 1.0, "eo_gap": 0.0},
    ]
    names = [(a.name, a.labels.get("grade") or a.labels.get("group", "")) for a in evaluate_alerts(report)]
    assert ("AUCBelowFloor", "") in names
    assert ("CalibrationRed", "C") in names and ("CalibrationRed", "B") not in names
    assert ("AdverseImpact", "female") in names and ("AdverseImpact", "male") not in names
    assert ("EqualOpportunityGap", "female") in names
    # too few matured outcomes: no AUC verdict
    report.performance["matured"] = 50
    assert "AUCBelowFloor" not in [
        a.name for a in evaluate_alerts(report, MonitoringConfig(min_outcomes=200))
    ]


class _Collect:
    def __init__(self) -> None:
        self.batches: list[list[Alert]] = []

    def send(self, alerts):
        self.batches.append(list(alerts))


class _Broken:
    def send(self, alerts):
        raise ConnectionError("down")


def test_dispatcher_deduplicates_repeats_and_resolves(caplog):
    now = [1000.0]
    sink = _Collect()
    d = AlertDispatcher([_Broken(), sink, LogSink()], repeat_seconds=3600, clock=lambda: now[0])
    a = Alert({"alertname": "FeatureDriftAct", "severity": "critical", "feature": "x"}, {"summary": "s"})
    b = Alert({"alertname": "MeanPDDrift", "severity": "warning"}, {"summary": "t"})
    with caplog.at_level(logging.INFO, logger="creditops.monitoring.alerts"):
        assert d.process([a, b]) == [a, b]
    assert "sink _Broken failed" in caplog.text and "FeatureDriftAct" in caplog.text
    now[0] += 60
    assert d.process([a, b]) == []  # still firing, not due: deduplicated
    now[0] += 3600
    assert [x.name for x in d.process([a])] == ["FeatureDriftAct", "MeanPDDrift"]  # repeat a, resolve b
    assert sink.batches[-1][1].status == "resolved"
    assert [x.name for x in d.active] == ["FeatureDriftAct"]


def test_fingerprint_depends_on_labels_only():
    a = Alert({"alertname": "X", "severity": "warning"}, {"summary": "one"})
    b = Alert({"severity": "warning", "alertname": "X"}, {"summary": "two"})
    c = Alert({"alertname": "X", "severity": "critical"}, {"summary": "one"})
    assert a.fingerprint == b.fingerprint != c.fingerprint


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ([], "body"),
        ({"version": "3", "alerts": []}, "version"),
        ({"alerts": "x"}, "alerts"),
        ({"alerts": [{"labels": {"severity": "warning"}}]}, "alerts[0].labels.alertname"),
        ({"alerts": [{"labels": {"alertname": "X", "n": 1}}]}, "alerts[0].labels"),
        ({"alerts": [{"labels": {"alertname": "X"}, "status": "odd"}]}, "alerts[0].status"),
    ],
)
def test_webhook_payload_errors_name_the_field(payload, field):
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_webhook(payload)


def test_many_identical_request_bursts_of_one_caller_are_one_alert(reference):
    """40 different requests each repeated 25 times: one RequestAnomaly alert per caller, not per burst.

    The demo printed one line per burst, 1,114 of them; each alert now says how many bursts it stands for.
    """
    rng = np.random.default_rng(4)
    frame = _frame(rng, 3000)
    for k in range(40):
        frame.iloc[k * 25 : (k + 1) * 25] = frame.iloc[k * 25].to_numpy()
    report = _window(reference, frame, rng.beta(2, 18, 3000))
    bursts = [a for a in report.anomalies if a.kind == "identical_requests"]
    assert len(bursts) == 40
    alerts = [a for a in evaluate_alerts(report) if a.name == "RequestAnomaly"]
    assert len(alerts) == len({a.fingerprint for a in alerts}) == len({a.caller_id for a in bursts})
    import re

    counts = [re.search(r"\((\d+) of them in this window", a.annotations["summary"]) for a in alerts]
    assert sum(int(m.group(1)) if m else 1 for m in counts) == 40 and len(alerts) <= 3  # callers a, b, "a,b"
