"""Baselines every training run is measured against, on the same split as the tuned model.

Two models a validator would fit first: a logistic regression (median-imputed, standardised inputs; the
feature contract has already one-hot encoded the categoricals) and XGBoost with its default parameters.
Each is fitted on ``split.train``, scored on ``split.test`` (AUC, Gini, KS, Brier) and cross-validated on
train + valid with the same stratified folds as the tuned model's CV, so a tuned model that does not beat
them is visible (and the gates can refuse it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from creditops.training._common import default_nthread, labels, matrix
from creditops.training.fit import ks_statistic
from creditops.training.split import Split

LOGISTIC_REGRESSION = "logistic_regression"
XGBOOST_DEFAULT = "xgboost_default"
BASELINES = (LOGISTIC_REGRESSION, XGBOOST_DEFAULT)


def logistic_regression() -> Pipeline:
    """Median imputation (with missing-value indicators), standardisation, L2 logistic regression."""
    return make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True),
        StandardScaler(),
        LogisticRegression(max_iter=2000),
    )


def xgboost_default(seed: int = 7, nthread: int | None = None) -> xgb.XGBClassifier:
    """XGBoost with its library defaults (only the seed and the thread count set)."""
    return xgb.XGBClassifier(random_state=seed, n_jobs=nthread or default_nthread())


def _factories(seed: int, nthread: int | None) -> dict[str, Callable[[], Any]]:
    return {
        LOGISTIC_REGRESSION: logistic_regression,
        XGBOOST_DEFAULT: lambda: xgboost_default(seed, nthread),
    }


def score_metrics(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """AUC-ROC, Gini (2 AUC - 1), KS and Brier score of a probability ``score`` against 0/1 ``y``."""
    y = np.asarray(y)
    score = np.asarray(score, dtype=np.float64)
    auc = float(roc_auc_score(y, score)) if len(np.unique(y)) == 2 else float("nan")
    return {
        "auc": auc,
        "gini": 2.0 * auc - 1.0,
        "ks": ks_statistic(y, score),
        "brier": float(brier_score_loss(y, score)),
    }


def evaluate_baselines(
    split: Split,
    features: Sequence[str],
    target: str,
    cv_folds: int = 5,
    seed: int = 7,
    nthread: int | None = None,
) -> dict[str, dict[str, float]]:
    """Fit each baseline on train, score it on test, cross-validate it on train + valid.

    Args:
        split: the run's train / valid / test frames (``test`` must be non-empty).
        features: ordered, numeric model inputs (the contract's encoded columns).
        target: 0/1 label column.
        cv_folds: folds of the cross-validation (the tuned model's folds: same seed, same rows).
        seed: fold and model seed.
        nthread: xgboost threads.

    Returns:
        name -> ``{"auc", "gini", "ks", "brier", "cv_auc_mean", "cv_auc_sd"}``.
    """
    if split.test is None or len(split.test) == 0:
        raise ValueError("baselines are scored on the test frame; the split has none")
    features = list(features)
    x_train, y_train = matrix(split.train, features), labels(split.train, target)
    x_test, y_test = matrix(split.test, features), labels(split.test, target)
    pooled = pd.concat([split.train, split.valid])
    x_pool, y_pool = matrix(pooled, features), labels(pooled, target)
    folds = list(StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=seed).split(x_pool, y_pool))
    out: dict[str, dict[str, float]] = {}
    for name, make in _factories(seed, nthread).items():
        model = make().fit(x_train, y_train)
        metrics = score_metrics(y_test, model.predict_proba(x_test)[:, 1])
        aucs = []
        for train_idx, held_idx in folds:
            fold_model = make().fit(x_pool[train_idx], y_pool[train_idx])
            aucs.append(roc_auc_score(y_pool[held_idx], fold_model.predict_proba(x_pool[held_idx])[:, 1]))
        metrics |= {"cv_auc_mean": float(np.mean(aucs)), "cv_auc_sd": float(np.std(aucs))}
        out[name] = metrics
    return out


def comparison_table(
    tuned: dict[str, float], baselines: dict[str, dict[str, float]], tuned_name: str = "tuned_xgboost"
) -> pd.DataFrame:
    """The tuned model and the baselines side by side: one row per model, AUC, Gini, KS, Brier, CV mean/sd."""
    columns = ["auc", "gini", "ks", "brier", "cv_auc_mean", "cv_auc_sd"]
    rows = {tuned_name: tuned, **baselines}
    frame = pd.DataFrame(
        [[float(m.get(c, float("nan"))) for c in columns] for m in rows.values()],
        index=pd.Index(list(rows), name="model"),
        columns=columns,
    )
    return frame
