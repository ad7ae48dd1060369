"""Group fairness of credit decisions, measured with fairlearn.

"Decline" is the positive prediction: a group with a higher selection rate is declined more often. Two
disparities gate a model, per protected attribute: the demographic parity difference (spread of decline rates
between groups) and the equal opportunity difference (spread of true-positive rates, i.e. of the share of real
defaulters that each group's decisions catch). A per-group :class:`fairlearn.metrics.MetricFrame` (selection
rate, TPR, FPR, AUC, count) goes into the model card.

Groups too small to estimate a rate are listed in the frame but left out of the disparity, because a group of
three applicants can swing a difference by 0.3 on its own; the card states which groups were left out.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    equal_opportunity_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import roc_auc_score

MISSING_GROUP = "(missing)"


@dataclass(frozen=True)
class FairnessResult:
    """Fairness of the decline decisions across the groups of one protected attribute.

    Attributes:
        attribute: the protected attribute (column name).
        demographic_parity_difference: max - min decline rate over the eligible groups.
        equal_opportunity_difference: max - min true-positive rate over the eligible groups.
        by_group: one row per group; columns selection_rate, tpr, fpr, auc, count, positives.
        excluded_groups: groups left out of the disparities (too few rows or too few defaulters).
    """

    attribute: str
    demographic_parity_difference: float
    equal_opportunity_difference: float
    by_group: pd.DataFrame
    excluded_groups: list[str] = field(default_factory=list)


def _safe_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """AUC, or NaN for a group holding a single class (AUC is undefined there)."""
    if len(np.unique(y_true)) < 2:
        return float("nan")
    return float(roc_auc_score(y_true, y_score))


def group_frame(
    y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray, groups: pd.Series | np.ndarray
) -> pd.DataFrame:
    """Per-group metrics of the decline decisions.

    Args:
        y_true: 1 = defaulted.
        y_pred: 1 = declined.
        y_score: predicted probability of default (for the per-group AUC).
        groups: group label of every row.

    Returns:
        DataFrame indexed by group with columns selection_rate, tpr, fpr, auc, count, positives.
    """
    with warnings.catch_warnings():
        # a group without defaulters (or non-defaulters) makes TPR/FPR 0/0: sklearn warns, we report NaN
        warnings.simplefilter("ignore")
        decisions = MetricFrame(
            metrics={
                "selection_rate": selection_rate,
                "tpr": true_positive_rate,
                "fpr": false_positive_rate,
                "count": count,
            },
            y_true=y_true,
            y_pred=y_pred,
            sensitive_features=groups,
        ).by_group
        auc = MetricFrame(
            metrics={"auc": _safe_auc}, y_true=y_true, y_pred=y_score, sensitive_features=groups
        )
    frame = decisions.join(auc.by_group)
    positives = pd.Series(y_true, index=np.asarray(groups)).groupby(level=0).sum()
    frame["positives"] = positives.reindex(frame.index).astype(int).to_numpy()
    frame["count"] = frame["count"].astype(int)
    no_pos = frame["positives"] == 0
    no_neg = frame["count"] == frame["positives"]
    frame.loc[no_pos, "tpr"] = np.nan
    frame.loc[no_neg, "fpr"] = np.nan
    return frame[["selection_rate", "tpr", "fpr", "auc", "count", "positives"]]


def _labels(values: pd.Series) -> pd.Series:
    """Group labels as strings, with missing values forming their own visible group."""
    return values.astype("object").where(values.notna(), MISSING_GROUP).astype(str)


def assess_fairness(
    y_true: np.ndarray | pd.Series,
    y_pred: np.ndarray | pd.Series,
    y_score: np.ndarray | pd.Series,
    sensitive: pd.DataFrame,
    attributes: list[str],
    min_group_size: int = 20,
    min_group_positives: int = 5,
) -> dict[str, FairnessResult]:
    """Measure decision fairness for every protected attribute.

    Args:
        y_true: 1 = defaulted.
        y_pred: 1 = declined (the positive prediction).
        y_score: predicted probability of default.
        sensitive: frame holding the protected attribute columns, aligned row by row with ``y_true``.
        attributes: the protected attributes to assess (each must be a column of ``sensitive``).
        min_group_size: groups with fewer rows are left out of the demographic parity difference.
        min_group_positives: groups with fewer defaulters are left out of the equal opportunity difference.

    Returns:
        attribute -> :class:`FairnessResult`.

    Raises:
        KeyError: a protected attribute is not a column of ``sensitive``.
    """
    y_true = np.asarray(y_true).astype(int)
    y_pred = np.asarray(y_pred).astype(int)
    y_score = np.asarray(y_score, dtype=float)
    results: dict[str, FairnessResult] = {}
    for attribute in attributes:
        if attribute not in sensitive.columns:
            raise KeyError(f"protected attribute {attribute!r} is not a column of the test frame")
        groups = _labels(sensitive[attribute].reset_index(drop=True))
        frame = group_frame(y_true, y_pred, y_score, groups)
        dp_groups = frame.index[frame["count"] >= min_group_size]
        eo_groups = frame.index[
            (frame["count"] >= min_group_size) & (frame["positives"] >= min_group_positives)
        ]
        excluded = sorted(set(frame.index) - set(eo_groups))
        dp_mask = groups.isin(dp_groups).to_numpy()
        eo_mask = groups.isin(eo_groups).to_numpy()
        dpd = (
            float(
                demographic_parity_difference(
                    y_true[dp_mask], y_pred[dp_mask], sensitive_features=groups[dp_mask]
                )
            )
            if len(dp_groups) >= 2
            else 0.0
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            eod = (
                float(
                    equal_opportunity_difference(
                        y_true[eo_mask], y_pred[eo_mask], sensitive_features=groups[eo_mask]
                    )
                )
                if len(eo_groups) >= 2
                else 0.0
            )
        results[attribute] = FairnessResult(attribute, dpd, eod, frame, excluded)
    return results
