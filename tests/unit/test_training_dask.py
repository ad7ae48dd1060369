"""Distributed training: xgboost.dask on a local 2-worker cluster gives the same kind of model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from creditops.training.fit import fit_model
from creditops.training.split import split_frame

FEATURES = ["x0", "x1", "x2", "x3"]
DIRECTIONS = {"x0": 1, "x1": -1}
PARAMS = {"max_depth": 3, "learning_rate": 0.15, "n_estimators": 60}


def test_dask_training_matches_single_process():
    rng = np.random.default_rng(2)
    n = 2000
    x = rng.normal(size=(n, 4))
    df = pd.DataFrame(x, columns=FEATURES)
    df["defaulted"] = (
        rng.random(n) < 1 / (1 + np.exp(-(-1 + 1.3 * x[:, 0] - x[:, 1] + 0.4 * x[:, 2])))
    ).astype(int)
    split = split_frame(df, "random", seed=1)
    kw = dict(cv_folds=2, seed=1, early_stopping_rounds=10)
    local = fit_model(split, FEATURES, DIRECTIONS, "defaulted", PARAMS, **kw)
    dist = fit_model(
        split, FEATURES, DIRECTIONS, "defaulted", PARAMS, distributed="dask", dask_workers=2, **kw
    )
    assert type(dist.booster) is xgb.Booster and dist.booster.feature_names == FEATURES
    assert dist.metrics["test_auc"] == pytest.approx(local.metrics["test_auc"], abs=0.03)
    assert dist.cv.mean == pytest.approx(local.cv.mean, abs=0.03)
    assert dist.metrics["test_auc"] > 0.75
    # Monotone constraints hold for the cluster-trained booster as well.
    grid = np.zeros((21, 4), np.float32)
    grid[:, 0] = np.linspace(-3, 3, 21)
    assert np.all(np.diff(dist.booster.inplace_predict(grid)) >= -1e-7)
