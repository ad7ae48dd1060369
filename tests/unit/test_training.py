"""creditops.training: split, tune (Optuna + nested MLflow runs), fit (monotone, CV, calibration)."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pandas as pd
import pytest
import xgboost as xgb
from mlflow.tracking import MlflowClient
from pydantic import ValidationError
from sklearn.metrics import roc_auc_score

from creditops.artifact import load_bundle, save_bundle
from creditops.config import ScoringConfig
from creditops.errors import DataError
from creditops.training import ProtectedAttributeError
from creditops.training._common import dmatrix
from creditops.training.fit import (
    MIN_TREES,
    choose_thresholds,
    false_positive_rate,
    fit_isotonic,
    fit_model,
    ks_statistic,
    lowest_threshold_at_fpr,
)
from creditops.training.split import split_frame
from creditops.training.tune import (
    SEED_SPACE,
    SMALL_DATA_SPACE,
    FloorEarlyStopping,
    PruningCallback,
    resolve_objective,
    search_space,
    tune,
)

FEATURES = ["x0", "x1", "x2", "x3", "x4"]
DIRECTIONS = {"x0": 1, "x1": -1}
PARAMS = {"max_depth": 3, "learning_rate": 0.1, "n_estimators": 150, "subsample": 0.9}


def make_frame(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """Tiny credit-like frame: x0 raises risk, x1 lowers it, x2 acts non-monotonically, x3/x4 are noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    logit = -1.2 + 1.2 * x[:, 0] - 0.9 * x[:, 1] + 0.5 * x[:, 2] ** 2
    df = pd.DataFrame(x, columns=FEATURES)
    df.insert(0, "applicant_id", np.arange(n, dtype=np.int64))
    df["event_timestamp"] = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 365, n), "D"
    )
    df["defaulted"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    df["sex"] = rng.choice(["female", "male"], n)
    df["age_band"] = rng.choice(["18-25", "26-35", "36-50"], n)
    df["race"] = rng.choice(list("abcde"), n)
    return df


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture(scope="module")
def split(frame):
    return split_frame(frame, "random", seed=3)


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def fitted(split):
    return fit_model(
        split, FEATURES, DIRECTIONS, "defaulted", PARAMS, ScoringConfig(), cv_folds=3, seed=1, nthread=1
    )


# --- split


def test_random_split_is_stratified_disjoint_and_seeded(frame):
    s = split_frame(frame, "random", (0.8, 0.1, 0.1), seed=3)
    assert s.sizes() == {"train": 1200, "valid": 150, "test": 150}
    ids = [set(p.applicant_id) for p in (s.train, s.valid, s.test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    rate = frame.defaulted.mean()
    assert all(abs(p.defaulted.mean() - rate) < 0.02 for p in (s.train, s.valid, s.test))
    again = split_frame(frame, "random", seed=3)
    assert again.test.applicant_id.tolist() == s.test.applicant_id.tolist()
    assert split_frame(frame, "random", seed=4).test.applicant_id.tolist() != s.test.applicant_id.tolist()


def test_out_of_time_split_orders_by_time(frame):
    s = split_frame(frame, "out_of_time", (0.6, 0.2, 0.2))
    assert s.sizes() == {"train": 900, "valid": 300, "test": 300}
    assert s.train.event_timestamp.max() <= s.valid.event_timestamp.min()
    assert s.valid.event_timestamp.max() <= s.test.event_timestamp.min()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fractions": (0.8, 0.3, 0.1)}, "summing to 1"),
        ({"how": "sideways"}, "unknown split"),
        ({"how": "out_of_time", "time_column": "nope"}, "nope"),
    ],
)
def test_split_rejects_bad_arguments(frame, kwargs, message):
    with pytest.raises(DataError, match=message):
        split_frame(frame, **kwargs)


# --- tune


def test_tune_logs_each_trial_as_nested_mlflow_run(split, mlflow_uri):
    uri = mlflow_uri
    result = tune(
        split,
        FEATURES,
        "defaulted",
        n_trials=4,
        seed=5,
        pruner="median",
        directions=DIRECTIONS,
        tracking_uri=uri,
        early_stopping_rounds=15,
        nthread=1,
        objective="valid",
        space=SEED_SPACE,
    )
    assert result.objective == "valid" and result.space == "seed"
    assert result.n_trials == 4 and 0 <= result.n_pruned < 4
    assert 0.7 < result.best_value <= 1.0
    p = result.best_params
    assert (
        3 <= p["max_depth"] <= 10 and 0.01 <= p["learning_rate"] <= 0.3 and 100 <= p["n_estimators"] <= 1000
    )
    assert 1 <= p["min_child_weight"] <= 10
    assert {"subsample", "colsample_bytree", "reg_lambda", "reg_alpha", "gamma"} <= set(p)
    assert MIN_TREES <= p["n_trees"] <= p["n_estimators"] and p["n_trees"] == result.best_iteration + 1

    client = MlflowClient(uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.data.metrics["best_valid_auc"] == pytest.approx(result.best_value)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    assert len(children) == 4
    for run in children:
        assert {"valid_auc", "best_iteration", "pruned"} <= set(run.data.metrics)
        assert {"max_depth", "learning_rate", "n_estimators"} <= set(run.data.params)
    assert sum(run.data.metrics["pruned"] for run in children) == result.n_pruned


def test_tune_is_reproducible_and_supports_hyperband(split):
    kw = dict(n_trials=3, seed=11, pruner="hyperband", track=False, early_stopping_rounds=10, nthread=1)
    a = tune(split, FEATURES, "defaulted", **kw)
    b = tune(split, FEATURES, "defaulted", **kw)
    assert a.best_params == b.best_params and a.best_value == pytest.approx(b.best_value)
    assert a.parent_run_id is None


def test_pruning_callback_stops_training_when_trial_should_prune(split):
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1.01))
    trial = study.ask()
    callback = PruningCallback(trial, every=5)
    booster = xgb.train(
        {"objective": "binary:logistic", "eval_metric": "auc", "nthread": 1},
        dmatrix(split.train, FEATURES, "defaulted"),
        num_boost_round=200,
        evals=[(dmatrix(split.valid, FEATURES, "defaulted"), "valid")],
        callbacks=[callback],
        verbose_eval=False,
    )
    assert callback.pruned and booster.num_boosted_rounds() == 5
    assert 0.5 < callback.last_value <= 1.0


def test_search_space_and_objective_follow_the_data_size():
    assert search_space(1_000) is SMALL_DATA_SPACE and search_space(20_000) is SEED_SPACE
    assert (SEED_SPACE.max_depth, SEED_SPACE.learning_rate) == ((3, 10), (0.01, 0.3))
    assert (SEED_SPACE.n_estimators, SEED_SPACE.min_child_weight) == ((100, 1000), (1.0, 10.0))
    # small data: shallower, slower, more heavily penalised
    assert SMALL_DATA_SPACE.max_depth[1] < SEED_SPACE.max_depth[1]
    assert SMALL_DATA_SPACE.learning_rate[1] < SEED_SPACE.learning_rate[1]
    assert SMALL_DATA_SPACE.reg_lambda[0] > SEED_SPACE.reg_lambda[0]
    assert resolve_objective("auto", 1_000) == "cv" and resolve_objective("auto", 20_000) == "valid"
    assert resolve_objective("valid", 1_000) == "valid"
    with pytest.raises(ValueError, match="objective"):
        resolve_objective("test", 1_000)


def test_small_data_is_tuned_by_cross_validation_on_the_small_space(split):
    result = tune(split, FEATURES, "defaulted", n_trials=3, seed=2, track=False, nthread=1, cv_folds=3)
    assert result.objective == "cv" and result.space == "small_data"  # 1,350 rows of train + valid
    p = result.best_params
    assert SMALL_DATA_SPACE.max_depth[0] <= p["max_depth"] <= SMALL_DATA_SPACE.max_depth[1]
    assert SMALL_DATA_SPACE.reg_lambda[0] <= p["reg_lambda"] <= SMALL_DATA_SPACE.reg_lambda[1]
    assert p["n_trees"] >= MIN_TREES
    # a 3-fold mean on 1,350 rows, not the AUC of 150 validation rows
    assert 0.7 < result.best_value < 0.95


def _overfitting_run(split, callbacks=(), early_stopping_rounds=None):
    """A booster whose validation AUC peaks within a few rounds (deep trees, learning rate 1, noise)."""
    noisy = split.train.assign(defaulted=np.random.default_rng(0).permutation(split.train.defaulted))
    return xgb.train(
        {"objective": "binary:logistic", "eval_metric": "auc", "max_depth": 10, "eta": 1.0, "nthread": 1},
        dmatrix(noisy, FEATURES, "defaulted"),
        num_boost_round=400,
        evals=[(dmatrix(split.valid, FEATURES, "defaulted"), "valid")],
        early_stopping_rounds=early_stopping_rounds,
        callbacks=list(callbacks),
        verbose_eval=False,
    )


def test_early_stopping_cannot_end_below_the_tree_floor(split):
    plain = _overfitting_run(split, early_stopping_rounds=10)
    assert plain.best_iteration + 1 < MIN_TREES  # what xgboost's own early stopping keeps on this input
    stop = FloorEarlyStopping(MIN_TREES, patience=10)
    floored = _overfitting_run(split, callbacks=[stop])
    assert stop.best_iteration >= MIN_TREES - 1
    assert floored.num_boosted_rounds() >= MIN_TREES
    assert stop.best_score == pytest.approx(max(stop.history[MIN_TREES - 1 :]))
    assert int(floored.attr("best_iteration")) == stop.best_iteration


def test_fit_keeps_the_tuned_number_of_trees_and_the_floor(split):
    exact = fit_model(
        split, FEATURES, DIRECTIONS, "defaulted", {**PARAMS, "n_trees": 70}, cv_folds=2, nthread=1
    )
    assert exact.booster.num_boosted_rounds() == 70 and exact.metrics["n_trees"] == 70
    # without n_trees: early stopping on a fast-overfitting configuration still keeps MIN_TREES trees
    wild = {"max_depth": 10, "learning_rate": 1.0, "n_estimators": 300}
    stopped = fit_model(
        split, FEATURES, {}, "defaulted", wild, cv_folds=2, nthread=1, early_stopping_rounds=60
    )
    assert stopped.booster.num_boosted_rounds() >= MIN_TREES


# --- fit


def test_fit_reports_cv_and_test_metrics(fitted):
    assert len(fitted.cv.aucs) == 3 and fitted.cv.mean == pytest.approx(np.mean(fitted.cv.aucs))
    assert fitted.cv.std >= 0 and 0.72 < fitted.cv.mean < 0.95
    assert 0.72 < fitted.metrics["test_auc"] < 0.95
    assert fitted.booster.num_boosted_rounds() == fitted.best_iteration + 1
    assert fitted.booster.feature_names == FEATURES


def test_fit_respects_monotone_directions(fitted, split):
    base = split.test.head(20)
    grid = np.linspace(-3, 3, 25)
    for feature, sign in DIRECTIONS.items():
        rows = pd.concat([base.assign(**{feature: v}) for v in grid])
        raw = fitted.booster.inplace_predict(rows[FEATURES].to_numpy(np.float32)).reshape(
            len(grid), len(base)
        )
        steps = np.diff(raw, axis=0) * sign
        assert (steps >= -1e-7).all(), f"{feature} violates direction {sign}"


def test_calibration_is_isotonic_and_thresholds_meet_target_fpr(fitted, split):
    cal = fitted.calibration
    assert np.all(np.diff(cal.x) >= 0) and np.all(np.diff(cal.y) >= 0)
    pd_valid = fitted.predict_pd(split.valid)
    y = split.valid.defaulted.to_numpy()
    t = fitted.thresholds
    target = ScoringConfig().target_fpr
    assert t.approve_below_pd < t.decline_at_or_above_pd  # a real review band
    assert false_positive_rate(pd_valid, y, t.decline_at_or_above_pd) <= target
    # The lowest such threshold: any observed PD below it breaks the FPR budget.
    lower = np.unique(pd_valid[pd_valid < t.decline_at_or_above_pd])
    assert all(false_positive_rate(pd_valid, y, v) > target for v in lower)
    referred = np.mean((pd_valid >= t.approve_below_pd) & (pd_valid < t.decline_at_or_above_pd))
    assert referred > 0 and "policy target_fpr" in t.rule
    assert fitted.score_scaling.pdo == 20 and fitted.score_scaling.base_odds == 50


def test_calibration_keeps_the_ranking_of_the_raw_score(fitted, split):
    raw = fitted.booster.inplace_predict(split.test[FEATURES].to_numpy(np.float32))
    pd_test = fitted.predict_pd(split.test)
    y = split.test.defaulted.to_numpy()
    assert abs(roc_auc_score(y, pd_test) - roc_auc_score(y, raw)) <= 0.002
    assert len(np.unique(pd_test)) == len(np.unique(raw))  # no two applicants share a PD they did not share
    assert np.all(np.diff(fitted.calibration.y) > 0)  # strictly increasing knots
    assert abs(fitted.metrics["test_auc_calibrated"] - fitted.metrics["test_auc"]) <= 0.002


def test_a_plain_isotonic_step_function_would_fail_the_ranking_check(fitted, split):
    # The check above is not vacuous: the step function the tie-break replaces loses AUC on the same rows.
    from sklearn.isotonic import IsotonicRegression

    raw_valid = fitted.booster.inplace_predict(split.valid[FEATURES].to_numpy(np.float32))
    raw_test = fitted.booster.inplace_predict(split.test[FEATURES].to_numpy(np.float32))
    y = split.test.defaulted.to_numpy()
    steps = IsotonicRegression(out_of_bounds="clip").fit(raw_valid, split.valid.defaulted).predict(raw_test)
    assert roc_auc_score(y, raw_test) - roc_auc_score(y, steps) > 0.002
    assert len(np.unique(steps)) < len(np.unique(raw_test)) / 2
    ours = fit_isotonic(raw_valid, split.valid.defaulted.to_numpy())
    pd_test = np.interp(raw_test, ours.x, ours.y)
    assert abs(roc_auc_score(y, pd_test) - roc_auc_score(y, raw_test)) <= 0.002
    assert (
        np.max(np.abs(pd_test - np.interp(raw_test, ours.x, _steps_knots(raw_valid, split)))) <= 1e-3 + 1e-9
    )


def _steps_knots(raw_valid, split):
    """The isotonic fit at the tie-broken calibration's knots (bounds how far the tie-break moved it)."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(raw_valid, split.valid.defaulted)
    knots = np.asarray(fit_isotonic(raw_valid, split.valid.defaulted.to_numpy()).x)
    return iso.predict(knots)


def test_ks_statistic_matches_scipy():
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 500)
    score = rng.normal(size=500) + 0.8 * y
    assert ks_statistic(y, score) == pytest.approx(ks_2samp(score[y == 1], score[y == 0]).statistic)
    assert ks_statistic(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert math.isnan(ks_statistic(np.array([0, 0]), np.array([0.1, 0.2])))


def test_threshold_rule_on_hand_made_scores():
    pd_ = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    y = np.array([0, 0, 0, 0, 0, 0, 1, 0, 1, 1])
    # Non-defaulters at 0.05..0.5 and 0.7: FPR(0.7) = 1/7, FPR(0.8) = 0.
    assert lowest_threshold_at_fpr(pd_, y, 0.0) == 0.8
    assert lowest_threshold_at_fpr(pd_, y, 0.15) == 0.6
    t = choose_thresholds(pd_, y, ScoringConfig(target_fpr=0.15))
    assert (t.approve_below_pd, t.decline_at_or_above_pd) == (0.5, 0.6)
    fixed = choose_thresholds(pd_, y, ScoringConfig(approve_below_pd=0.1, decline_at_or_above_pd=0.3))
    assert (fixed.approve_below_pd, fixed.decline_at_or_above_pd) == (0.1, 0.3)
    # All non-defaulters tied at the top: decline nothing observed.
    assert lowest_threshold_at_fpr(np.array([0.2, 0.2]), np.array([0, 1]), 0.04) > 0.2


def test_score_points_follow_points_to_double_the_odds(fitted, split, tmp_path):
    manifest = fitted.to_manifest("credit-pd", "credit_scoring_v1")
    bundle = load_bundle(save_bundle(tmp_path / "b", fitted.booster, manifest, split.train[FEATURES]))
    assert bundle.score_points(1 / 51) == pytest.approx(600.0)  # odds 50:1 -> base score
    assert bundle.score_points(1 / 101) == pytest.approx(620.0)  # odds doubled -> +pdo
    assert bundle.score_points(1 / 26) == pytest.approx(580.0)
    assert math.isfinite(bundle.score_points(0.0)) and math.isfinite(bundle.score_points(1.0))
    np.testing.assert_allclose(bundle.predict_pd(split.test), fitted.predict_pd(split.test))


# --- protected attributes are never model inputs


def test_protected_attributes_never_become_model_inputs(fitted, split, tmp_path):
    assert {"sex", "age_band", "race"} <= set(split.train.columns)  # they ride along in the frame...
    manifest = fitted.to_manifest("credit-pd", "credit_scoring_v1")
    bundle = load_bundle(save_bundle(tmp_path / "b", fitted.booster, manifest, split.train))
    protected = {"sex", "age_band", "race"}
    assert not protected & set(fitted.features)  # ...but are not features of the fit,
    assert not protected & set(bundle.booster.feature_names)  # of the booster,
    assert bundle.booster.num_features() == len(FEATURES)
    assert not protected & set(bundle.manifest.features)  # or of the manifest,
    assert protected <= set(bundle.manifest.protected)  # which records them as protected.
    contribs = bundle.contributions(split.test.head(3))
    assert not protected & set(contribs.columns)


@pytest.mark.parametrize("attribute", ["sex", "age_band", "race"])
def test_protected_attribute_as_feature_raises(split, attribute):
    frame = split.train.assign(**{attribute: 1.0})  # even numerically encoded
    bad = type(split)(frame, split.valid.assign(**{attribute: 1.0}), split.test.assign(**{attribute: 1.0}))
    with pytest.raises(ProtectedAttributeError, match=attribute):
        fit_model(bad, [*FEATURES, attribute], DIRECTIONS, "defaulted", PARAMS, cv_folds=2)
    with pytest.raises(ProtectedAttributeError, match=attribute):
        tune(bad, [*FEATURES, attribute], "defaulted", n_trials=1, track=False)


def test_manifest_refuses_protected_feature(fitted):
    manifest = fitted.to_manifest("credit-pd", "credit_scoring_v1")
    data = manifest.model_dump()
    data["features"] = [*FEATURES, "sex"]
    with pytest.raises(ValidationError, match="protected"):
        type(manifest).model_validate(data)


def test_target_as_feature_and_non_binary_target_raise(split):
    with pytest.raises(ProtectedAttributeError, match="leakage"):
        fit_model(split, [*FEATURES, "defaulted"], {}, "defaulted", PARAMS, cv_folds=2)
    bad = type(split)(split.train.assign(defaulted=2), split.valid, split.test)
    with pytest.raises(DataError, match="0/1"):
        fit_model(bad, FEATURES, {}, "defaulted", PARAMS, cv_folds=2)


# --- baselines, gate evidence, the parent run


@pytest.fixture(scope="module")
def evidence(fitted, split):
    from creditops.config import Settings
    from creditops.training.workflow import gate_evidence

    return gate_evidence(fitted, split, Settings(training={"cv_folds": 3, "seed": 1}))


def test_gate_evidence_holds_cv_folds_raw_auc_and_both_baselines(evidence, fitted, split):
    from creditops.governance.gates import GateEvidence
    from creditops.training.baselines import logistic_regression, xgboost_default
    from creditops.training.workflow import comparison

    y = split.test.defaulted.to_numpy()
    assert evidence["cv_auc"] == fitted.cv.aucs and len(evidence["cv_auc"]) == 3
    raw = fitted.booster.inplace_predict(split.test[FEATURES].to_numpy(np.float32))
    assert evidence["raw_test_auc"] == pytest.approx(roc_auc_score(y, raw))
    assert set(evidence["baselines"]) == {"logistic_regression", "xgboost_default"}
    for row in [evidence["tuned"], *evidence["baselines"].values()]:
        assert {"auc", "gini", "ks", "brier", "cv_auc_mean", "cv_auc_sd"} <= set(row)
        assert (
            row["gini"] == pytest.approx(2 * row["auc"] - 1)
            and 0 < row["ks"] <= 1
            and 0 < row["brier"] < 0.25
        )
        assert 0.6 < row["cv_auc_mean"] < 0.95 and row["cv_auc_sd"] >= 0
    # each baseline is the plain sklearn / xgboost model fitted on the same train split, scored on test
    x_train, y_train = split.train[FEATURES].to_numpy(), split.train.defaulted.to_numpy()
    for name, model in (
        ("logistic_regression", logistic_regression()),
        ("xgboost_default", xgboost_default(7)),
    ):
        score = model.fit(x_train, y_train).predict_proba(split.test[FEATURES].to_numpy())[:, 1]
        assert evidence["baselines"][name]["auc"] == pytest.approx(roc_auc_score(y, score), abs=1e-6)
    assert evidence["tuned"]["auc"] == pytest.approx(roc_auc_score(y, fitted.predict_pd(split.test)))
    assert list(comparison(evidence)) == ["tuned_xgboost", "logistic_regression", "xgboost_default"]
    # the JSON the train step writes is what the gate step reads
    restored = GateEvidence.from_dict(json.loads(json.dumps(evidence)))
    assert restored.cv_auc == tuple(fitted.cv.aucs)
    assert (
        restored.baselines["logistic_regression"]["auc"]
        == evidence["baselines"]["logistic_regression"]["auc"]
    )


def test_baselines_expose_a_model_that_learned_nothing(split):
    from creditops.config import Settings
    from creditops.training.workflow import gate_evidence

    shuffled = type(split)(
        split.train.assign(defaulted=np.random.default_rng(1).permutation(split.train.defaulted)),
        split.valid,
        split.test,
    )
    noise = fit_model(shuffled, FEATURES, {}, "defaulted", PARAMS, cv_folds=2, seed=1, nthread=1)
    ev = gate_evidence(noise, split, Settings(training={"cv_folds": 2, "seed": 1}))
    best_baseline = max(row["auc"] for row in ev["baselines"].values())
    assert best_baseline - ev["tuned"]["auc"] > 0.15


def test_model_card_shows_the_model_beside_its_baselines(evidence, fitted, split, tmp_path):
    from creditops.config import GatesConfig
    from creditops.governance import model_card
    from creditops.governance.gates import evaluate_gates
    from creditops.training.workflow import comparison

    manifest = fitted.to_manifest("credit-pd", "credit_scoring_v1")
    bundle = load_bundle(save_bundle(tmp_path / "b", fitted.booster, manifest, split.train[FEATURES]))
    report = evaluate_gates(bundle, split.test, GatesConfig(fairness_bootstrap_resamples=50))
    markdown, html = model_card.render(bundle, report, test_df=split.test, baselines=comparison(evidence))
    section = markdown.split("## Baselines", 1)[1].split("\n## ", 1)[0]
    for name in ("tuned_xgboost", "logistic_regression", "xgboost_default"):
        assert name in section and name in html
    assert f"{evidence['baselines']['logistic_regression']['auc']:.4f}" in section
    assert markdown.index("## Performance") < markdown.index("## Baselines")
    plain, _ = model_card.render(bundle, report, test_df=split.test)
    assert "## Baselines" not in plain


def _settings(tmp_path, uri):
    from creditops.config import Settings

    # one SQLite tracking database per module: creating one runs MLflow's migrations (seconds)
    return Settings(
        workdir=tmp_path, mlflow={"tracking_uri": uri, "artifact_location": str(tmp_path / "art")}
    )


def test_a_failing_step_ends_the_parent_run_failed_with_source_and_duration(tmp_path, mlflow_uri):
    from creditops.training.workflow import PIPELINE_SOURCE, failing_run, start_parent_run

    settings = _settings(tmp_path, mlflow_uri)
    run_id = start_parent_run(settings, "v1", "credit_scoring_v1")
    with pytest.raises(RuntimeError, match="boom"), failing_run(settings, run_id):
        raise RuntimeError("boom")
    run = MlflowClient(settings.mlflow.tracking_uri).get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.info.end_time is not None and run.info.end_time >= run.info.start_time
    assert run.data.tags["mlflow.source.name"] == PIPELINE_SOURCE
    assert run.data.tags["mlflow.source.type"] == "JOB"


@pytest.mark.parametrize("passing", [True, False])
def test_register_step_ends_the_parent_run_finished(fitted, split, tmp_path, mlflow_uri, passing):
    from creditops.governance.gates import Gate, GateReport
    from creditops.training.workflow import register_if_passed, start_parent_run

    settings = _settings(tmp_path, mlflow_uri)
    run_id = start_parent_run(settings, "v1", "credit_scoring_v1")
    manifest = fitted.to_manifest("credit-pd", "credit_scoring_v1", data_version="v1")
    bundle_dir = save_bundle(tmp_path / "b", fitted.booster, manifest, split.train[FEATURES])
    gate = Gate.check("auc", 0.9 if passing else 0.6, 0.8, ">=")
    report_path = tmp_path / "gates.json"
    report_path.write_text(
        json.dumps(GateReport(passed=passing, gates=[gate], metrics={"auc": 0.9}).to_dict())
    )
    (tmp_path / "card_markdown").write_text("# Model card\n")
    (tmp_path / "card_html").write_text("<!DOCTYPE html><html></html>")
    cards = {"markdown": str(tmp_path / "card_markdown"), "html": str(tmp_path / "card_html")}
    summary = register_if_passed(settings, run_id, bundle_dir, report_path, cards)
    run = MlflowClient(settings.mlflow.tracking_uri).get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.end_time >= run.info.start_time
    assert (summary.registered_version is not None) == passing
    assert run.data.tags["gates_passed"] == str(passing).lower()
    if not passing:
        assert run.data.tags["gates_failed"] == "auc"
