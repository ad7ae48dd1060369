"""creditops.training: split, tune (Optuna + nested MLflow runs), fit (monotone, CV, calibration)."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pandas as pd
import pytest
import xgboost as xgb
from mlflow.tracking import MlflowClient
from pydantic import ValidationError

from creditops.artifact import load_bundle, save_bundle
from creditops.config import ScoringConfig
from creditops.errors import DataError
from creditops.training import ProtectedAttributeError
from creditops.training._common import dmatrix
from creditops.training.fit import choose_thresholds, false_positive_rate, fit_model, lowest_threshold_at_fpr
from creditops.training.split import split_frame
from creditops.training.tune import PruningCallback, tune

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
    )
    assert result.n_trials == 4 and 0 <= result.n_pruned < 4
    assert 0.7 < result.best_value <= 1.0
    p = result.best_params
    assert (
        3 <= p["max_depth"] <= 10 and 0.01 <= p["learning_rate"] <= 0.3 and 100 <= p["n_estimators"] <= 1000
    )
    assert 1 <= p["min_child_weight"] <= 10
    assert {"subsample", "colsample_bytree", "reg_lambda", "reg_alpha", "gamma"} <= set(p)

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
