"""The TreeSHAP engine (creditops.explain): tabulated fast path against xgboost's own pred_contribs."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb
from test_scoring import FEATURES, make_tiny_bundle

from creditops.explain import TreeShap, contributions, contributions_array


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


@pytest.mark.parametrize("depth", [1, 2, 6, 8])
def test_fast_path_exact_with_missing_values_and_repeated_features(depth):
    # depth 8: trees with more than 64 splits, whose go-left bits span several 64-bit words
    rng = np.random.default_rng(depth)
    X = rng.normal(size=(300 if depth < 8 else 6000, 3)).astype(np.float32)
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 1]) > 0).astype(int)
    if depth == 8:  # noisy labels and no leaf-size floor: bushy trees
        y = rng.integers(0, 2, len(X))
    params = {"max_depth": depth, "objective": "binary:logistic", "nthread": 1, "min_child_weight": 0}
    booster = xgb.train(params, xgb.DMatrix(X, label=y), 10)
    explainer = TreeShap(booster, ["a", "b", "c"], X[:32])
    assert explainer.fast, explainer.fallback_reason
    if depth == 8:
        splits = [t.count('"split"') for t in booster.get_dump(dump_format="json")]
        assert max(splits) > 64, splits
    ref = booster.predict(xgb.DMatrix(X), pred_contribs=True)
    # both kernels: column-wise on a batch (threads; one thread: several blocks at depth 8), row-wise on a row
    np.testing.assert_allclose(explainer.shap_values(X, n_threads=2), ref, atol=1e-5)
    np.testing.assert_allclose(explainer.shap_values(X, n_threads=1), ref, atol=1e-5)
    single = np.concatenate([explainer.shap_values(X[i : i + 1]) for i in range(40)])
    np.testing.assert_allclose(single, ref[:40], atol=1e-5)


def test_engine_knows_nothing_of_reasons():
    import creditops.explain.treeshap as engine

    assert not [name for name in dir(engine) if "reason" in name.lower()]


def test_contributions_array_of_a_frame_reorders_columns(tiny):
    bundle, X = tiny
    shuffled = X[list(reversed(FEATURES))].head(5)
    np.testing.assert_allclose(
        contributions_array(bundle, shuffled), bundle.contributions(X.head(5)), atol=1e-5
    )
