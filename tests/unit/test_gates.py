from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from governance_helpers import PROTECTED, TARGET, ProxyBiasedBundle, make_bundle, sex_from_proxy
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score

from creditops.artifact import Bundle, load_bundle
from creditops.config import GatesConfig
from creditops.errors import DataError
from creditops.governance.gates import (
    Gate,
    GateEvidence,
    GateReport,
    evaluate_gates,
    monotonicity_violations,
    performance_metrics,
)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> tuple[Bundle, pd.DataFrame]:
    bundle_dir, test = make_bundle(Path(tmp_path_factory.mktemp("good")) / "bundle")
    return load_bundle(bundle_dir), test


@pytest.fixture(scope="module")
def random_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Bundle, pd.DataFrame]:
    bundle_dir, test = make_bundle(Path(tmp_path_factory.mktemp("random")) / "bundle", random_model=True)
    return load_bundle(bundle_dir), test


def test_good_model_passes_every_gate(good: tuple[Bundle, pd.DataFrame]) -> None:
    bundle, test = good
    report = evaluate_gates(bundle, test, GatesConfig(), TARGET, PROTECTED)
    assert report.passed, report.summary()
    names = [g.name for g in report.gates]
    assert names[:3] == ["auc", "fpr_at_threshold", "recall_at_threshold"]
    for attr in PROTECTED:  # every protected attribute is gated on both disparities
        assert f"demographic_parity_difference.{attr}" in names
        assert f"equal_opportunity_difference.{attr}" in names
    assert {"perturbation_shift", "adversarial_monotone", "monotonicity"} <= set(names)
    for key in ("auc", "gini", "ks", "precision", "recall", "f1", "brier", "fpr"):
        assert math.isfinite(report.metrics[key]), key
    assert report.metrics["gini"] == pytest.approx(2 * report.metrics["auc"] - 1)
    # no training evidence here: the baseline gate has nothing to judge and says so, never "pass"
    assert {g.name for g in report.gates if g.status != "pass"} == {"baseline_not_worse"}
    assert report.summary().splitlines() == [
        f"passed: none of {len(names)} gates failed ({len(names) - 1} pass, 1 not applicable)",
        "not applicable: baseline_not_worse",
    ]
    assert set(report.fairness_frames) == set(PROTECTED)
    assert set(report.fairness_frames["sex"].columns) >= {"selection_rate", "tpr", "fpr", "auc", "count"}
    json.dumps(report.to_dict())  # what the registry logs must serialise
    for attr in PROTECTED:  # every disparity carries its interval, around the point estimate
        name = f"equal_opportunity_difference.{attr}"
        assert report.metrics[f"{name}.ci_low"] <= report.metrics[name] <= report.metrics[f"{name}.ci_high"]
    again = GateReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert [g.describe() for g in again.gates] == [g.describe() for g in report.gates]
    assert [g.status for g in again.gates] == [g.status for g in report.gates]
    assert again.summary() == report.summary() and again.operating_point == report.operating_point
    for attr in PROTECTED:
        assert again.fairness[attr].adverse_impact == report.fairness[attr].adverse_impact


def test_protected_attributes_default_to_the_manifest(good: tuple[Bundle, pd.DataFrame]) -> None:
    bundle, test = good
    report = evaluate_gates(bundle, test, GatesConfig())
    assert set(report.fairness) == set(bundle.manifest.protected)
    assert report.notes == [] and report.unassessed == {}
    # declared attributes missing from the data are not silently skipped: the report says so, even passing
    partial = evaluate_gates(bundle, test.drop(columns="age_band"), GatesConfig())
    assert set(partial.fairness) == {"sex"} and partial.passed
    assert partial.unassessed == {"age_band": "absent from the test data"}
    assert "fairness NOT ASSESSED for: age_band (absent from the test data)" in partial.summary()
    nothing = evaluate_gates(bundle, test, GatesConfig(), TARGET, [])
    assert nothing.fairness == {} and "(none declared)" in nothing.unassessed
    assert "fairness was not measured" in nothing.summary()
    with pytest.raises(DataError, match="none of the model's protected attributes"):
        evaluate_gates(bundle, test.drop(columns=["age_band", "sex"]), GatesConfig())


def test_stricter_config_fails_and_summary_names_value_and_threshold(
    good: tuple[Bundle, pd.DataFrame],
) -> None:
    bundle, test = good
    strict = GatesConfig(min_auc=0.99, max_fpr=0.001, max_demographic_parity_difference=0.0001)
    report = evaluate_gates(bundle, test, strict, TARGET, PROTECTED)
    assert not report.passed
    failed = {g.name: g for g in report.failed}
    assert {"auc", "fpr_at_threshold", "demographic_parity_difference.sex"} <= set(failed)
    summary = report.summary()
    auc = failed["auc"]
    assert f"auc: {auc.value:.4g} (required >= 0.99) FAILED by {0.99 - auc.value:.4g}" in summary
    assert "fpr_at_threshold" in summary and "<= 0.001" in summary
    assert "perturbation_shift" not in summary  # passed gates are not listed


def test_random_model_fails_performance_and_monotonicity(random_model: tuple[Bundle, pd.DataFrame]) -> None:
    bundle, test = random_model
    report = evaluate_gates(bundle, test, GatesConfig(), TARGET, PROTECTED)
    assert not report.passed
    failed = {g.name for g in report.failed}
    assert {"auc", "monotonicity", "adversarial_monotone", "perturbation_shift"} <= failed
    assert report.metrics["monotonicity_features_violated"] >= 1


def test_fairness_gate_catches_a_disparate_population(good: tuple[Bundle, pd.DataFrame]) -> None:
    bundle, test = good
    skewed = test.copy()
    women = skewed["sex"] == "female"
    skewed.loc[women, "utilisation"] = np.minimum(skewed.loc[women, "utilisation"] + 0.4, 1.0)
    report = evaluate_gates(bundle, skewed, GatesConfig(), TARGET, PROTECTED)
    failed = {g.name for g in report.failed}
    assert "demographic_parity_difference.sex" in failed
    assert "demographic_parity_difference.age_band" not in failed


def test_missing_columns_raise_data_error(good: tuple[Bundle, pd.DataFrame]) -> None:
    bundle, test = good
    with pytest.raises(DataError, match="race"):
        evaluate_gates(bundle, test, GatesConfig(), TARGET, ["sex", "race"])
    with pytest.raises(DataError, match="utilisation"):
        evaluate_gates(bundle, test.drop(columns="utilisation"), GatesConfig(), TARGET, PROTECTED)


def test_performance_metrics_agree_with_reference_implementations() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    pd_ = np.clip(0.3 * y + rng.uniform(0, 0.7, 500), 0, 1)
    decline = (pd_ >= 0.6).astype(int)
    m = performance_metrics(y, pd_, decline)
    assert m["auc"] == pytest.approx(roc_auc_score(y, pd_))
    assert m["ks"] == pytest.approx(ks_2samp(pd_[y == 1], pd_[y == 0]).statistic)
    assert m["fpr"] == pytest.approx(decline[y == 0].mean())
    assert m["recall"] == pytest.approx(decline[y == 1].mean())


def test_monotonicity_reports_the_violating_feature(random_model: tuple[Bundle, pd.DataFrame]) -> None:
    bundle, test = random_model
    out = monotonicity_violations(bundle, test[bundle.features].head(20), bundle.manifest.directions)
    assert set(out) == {f for f, d in bundle.manifest.directions.items() if d != 0}
    assert max(out.values()) > 0


class _IncreasingInA:
    """PD rises with ``a`` and ignores everything else: monotone in every declared direction."""

    def predict_pd(self, X: pd.DataFrame) -> np.ndarray:
        return X["a"].to_numpy(dtype=float) / 100.0


def test_monotonicity_of_a_feature_with_a_one_point_grid_does_not_shift_the_others() -> None:
    # A declared feature constant in the sample (a rare 0/1 flag) has a one-point grid; the features after it
    # must still read their own predictions.
    X = pd.DataFrame({"flag": np.zeros(30), "a": np.arange(30.0)})
    assert monotonicity_violations(_IncreasingInA(), X, {"flag": 1, "a": 1}) == {"flag": 0.0, "a": 0.0}


@pytest.mark.parametrize(
    ("value", "op", "passed"),
    [(0.85, ">=", True), (0.75, ">=", False), (0.03, "<=", True), (float("nan"), "<=", False)],
)
def test_gate_check(value: float, op: str, passed: bool) -> None:
    threshold = 0.8 if op == ">=" else 0.05
    gate = Gate.check("g", value, threshold, op)  # type: ignore[arg-type]
    assert gate.passed is passed
    assert (gate.margin == 0.0) is passed or math.isnan(value)


def _fairness(report: GateReport, attribute: str) -> dict[str, Gate]:
    return {g.name.split(".")[0]: g for g in report.gates if g.name.endswith(f".{attribute}")}


def test_groups_too_small_to_assess_are_not_assessed_and_the_summary_says_so(
    good: tuple[Bundle, pd.DataFrame],
) -> None:
    bundle, test = good
    tiny = evaluate_gates(bundle, test.head(150), GatesConfig(), TARGET, PROTECTED)
    eo_age = _fairness(tiny, "age_band")["equal_opportunity_difference"]
    assert eo_age.status == "not_assessed" and eo_age.passed and math.isnan(eo_age.value)
    assert "rows < 100" in eo_age.detail and eo_age.verdict == "not assessed"
    assert "equal_opportunity_difference" in tiny.unassessed["age_band"]
    assert "18-25 (" in tiny.unassessed["age_band"]  # the groups left out are named
    assert "fairness NOT ASSESSED for: " in tiny.summary() and "age_band" in tiny.summary()
    assert "not assessed" in eo_age.describe() and "pass" not in eo_age.describe().split(";")[0]
    strict = evaluate_gates(
        bundle, test.head(150), GatesConfig(fairness_fail_unassessed=True), TARGET, PROTECTED
    )
    assert "equal_opportunity_difference.age_band" in {g.name for g in strict.failed}
    assert not strict.passed and "NOT ASSESSED (blocking)" in strict.summary()


def test_decisions_biased_against_one_group_fail_and_name_it(good: tuple[Bundle, pd.DataFrame]) -> None:
    bundle, test = good
    report = evaluate_gates(
        ProxyBiasedBundle(bundle, 0.2), sex_from_proxy(test), GatesConfig(), TARGET, PROTECTED
    )
    dp = _fairness(report, "sex")["demographic_parity_difference"]
    assert not dp.passed and dp.value > 0.15 and dp.ci_low > 0.10
    assert "demographic_parity_difference.sex" in report.summary()
    assert "highest female, lowest male; above the threshold, the whole interval too" in report.summary()
    assert _fairness(report, "age_band")["demographic_parity_difference"].passed
    air = _fairness(report, "sex")["adverse_impact_ratio"]
    assert air.status == "fail" and air.value < 0.80 and "female over male" in air.detail


def test_stricter_fairness_config_fails_a_borderline_model(good: tuple[Bundle, pd.DataFrame]) -> None:
    bundle, test = good
    borderline, frame = ProxyBiasedBundle(bundle, 0.05), sex_from_proxy(test)
    default = _fairness(evaluate_gates(borderline, frame, GatesConfig(), TARGET, PROTECTED), "sex")
    dp = default["demographic_parity_difference"]
    assert dp.passed and 0.03 < dp.value < 0.10  # a real but tolerated gap
    stricter = evaluate_gates(
        borderline, frame, GatesConfig(max_demographic_parity_difference=0.03), TARGET, PROTECTED
    )
    failed = {g.name: g for g in stricter.failed}
    assert "demographic_parity_difference.sex" in failed
    assert "(required <= 0.03) FAILED" in stricter.summary()
    # the point estimate decides: the excess fails although its interval reaches below the threshold
    gate = failed["demographic_parity_difference.sex"]
    assert gate.ci_low <= 0.03 < gate.value and "the interval reaches below it" in gate.detail


def test_evidence_and_every_new_field_survive_the_json_round_trip(good: tuple[Bundle, pd.DataFrame]) -> None:
    bundle, test = good
    evidence = GateEvidence(
        cv_auc=(0.81, 0.83, float("nan")),
        raw_test_auc=0.82,
        baselines={"logistic_regression": {"auc": 0.79, "cv_auc_mean": 0.8}, "xgboost_default": {"auc": 0.8}},
    )
    again = GateEvidence.from_dict(json.loads(json.dumps(evidence.to_dict())))
    assert again.baselines == evidence.baselines and again.raw_test_auc == 0.82
    assert again.cv_auc[:2] == (0.81, 0.83) and math.isnan(again.cv_auc[2])
    empty = GateEvidence.from_dict(None)
    assert empty.cv_auc == () and empty.baselines == {} and math.isnan(empty.raw_test_auc)

    report = evaluate_gates(bundle, test.head(150), GatesConfig(), TARGET, PROTECTED, evidence=evidence)
    statuses = {g.status for g in report.gates}
    assert {"pass", "not_assessed"} <= statuses
    copy = GateReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert [(g.name, g.status, g.passed, g.detail) for g in copy.gates] == [
        (g.name, g.status, g.passed, g.detail) for g in report.gates
    ]
    assert copy.unassessed == report.unassessed and copy.passed == report.passed
    assert copy.summary() == report.summary()


def test_a_report_written_before_gate_statuses_still_loads() -> None:
    legacy = {
        "passed": True,
        "gates": [
            {"name": "auc", "value": 0.83, "threshold": 0.8, "op": ">=", "passed": True},
            {
                "name": "equal_opportunity_difference.race",
                "value": None,
                "threshold": 0.1,
                "op": "<=",
                "passed": True,
            },
            {"name": "fpr_at_threshold", "value": 0.07, "threshold": 0.05, "op": "<=", "passed": False},
        ],
        "metrics": {"auc": 0.83},
    }
    report = GateReport.from_dict(legacy)
    assert [g.status for g in report.gates] == ["pass", "not_assessed", "fail"]
    with pytest.raises(ValueError, match="gate status"):
        Gate("auc", 0.8, 0.8, ">=", "ok")  # type: ignore[arg-type]


def test_cli_summary_prints_the_status_word_never_pass_na(
    good: tuple[Bundle, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console

    from creditops import cli

    bundle, test = good
    report = evaluate_gates(bundle, test.head(150), GatesConfig(), TARGET, PROTECTED)
    gates = [
        {**g, "value": g["value"] if g["value"] is not None else float("nan")}
        for g in report.to_dict()["gates"]
    ]
    out = Console(width=400, record=True, force_terminal=False)
    monkeypatch.setattr(cli, "console", out)
    cli.print_summary(
        {"gates": gates, "registered_version": "3", "model_name": "m", "gate_summary": report.summary()}
    )
    text = out.export_text()
    assert "baseline_not_worse" in text and "not applicable   >= -0.005" in text
    assert "not assessed   <= 0.1" in text and " nan " not in text.lower() and "pass n/a" not in text
    assert "gate notes" in text and "fairness NOT ASSESSED for" in text
