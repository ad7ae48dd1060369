"""Scoring core: request validation, decisions, ids, on a tiny real bundle."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from creditops.artifact import Calibration, Manifest, ScoreScaling, Thresholds, load_bundle, save_bundle
from creditops.scoring import (
    Decision,
    RequestError,
    audit_records,
    coerce_features,
    coerce_matrix,
    new_prediction_ids,
    predict_from_contribs,
    score_frame,
)

FEATURES = ["income", "utilisation", "delinquencies", "age"]
RANGES = {
    "income": (0.0, None),
    "utilisation": (0.0, 2.0),
    "delinquencies": (0.0, 50.0),
    "age": (18.0, 120.0),
}


def make_tiny_bundle(directory: Path, n: int = 400, rounds: int = 20, depth: int = 3):
    """Train a small real booster on a synthetic frame and save/load it as a bundle."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "income": rng.uniform(10_000, 150_000, n),
            "utilisation": rng.uniform(0, 1.5, n),
            "delinquencies": rng.integers(0, 6, n).astype(float),
            "age": rng.uniform(18, 80, n),
        }
    ).astype(np.float32)
    logit = -1.5 + 2.0 * X.utilisation + 0.6 * X.delinquencies - X.income / 60_000
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    booster = xgb.train(
        {"max_depth": depth, "eta": 0.3, "objective": "binary:logistic", "nthread": 1},
        xgb.DMatrix(X, label=y, feature_names=FEATURES),
        num_boost_round=rounds,
    )
    manifest = Manifest(
        model_name="tiny",
        feature_service="credit_scoring_v1",
        features=FEATURES,
        dtypes={f: "float" for f in FEATURES},
        directions={"income": -1, "utilisation": 1, "delinquencies": 1, "age": 0},
        reasons={
            "income": "Income too low",
            "utilisation": "Credit utilisation too high",
            "delinquencies": "Recent delinquencies",
            "age": "Age of applicant",
        },
        calibration=Calibration(x=[0.0, 0.3, 1.0], y=[0.0, 0.25, 1.0]),
        score_scaling=ScoreScaling(),
        thresholds=Thresholds(approve_below_pd=0.2, decline_at_or_above_pd=0.5),
        target="defaulted",
        params={"model_version": "7"},
    )
    save_bundle(directory, booster, manifest, X.head(100))
    return load_bundle(directory), X


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle"))


def good_record(**over):
    rec = {"income": 50_000, "utilisation": 0.4, "delinquencies": 1, "age": 40.5}
    rec.update(over)
    return rec


def test_coerce_returns_float32_in_manifest_order():
    rec = dict(reversed(list(good_record().items())))
    X = coerce_features([rec, good_record(age=30)], FEATURES, RANGES)
    assert list(X.columns) == FEATURES
    assert all(X.dtypes == np.float32)
    assert X.shape == (2, 4) and X.loc[1, "age"] == 30


@pytest.mark.parametrize(
    ("record", "field", "words"),
    [
        ({"income": 1.0, "age": 30}, "utilisation, delinquencies", "missing"),
        (good_record(colour=1), "colour", "unknown"),
        (good_record(income="50000"), "income", "number"),
        (good_record(age=True), "age", "number"),
        (good_record(utilisation=None), "utilisation", "null"),
        (good_record(income=float("nan")), "income", "finite"),
        (good_record(income=float("inf")), "income", "finite"),
        (good_record(utilisation=2.5), "utilisation", "range"),
        (good_record(age=17), "age", "range"),
    ],
)
def test_coerce_rejects_bad_records_naming_field_and_row(record, field, words):
    with pytest.raises(RequestError) as err:
        coerce_features([good_record(), record], FEATURES, RANGES)
    assert err.value.field == field
    assert err.value.row == 1
    assert words in str(err.value) and "row 1" in str(err.value)


def test_coerce_rejects_non_list():
    with pytest.raises(RequestError):
        coerce_features(good_record(), FEATURES, RANGES)
    with pytest.raises(RequestError):
        coerce_features([], FEATURES, RANGES)


def test_score_frame_matches_bundle(tiny):
    bundle, X = tiny
    decisions = score_frame(bundle, X.head(50), top_k=2)
    assert len(decisions) == 50 and all(isinstance(d, Decision) for d in decisions)
    pds = np.array([d.pd for d in decisions])
    np.testing.assert_allclose(pds, bundle.predict_pd(X.head(50)), atol=1e-5)
    np.testing.assert_allclose([d.score for d in decisions], bundle.score_points(pds))
    assert [d.decision for d in decisions] == list(bundle.decide(pds))
    assert {d.model_version for d in decisions} == {"tiny@7"}
    assert len({d.prediction_id for d in decisions}) == 50
    for d in decisions:
        assert len(d.reasons) <= 2
        assert all(r.contribution > 0 for r in d.reasons)
        assert d.to_dict()["decision"] == d.decision


def test_audit_records_round_trip(tiny, tmp_path):
    from creditops.governance.audit import AuditLog

    bundle, X = tiny
    decisions = score_frame(bundle, X.head(5))
    log = AuditLog.open(f"sqlite:///{tmp_path}/a.db")
    log.append(audit_records(bundle, X.head(5), decisions, caller_id="api"))
    assert log.verify().ok
    served = log.read_inputs(limit=None)
    assert served["prediction_id"].tolist() == [d.prediction_id for d in decisions]
    np.testing.assert_array_equal(served[FEATURES].to_numpy(np.float32), X.head(5).to_numpy())


def test_predict_from_contribs_equals_predict_pd(tiny):
    bundle, X = tiny
    contribs = bundle.contributions(X).to_numpy()
    np.testing.assert_allclose(predict_from_contribs(bundle, contribs), bundle.predict_pd(X), atol=1e-5)


def test_prediction_ids_sortable_and_unique():
    ids = new_prediction_ids(1000) + new_prediction_ids(10)
    assert len(set(ids)) == 1010
    assert ids == sorted(ids)
    assert all(len(i) == 32 and i[12] == "7" for i in ids)


def test_single_row_is_fast(tiny):
    bundle, X = tiny
    x = coerce_features([good_record()], FEATURES, RANGES)
    score_frame(bundle, x)
    t0 = time.perf_counter()
    for _ in range(200):
        score_frame(bundle, coerce_matrix([good_record()], FEATURES, RANGES))
    per_call = (time.perf_counter() - t0) / 200
    assert per_call < 0.005  # generous for a shared 2-core box; typical ~0.1 ms
