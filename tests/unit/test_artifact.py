"""creditops.artifact: bundle save/load round trip, validation errors, predictions, feature contract."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from creditops.artifact import (
    BUNDLE_FILES,
    Bundle,
    Calibration,
    Manifest,
    ScoreScaling,
    Thresholds,
    check_feature_contract,
    library_versions,
    load_bundle,
    save_bundle,
)
from creditops.errors import BundleError

FEATURES = ["income", "utilisation", "num_delinquencies"]


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 600
    df = pd.DataFrame(
        {
            "income": rng.lognormal(10, 0.5, n),
            "utilisation": rng.random(n),
            "num_delinquencies": rng.poisson(1, n),
        }
    )
    logit = -1 - 0.00002 * df.income + 2 * df.utilisation + 0.5 * df.num_delinquencies
    df["defaulted"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    df["sex"] = rng.choice(["female", "male"], n)
    return df


@pytest.fixture(scope="module")
def booster(data) -> xgb.Booster:
    dm = xgb.DMatrix(data[FEATURES].to_numpy(np.float32), label=data.defaulted, feature_names=FEATURES)
    return xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1}, dm, num_boost_round=20)


def make_manifest(**overrides) -> Manifest:
    fields = dict(
        model_name="credit-pd",
        feature_service="credit_scoring_v1",
        features=FEATURES,
        dtypes={"income": "float", "utilisation": "float", "num_delinquencies": "int"},
        directions={"income": -1, "utilisation": 1, "num_delinquencies": 1},
        reasons={f: f"{f} too risky" for f in FEATURES},
        calibration=Calibration(x=[0.0, 0.2, 0.5, 1.0], y=[0.0, 0.1, 0.4, 0.9]),
        score_scaling=ScoreScaling(),
        thresholds=Thresholds(approve_below_pd=0.1, decline_at_or_above_pd=0.3),
        metrics={"test_auc": 0.8},
        data_version="abc123",
        target="defaulted",
        protected=["sex"],
    )
    return Manifest(**{**fields, **overrides})


@pytest.fixture()
def bundle_dir(tmp_path, booster, data):
    return save_bundle(tmp_path / "bundle", booster, make_manifest(), data[FEATURES].head(100))


def test_round_trip_writes_three_files_and_no_pickles(bundle_dir, booster, data):
    assert sorted(p.name for p in bundle_dir.iterdir()) == sorted(BUNDLE_FILES)
    assert json.loads((bundle_dir / "manifest.json").read_text())["features"] == FEATURES
    for path in bundle_dir.iterdir():
        assert not path.read_bytes().startswith(b"\x80"), f"{path.name} looks like a pickle"
    bundle = load_bundle(bundle_dir)
    assert isinstance(bundle, Bundle) and bundle.manifest == make_manifest().model_copy(
        update={
            "library_versions": bundle.manifest.library_versions,
            "created_at": bundle.manifest.created_at,
        }
    )
    assert {"xgboost", "numpy", "pandas", "scikit-learn", "creditops"} <= set(
        bundle.manifest.library_versions
    )
    assert bundle.manifest.library_versions == library_versions()
    raw = booster.inplace_predict(data[FEATURES].to_numpy(np.float32))
    np.testing.assert_allclose(bundle.predict_raw(data), raw, rtol=1e-6)
    np.testing.assert_allclose(
        bundle.predict_pd(data), np.interp(raw, [0, 0.2, 0.5, 1], [0, 0.1, 0.4, 0.9]), 1e-6
    )
    pd.testing.assert_frame_equal(bundle.reference, data[FEATURES].head(100).reset_index(drop=True))


def test_predict_pd_accepts_frame_array_and_record(bundle_dir, data):
    bundle = load_bundle(bundle_dir)
    row = data.iloc[[5]]
    expected = bundle.predict_pd(row)
    shuffled = row[["sex", "num_delinquencies", "income", "utilisation"]]  # extra column, other order
    np.testing.assert_allclose(bundle.predict_pd(shuffled), expected)
    np.testing.assert_allclose(bundle.predict_pd(row[FEATURES].to_numpy()[0]), expected, rtol=1e-6)
    np.testing.assert_allclose(bundle.predict_pd(row[FEATURES].iloc[0].to_dict()), expected, rtol=1e-6)
    with pytest.raises(BundleError, match="utilisation"):
        bundle.predict_pd(row.drop(columns="utilisation"))
    with pytest.raises(BundleError, match="3 feature columns"):
        bundle.predict_pd(np.zeros((1, 2)))


def test_score_points_and_decide(bundle_dir):
    bundle = load_bundle(bundle_dir)
    assert bundle.score_points(1 / 51) == pytest.approx(600.0)
    points = bundle.score_points(np.array([0.01, 0.1, 0.5]))
    assert points.shape == (3,) and np.all(np.diff(points) < 0)
    assert (
        bundle.decide(0.05) == "approve"
        and bundle.decide(0.1) == "review"
        and bundle.decide(0.3) == "decline"
    )
    assert bundle.decide(np.array([0.0, 0.2, 0.99])).tolist() == ["approve", "review", "decline"]


def test_contributions_sum_to_margin(bundle_dir, data):
    bundle = load_bundle(bundle_dir)
    X = data.iloc[10:15]
    contribs = bundle.contributions(X)
    assert list(contribs.columns) == [*FEATURES, "bias"] and list(contribs.index) == list(X.index)
    margin = bundle.booster.predict(
        xgb.DMatrix(X[FEATURES].to_numpy(np.float32), feature_names=FEATURES), output_margin=True
    )
    np.testing.assert_allclose(contribs.sum(axis=1), margin, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", BUNDLE_FILES)
def test_missing_file_is_named(bundle_dir, name):
    (bundle_dir / name).unlink()
    with pytest.raises(BundleError, match=name):
        load_bundle(bundle_dir)


def test_missing_directory(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nope")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: "{not json", "not valid JSON"),
        (lambda m: json.dumps({**m, "surprise": 1}), "surprise"),
        (lambda m: json.dumps({k: v for k, v in m.items() if k != "thresholds"}), "thresholds"),
        (lambda m: json.dumps({**m, "features": [*m["features"], "extra_one"]}), "model expects 3 features"),
        (lambda m: json.dumps({**m, "features": m["features"][::-1]}), "feature names differ"),
        (lambda m: json.dumps({**m, "calibration": {"x": [0, 1], "y": [1, 0]}}), "non-decreasing"),
    ],
)
def test_invalid_manifest_raises_clear_error(bundle_dir, mutate, message):
    path = bundle_dir / "manifest.json"
    path.write_text(mutate(json.loads(path.read_text())))
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle_dir)


def test_corrupt_model_raises(bundle_dir):
    (bundle_dir / "model.ubj").write_bytes(b"garbage")
    with pytest.raises(BundleError, match="model.ubj"):
        load_bundle(bundle_dir)


def test_save_refuses_mismatched_booster(tmp_path, booster, data):
    with pytest.raises(BundleError, match="3 features"):
        save_bundle(
            tmp_path / "b",
            booster,
            make_manifest(features=["a", "b"], dtypes={}, directions={}, reasons={}),
            data,
        )
    with pytest.raises(BundleError, match="reference"):
        save_bundle(tmp_path / "b", booster, make_manifest(), data[["income"]])


def test_manifest_forbids_unknown_fields_and_protected_inputs():
    with pytest.raises(ValueError, match="extra"):
        make_manifest(colour="red")
    with pytest.raises(ValueError, match="protected"):
        make_manifest(protected=["income"])
    with pytest.raises(ValueError, match="must not exceed"):
        Thresholds(approve_below_pd=0.5, decline_at_or_above_pd=0.2)


@pytest.mark.parametrize(
    ("expected", "service", "message"),
    [
        (FEATURES, "credit_scoring_v1", None),
        ([*FEATURES, "age"], "credit_scoring_v1", r"missing feature\(s\) \['age'\]"),
        (FEATURES[:2], "credit_scoring_v1", r"extra feature\(s\) \['num_delinquencies'\]"),
        (FEATURES[::-1], "credit_scoring_v1", "misordered.*'income' at position 0"),
        (FEATURES, "credit_scoring_v2", "credit_scoring_v1.*not 'credit_scoring_v2'"),
    ],
)
def test_check_feature_contract(expected, service, message):
    if message is None:
        check_feature_contract(make_manifest(), expected, service)
    else:
        with pytest.raises(BundleError, match=message):
            check_feature_contract(make_manifest(), expected, service)


# ------------------------------------------------------------------------------------ embedded contract
def spec_contract_for(features=FEATURES, service="credit_scoring_v1"):
    from creditops.features.contract import FeatureContract

    return FeatureContract(
        kind="spec",
        name="tiny",
        service=service,
        entity="tiny_record",
        join_key="applicant_id",
        tables=["tiny"],
        features=list(features),
        dtypes={"income": "float", "utilisation": "float", "num_delinquencies": "int"},
        directions={"income": -1, "utilisation": 1, "num_delinquencies": 1},
        reasons={f: f"{f} too risky" for f in FEATURES},
        target="defaulted",
        valid_ranges={"utilisation": (0.0, 1.0)},
    )


def test_contract_is_embedded_whole_and_read_back(tmp_path, booster, data):
    contract = spec_contract_for()
    out = save_bundle(tmp_path / "b", booster, make_manifest(), data[FEATURES].head(50), contract=contract)
    raw = json.loads((out / "manifest.json").read_text())
    assert raw["contract"]["join_key"] == "applicant_id" and raw["contract"]["valid_ranges"]["utilisation"]
    loaded = load_bundle(out)
    assert loaded.contract == contract


def test_contract_must_match_the_manifest(tmp_path, booster, data):
    wrong = spec_contract_for(service="other_v1")
    with pytest.raises(BundleError, match="contract"):
        save_bundle(tmp_path / "b", booster, make_manifest(), data[FEATURES].head(50), contract=wrong)


def test_old_bundle_without_contract_is_refused_with_a_clear_message(bundle_dir):
    # Written before contracts were embedded, and not the built-in service's features: its encoding is lost.
    with pytest.raises(BundleError, match="no feature contract in its manifest.*retrain"):
        _ = load_bundle(bundle_dir).contract


def test_old_builtin_bundle_derives_the_registry_contract():
    from creditops.features.contract import builtin_contract

    builtin = builtin_contract()
    manifest = make_manifest(
        features=builtin.features,
        dtypes=builtin.dtypes,
        directions=builtin.directions,
        reasons={"income": "Own text"},
    )
    derived = manifest.feature_contract()
    assert derived.features == builtin.features and derived.valid_ranges == builtin.valid_ranges
    assert derived.reasons["income"] == "Own text"  # the manifest's texts win
