"""Helpers shared by tune, fit and the distributed trainer: input checks, matrices, booster parameters."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from creditops.errors import CreditOpsError, DataError

#: Attributes that must never be model inputs (they are carried beside the features for fairness checks).
DEFAULT_PROTECTED: tuple[str, ...] = ("sex", "age_band", "race", "ethnicity", "religion", "marital_status")

#: Keys of a parameter dict that are not xgboost booster parameters.
_NON_BOOSTER_KEYS = frozenset({"n_estimators", "n_trees", "early_stopping_rounds", "best_iteration"})


class ProtectedAttributeError(CreditOpsError, ValueError):
    """A protected attribute (or the target) was passed as a model input."""


def check_inputs(
    df: pd.DataFrame, features: Sequence[str], target: str, protected: Sequence[str] = DEFAULT_PROTECTED
) -> None:
    """Refuse protected attributes or the target as inputs; require the columns and a 0/1 target.

    Raises:
        ProtectedAttributeError: a protected attribute or the target is listed in ``features``.
        DataError: a column is missing, a feature is not numeric or the target is not binary 0/1.
    """
    banned = sorted(set(features) & set(protected))
    if banned:
        raise ProtectedAttributeError(
            f"protected attribute(s) {banned} must never be model inputs; remove them from the feature list"
        )
    if target in features:
        raise ProtectedAttributeError(f"the target {target!r} is listed as a feature (label leakage)")
    if len(set(features)) != len(features):
        dupes = sorted({f for f in features if list(features).count(f) > 1})
        raise DataError(f"duplicate feature names: {dupes}")
    missing = [c for c in [*features, target] if c not in df.columns]
    if missing:
        raise DataError(f"training frame lacks column(s) {missing}")
    not_numeric = [f for f in features if not pd.api.types.is_numeric_dtype(df[f])]
    if not_numeric:
        raise DataError(f"feature(s) {not_numeric} are not numeric; encode categoricals before training")
    values = set(pd.unique(df[target].dropna()))
    if df[target].isna().any() or not values <= {0, 1}:
        raise DataError(f"target {target!r} must be 0/1 without missing values, found {sorted(values)[:5]}")


def default_nthread() -> int:
    """Threads per booster: at most 2, the machine's share (several engineers share 2 cores)."""
    return max(1, min(2, os.cpu_count() or 1))


def matrix(df: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """The features in declared order as a C-contiguous float32 array (what xgboost consumes natively)."""
    return np.ascontiguousarray(df.loc[:, list(features)].to_numpy(dtype=np.float32, na_value=np.nan))


def labels(df: pd.DataFrame, target: str) -> np.ndarray:
    """The target as float32 0/1."""
    return df[target].to_numpy(dtype=np.float32)


def dmatrix(
    df: pd.DataFrame, features: Sequence[str], target: str | None = None, nthread: int = 1
) -> xgb.DMatrix:
    """A DMatrix with feature names (so the saved booster records them)."""
    label = labels(df, target) if target is not None else None
    return xgb.DMatrix(matrix(df, features), label=label, feature_names=list(features), nthread=nthread)


def monotone_constraints(features: Sequence[str], directions: Mapping[str, int]) -> str:
    """Xgboost's tuple string, in feature order: +1 = higher value -> higher PD, -1 = lower PD, 0 = free."""
    values = []
    for name in features:
        d = int(directions.get(name, 0))
        if d not in (-1, 0, 1):
            raise ValueError(f"direction of {name!r} must be -1, 0 or 1, got {d}")
        values.append(str(d))
    return "(" + ",".join(values) + ")"


def booster_params(
    params: Mapping[str, Any],
    features: Sequence[str],
    directions: Mapping[str, int] | None,
    seed: int,
    nthread: int | None = None,
) -> dict[str, Any]:
    """Full xgboost.train parameters: the tuned ones + objective, metric, constraints, seed and threads."""
    out: dict[str, Any] = {
        "objective": "binary:logistic",
        "eval_metric": "auc",
        "tree_method": "hist",
        "seed": seed,
        "nthread": nthread or default_nthread(),
        "verbosity": 0,
    }
    out.update({k: v for k, v in params.items() if k not in _NON_BOOSTER_KEYS})
    if directions:
        out["monotone_constraints"] = monotone_constraints(features, directions)
    return out


def predict_raw(booster: xgb.Booster, df: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """Uncalibrated probability of default (``inplace_predict`` on float32, no DMatrix)."""
    return np.asarray(
        booster.inplace_predict(matrix(df, features), validate_features=False), dtype=np.float64
    )
