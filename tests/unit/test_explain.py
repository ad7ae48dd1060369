"""Exact TreeSHAP (tabulated fast path) against xgboost's own pred_contribs, and reason codes."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb
from test_scoring import FEATURES, make_tiny_bundle

from creditops.governance.explain import TreeShap, contributions, reason_codes, top_reasons


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle"), rounds=30, depth=4)


def test_contributions_equal_xgboost_and_sum_to_margin(tiny):
    bundle, X = tiny
    ours = contributions(bundle, X)
    assert list(ours.columns) == [*FEATURES, "bias"]
    ref = bundle.contributions(X)
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), atol=1e-5)
    margin = bundle.booster.predict(xgb.DMatrix(X), output_margin=True)
    np.testing.assert_allclose(ours.sum(axis=1), margin, atol=1e-4)


@pytest.mark.parametrize("depth", [1, 2, 6])
def test_fast_path_exact_with_missing_values_and_repeated_features(depth):
    rng = np.random.default_rng(depth)
    X = rng.normal(size=(300, 3)).astype(np.float32)
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 1]) > 0).astype(int)
    booster = xgb.train(
        {"max_depth": depth, "objective": "binary:logistic", "nthread": 1}, xgb.DMatrix(X, label=y), 10
    )
    explainer = TreeShap(booster, ["a", "b", "c"], X[:32])
    assert explainer.fast, explainer.fallback_reason
    ref = booster.predict(xgb.DMatrix(X), pred_contribs=True)
    np.testing.assert_allclose(explainer.shap_values(X, n_threads=2), ref, atol=1e-5)


def test_top_reasons_only_positive_and_sorted():
    c = np.array([[0.5, -1.0, 2.0, 0.1], [-1.0, -2.0, -0.5, -0.1]], dtype=np.float32)
    idx, val = top_reasons(c, 3)
    assert idx.tolist() == [[2, 0, 3], [-1, -1, -1]]
    assert val[0].tolist() == pytest.approx([2.0, 0.5, 0.1])


def test_reason_codes_use_manifest_text(tiny):
    bundle, X = tiny
    codes = reason_codes(bundle, X.head(20), top_k=2)
    contribs = contributions(bundle, X.head(20))
    for row, (_, c) in zip(codes, contribs.iterrows(), strict=True):
        positive = c[FEATURES][c[FEATURES] > 0].sort_values(ascending=False)
        assert [r.feature for r in row] == list(positive.index[:2])
        for r in row:
            assert r.reason == bundle.manifest.reasons[r.feature]
            assert r.contribution == pytest.approx(float(c[r.feature]), abs=1e-6)
