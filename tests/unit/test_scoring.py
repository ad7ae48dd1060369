"""The decision core (creditops.serving): contract validation + encoding, decide, reasons, audit records.

Runs on a tiny real bundle whose contract has numeric features and one categorical (``purpose``), embedded
in the manifest the way training writes it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from creditops.artifact import Calibration, Manifest, ScoreScaling, Thresholds, load_bundle, save_bundle
from creditops.features.contract import FLOAT32_MAX, FeatureContract
from creditops.governance.audit import AuditLog
from creditops.serving import (
    RequestError,
    audit_records,
    decide,
    encoder_for,
    model_version_of,
    new_prediction_ids,
)

NUMERIC = ["income", "utilisation", "delinquencies", "age"]
PURPOSES = ["car", "education", "other"]
ONE_HOT = [f"purpose__{p}" for p in PURPOSES]
FEATURES = [*NUMERIC, *ONE_HOT]
FIELDS = [*NUMERIC, "purpose"]
RANGES = {
    "income": (0.0, None),
    "utilisation": (0.0, 2.0),
    "delinquencies": (0.0, 50.0),
    "age": (18.0, 120.0),
}
REASONS = {
    "income": "Income too low",
    "utilisation": "Credit utilisation too high",
    "delinquencies": "Recent delinquencies",
    "age": "Age of applicant",
    **{f"purpose__{p}": f"Purpose of the loan: {p}" for p in PURPOSES},
}


def tiny_contract() -> FeatureContract:
    return FeatureContract(
        kind="spec",
        name="tiny",
        service="tiny_v1",
        entity="tiny_record",
        join_key="applicant_id",
        tables=["tiny"],
        features=FEATURES,
        dtypes={**{f: "float" for f in NUMERIC}, **{f: "int" for f in ONE_HOT}},
        directions={
            "income": -1,
            "utilisation": 1,
            "delinquencies": 1,
            "age": 0,
            **dict.fromkeys(ONE_HOT, 0),
        },
        reasons=REASONS,
        target="defaulted",
        encodings={"purpose": {p: f"purpose__{p}" for p in PURPOSES}},
        valid_ranges=RANGES,
    )


def raw_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """Raw applications as a user has them (purpose as a category value)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.uniform(10_000, 150_000, n),
            "utilisation": rng.uniform(0, 1.5, n),
            "delinquencies": rng.integers(0, 6, n).astype(float),
            "age": rng.uniform(18, 80, n),
            "purpose": rng.choice(PURPOSES, n),
        }
    )


def make_tiny_bundle(directory: Path, n: int = 600, rounds: int = 20, depth: int = 3):
    """Train a small real booster (car raises risk, education lowers it) and save/load it as a bundle.

    Returns the bundle and the model-column frame it was trained on (float32, manifest order).
    """
    raw = raw_frame(n)
    X = pd.DataFrame({f: raw[f] for f in NUMERIC})
    for p in PURPOSES:
        X[f"purpose__{p}"] = (raw["purpose"] == p).astype(float)
    X = X.astype(np.float32)
    logit = (
        -1.5 + 2.0 * X.utilisation + 0.6 * X.delinquencies - X.income / 60_000
        + 1.5 * X.purpose__car - 1.5 * X.purpose__education
    )  # fmt: skip
    rng = np.random.default_rng(1)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    booster = xgb.train(
        {"max_depth": depth, "eta": 0.3, "objective": "binary:logistic", "nthread": 1},
        xgb.DMatrix(X, label=y, feature_names=FEATURES),
        num_boost_round=rounds,
    )
    contract = tiny_contract()
    manifest = Manifest(
        model_name="tiny",
        feature_service=contract.service,
        features=FEATURES,
        dtypes=dict(contract.dtypes),
        directions=dict(contract.directions),
        reasons=REASONS,
        calibration=Calibration(x=[0.0, 0.3, 1.0], y=[0.0, 0.25, 1.0]),
        score_scaling=ScoreScaling(),
        thresholds=Thresholds(approve_below_pd=0.2, decline_at_or_above_pd=0.5),
        target="defaulted",
        params={"model_version": "7"},
        valid_ranges=RANGES,
    )
    save_bundle(directory, booster, manifest, X.head(100), contract=contract)
    return load_bundle(directory), X


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle"))


def good_record(**over):
    rec = {"income": 50_000, "utilisation": 0.4, "delinquencies": 1, "age": 40.5, "purpose": "car"}
    rec.update(over)
    return rec


# ------------------------------------------------------------------------------------------------ encoding
def test_raw_record_is_encoded_by_the_contract(tiny):
    bundle, _ = tiny
    enc = encoder_for(bundle)
    assert enc.fields == FIELDS
    rec = dict(reversed(list(good_record(purpose="education").items())))
    M = enc.encode_records([rec, good_record(age=30, income=None, purpose=None)])
    assert M.dtype == np.float32 and M.shape == (2, len(FEATURES))
    row = dict(zip(FEATURES, M[0].tolist(), strict=True))
    assert row["purpose__education"] == 1 and row["purpose__car"] == 0 and row["purpose__other"] == 0
    # null is "missing" on every path (the model routes it), an absent category is all zeros as at training
    assert np.isnan(M[1, 0]) and M[1, 3] == 30 and M[1, 4:].tolist() == [0, 0, 0]


BAD_RECORDS = [
    ({"income": 1.0, "age": 30, "purpose": "car"}, "utilisation, delinquencies", "missing"),
    (good_record(colour=1), "colour", "unknown field"),
    (good_record(income="50000"), "income", "number"),
    (good_record(age=True), "age", "number"),
    (good_record(purpose="boat"), "purpose", "allowed: 'car', 'education', 'other'"),
    (good_record(purpose=True), "purpose", "unknown category"),
    (good_record(income=float("inf")), "income", "range"),
    (good_record(income=1e39), "income", "range"),  # finite, but beyond float32: never becomes inf
    (good_record(utilisation=2.5), "utilisation", "range"),
    (good_record(age=17), "age", "range"),
]


@pytest.mark.parametrize(("record", "field", "words"), BAD_RECORDS)
def test_bad_records_are_refused_naming_field_and_row(tiny, record, field, words):
    with pytest.raises(RequestError) as err:
        encoder_for(tiny[0]).encode_records([good_record(), record])
    assert err.value.field == field
    assert err.value.row == 1
    assert words in str(err.value) and "row 1" in str(err.value)


def test_every_feature_has_a_finite_upper_bound(tiny):
    enc = encoder_for(tiny[0])
    assert np.isfinite(enc.high).all() and enc.high.max() <= FLOAT32_MAX
    assert enc.contract.bounds("income") == (0.0, FLOAT32_MAX)
    assert enc.contract.bounds("purpose__car") == (0.0, 1.0)


def test_frame_and_records_apply_the_same_policy(tiny):
    """Batch (columnar) and requests (row-wise) accept and refuse exactly the same rows."""
    enc = encoder_for(tiny[0])
    rows = [good_record(), good_record(income=None, purpose=None)]
    rows += [r for r, _, _ in BAD_RECORDS if set(r) == set(FIELDS) and not isinstance(r.get("age"), bool)]
    frame = pd.DataFrame(rows, columns=FIELDS)
    M, bad, reasons = enc.encode_frame(frame)
    for i, rec in enumerate(rows):
        try:
            ok = enc.encode_records([rec])
            refused = False
        except RequestError:
            refused = True
        assert bad[i] == refused, (rec, reasons)
        if not refused:
            np.testing.assert_array_equal(M[i], ok[0])
    assert len(reasons) == int(bad.sum()) >= 5
    assert any("purpose: unknown category" in r for r in reasons)


def test_frame_of_model_columns_is_accepted(tiny):
    bundle, X = tiny
    M, bad, _ = encoder_for(bundle).encode_frame(X.head(10))
    assert not bad.any()
    np.testing.assert_array_equal(M, X.head(10).to_numpy(np.float32))


def test_rows_read_by_id_get_the_same_range_check(tiny):
    enc = encoder_for(tiny[0])
    row = enc.encode_records([good_record()]).astype(np.float64)
    row[0, 1] = 9.0
    with pytest.raises(RequestError, match="utilisation=9 outside valid range") as err:
        enc.check_matrix(row)
    assert err.value.field == "utilisation"
    row[0, 1] = np.nan  # a missing value read from the store is scored, as a raw null is
    assert np.isnan(enc.check_matrix(row)[0, 1])


def test_unversioned_bundles_written_in_the_same_second_get_distinct_labels(tiny, tmp_path):
    bundle, X = tiny
    stamp = bundle.manifest.created_at
    unversioned = bundle.manifest.model_copy(update={"params": {}, "created_at": stamp})
    labels = []
    for name, rounds in (("a", 20), ("b", 21), ("a-again", 20)):
        booster = xgb.train(
            {"max_depth": 3, "eta": 0.3, "objective": "binary:logistic", "nthread": 1, "seed": 0},
            xgb.DMatrix(X, label=(X.utilisation > 0.5).astype(int), feature_names=FEATURES),
            num_boost_round=rounds,
        )
        save_bundle(tmp_path / name, booster, unversioned, X.head(100), contract=tiny_contract())
        labels.append(model_version_of(load_bundle(tmp_path / name)))
    assert labels[0] != labels[1], "two different models stamped in the same second share a label"
    assert labels[0] == labels[2], "the same model file must always get the same label"
    assert labels[0].startswith(f"tiny@{pd.Timestamp(stamp):%Y%m%dT%H%M%SZ}-")


# ------------------------------------------------------------------------------------------------ decisions
def test_decide_matches_the_bundle(tiny):
    bundle, X = tiny
    decisions = decide(bundle, X.head(50).to_numpy(), top_k=2)
    assert len(decisions) == 50
    np.testing.assert_allclose(decisions.pd, bundle.predict_pd(X.head(50)), atol=1e-5)
    np.testing.assert_allclose(decisions.score, bundle.score_points(decisions.pd))
    assert decisions.decision.tolist() == list(bundle.decide(decisions.pd))
    assert decisions.model_version == "tiny@7"
    assert len(set(decisions.prediction_ids)) == 50
    margin = bundle.booster.predict(xgb.DMatrix(X.head(50)), output_margin=True)
    np.testing.assert_allclose(decisions.margin, margin, atol=1e-4)
    answers = decisions.to_dicts()
    assert answers[0]["decision"] == decisions.decision[0] and len(answers[0]["reasons"]) <= 2


def test_decide_takes_the_users_raw_frame(tiny):
    bundle, X = tiny
    raw = raw_frame(600).head(30)
    from_raw = decide(bundle, raw)
    np.testing.assert_allclose(from_raw.pd, bundle.predict_pd(X.head(30)), atol=1e-6)
    with pytest.raises(RequestError, match="purpose: unknown category"):
        decide(bundle, raw.assign(purpose=["boat"] * 30))


def test_reasons_are_adverse_per_raw_field_never_an_unheld_one_hot_column(tiny):
    bundle, X = tiny
    decisions = decide(bundle, X.to_numpy(), top_k=len(FIELDS))
    c = decisions.contributions[:, : len(FEATURES)]
    M = decisions.matrix
    one_hot = slice(len(NUMERIC), len(FEATURES))
    # The input is built to fail the old per-column rule: unheld one-hot columns with positive SHAP exist.
    assert ((M[:, one_hot] == 0) & (c[:, one_hot] > 0)).any()
    purpose_total = c[:, one_hot].sum(axis=1)
    for i, reasons in enumerate(decisions.reasons()):
        assert all(r.contribution > 0 for r in reasons)  # only adverse contributions
        names = [r.feature for r in reasons]
        assert not set(names) & set(ONE_HOT) and set(names) <= set(FIELDS)
        adverse = {f for j, f in enumerate(NUMERIC) if c[i, j] > 0} | (
            {"purpose"} if purpose_total[i] > 0 else set()
        )
        assert set(names) == adverse
        for r in reasons:
            if r.feature == "purpose":
                held = PURPOSES[int(np.argmax(M[i, one_hot]))]
                assert r.value == held and r.reason == f"Purpose of the loan: {held}"
                assert r.contribution == pytest.approx(float(purpose_total[i]), abs=1e-5)
            else:
                assert r.reason == REASONS[r.feature]
    texts = decisions.reason_texts()
    assert texts[0][0] == (decisions.reasons()[0][0].reason if decisions.reasons()[0] else None)


def test_row_without_adverse_contribution_has_no_reasons():
    from creditops.serving import top_reasons

    c = np.array([[0.5, -1.0, 2.0, 0.1], [-1.0, -2.0, -0.5, -0.1]], dtype=np.float32)
    idx, val = top_reasons(c, 3)
    assert idx.tolist() == [[2, 0, 3], [-1, -1, -1]]
    assert val[0].tolist() == pytest.approx([2.0, 0.5, 0.1])


# ------------------------------------------------------------------------------------------------ audit
def test_audit_records_built_once_for_every_caller(tiny, tmp_path):
    bundle, _ = tiny
    enc = encoder_for(bundle)
    sent = [good_record(), good_record(income=float("nan"), purpose="other")]
    decisions = decide(bundle, enc.encode_records(sent))
    log = AuditLog.open(f"sqlite:///{tmp_path}/a.db")
    records = audit_records(decisions, sent, caller_id="api")
    assert (
        records[1].inputs["income"] is None and records[1].inputs["purpose"] == "other"
    )  # as sent, JSON-safe
    batch = audit_records(decisions, caller_id="batch")  # no inputs given: the scored model inputs
    log.append(records + batch)
    assert log.verify().ok and log.count() == 4
    out = json.loads(records[0].output)
    assert out == {"decision": decisions.decision[0], "pd": decisions.pd[0], "score": decisions.score[0]}
    explanation = json.loads(records[0].explanation)
    assert explanation == [r.to_dict() for r in decisions.reasons()[0]]
    served = log.read_inputs(limit=None)
    assert set(served["prediction_id"]) == set(decisions.prediction_ids)


def test_prediction_ids_sortable_and_unique():
    ids = new_prediction_ids(1000) + new_prediction_ids(10)
    assert len(set(ids)) == 1010
    assert ids == sorted(ids)
    assert all(len(i) == 32 and i[12] == "7" for i in ids)


def test_single_row_scores_and_decides_exactly_like_the_bundle(tiny):
    bundle, X = tiny
    for i in range(40):
        one = decide(bundle, X.iloc[[i]].to_numpy())
        assert one.score[0] == pytest.approx(float(bundle.score_points(one.pd[0])), rel=1e-12)
        assert one.decision[0] == bundle.decide(one.pd[0])
