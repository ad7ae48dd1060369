"""Group fairness of credit decisions, measured with fairlearn, with its sampling uncertainty.

"Decline" is the positive prediction: a group with a higher selection rate is declined more often. Three
measures gate a model, per protected attribute: the demographic parity difference (spread, max - min,
of decline rates between groups), the equal opportunity difference (spread of true-positive rates, i.e. of
the share of real defaulters that each group's decisions catch) and the adverse impact ratio (the lowest
group approval rate over the highest one: the "four-fifths" screen of US fair-lending reviews, where
"approved" means the model's outright ``approve`` decision). A per-group
:class:`fairlearn.metrics.MetricFrame` (selection rate, TPR, FPR, AUC, count, defaulters, approval rate,
impact ratio) goes into the model card.

Support. A group enters a disparity only with enough evidence: ``min_group_size`` rows for both disparities
and also ``min_group_positives`` defaulters for the equal opportunity difference (a TPR from ten defaulters
moves in steps of 0.1). Left-out groups stay in the per-group frame and are listed, with the reason, in
:attr:`FairnessResult.excluded_groups` / :attr:`FairnessResult.exclusion_reasons`. With fewer than two
eligible groups a disparity is not measurable: its value is NaN, never a reassuring 0.

Uncertainty. Each disparity carries a confidence interval from a stratified bootstrap: rows are resampled with
replacement within every (group, outcome) stratum, so each group keeps its size and its number of defaulters,
as in the test set. Resampling the rows of a stratum only redraws how many of them are declined, so the
bootstrap draws that count directly, ``Binomial(n, observed rate)``: the same distribution as resampling rows,
vectorised over resamples and groups. The max - min of noisy group rates is biased upwards (with five groups
of equal true rate it is positive, often large), and so is the plain percentile interval of its bootstrap
replicates. The interval is therefore built from *simultaneous* intervals for every pairwise difference
(bootstrap max-t: ``d_ij +- c * se_ij``, ``c`` the ``confidence`` quantile of the largest studentised
deviation over all pairs): since the spread is ``max |p_i - p_j|``, it lies in ``[max_ij (|d_ij| - c se_ij)+,
max_ij (|d_ij| + c se_ij)]`` with at least the joint coverage. The gates
(:mod:`creditops.governance.gates`) judge the point estimate and report this interval beside it, so a reader
sees how much of an excess (or of a pass) the test set can vouch for. The impact ratio's interval is the
percentile interval of its bootstrap replicates (same stratified resampling).
"""

from __future__ import annotations

import math
import warnings
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    count,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import roc_auc_score

from creditops.config import GatesConfig

MISSING_GROUP = "(missing)"

_DEFAULTS = GatesConfig()


@dataclass(frozen=True)
class Disparity:
    """Spread (max - min) of one per-group rate over the eligible groups, with its confidence interval.

    Attributes:
        value: max - min of the observed group rates (fairlearn's difference); NaN with fewer than two groups.
        ci_low: lower bound of the simultaneous bootstrap interval (never below 0).
        ci_high: upper bound of the interval.
        confidence: the interval's confidence level, e.g. 0.95.
        highest: the group with the highest rate (most declined, or most defaulters caught).
        lowest: the group with the lowest rate.
        groups: the eligible groups the spread is taken over.
    """

    value: float
    ci_low: float
    ci_high: float
    confidence: float
    highest: str | None = None
    lowest: str | None = None
    groups: tuple[str, ...] = ()

    @property
    def assessed(self) -> bool:
        """Whether at least two groups had enough support to measure the spread."""
        return not math.isnan(self.value)

    @property
    def half_width(self) -> float:
        """Half the width of the confidence interval, i.e. the precision (NaN when not assessed)."""
        return (self.ci_high - self.ci_low) / 2

    @classmethod
    def not_assessed(cls, confidence: float, groups: tuple[str, ...] = ()) -> Disparity:
        """A spread that cannot be measured (fewer than two eligible groups)."""
        nan = float("nan")
        return cls(nan, nan, nan, confidence, groups=groups)


@dataclass(frozen=True)
class AdverseImpact:
    """Lowest group approval rate over the highest one (the four-fifths rule), with its interval.

    Attributes:
        value: min over eligible groups of approval rate / the most-approved group's rate; NaN when fewer
            than two groups have enough rows or no group is approved at all.
        ci_low: lower bound of the bootstrap percentile interval.
        ci_high: upper bound of the interval.
        confidence: the interval's confidence level.
        reference: the most-approved group (ratio 1).
        lowest: the group with the lowest ratio.
        ratios: eligible group -> its ratio.
    """

    value: float
    ci_low: float
    ci_high: float
    confidence: float
    reference: str | None = None
    lowest: str | None = None
    ratios: dict[str, float] = field(default_factory=dict)

    @property
    def assessed(self) -> bool:
        """Whether the ratio could be measured."""
        return not math.isnan(self.value)

    @classmethod
    def not_assessed(cls, confidence: float) -> AdverseImpact:
        """A ratio that cannot be measured."""
        nan = float("nan")
        return cls(nan, nan, nan, confidence)


@dataclass(frozen=True)
class FairnessResult:
    """Fairness of the decline decisions across the groups of one protected attribute.

    Attributes:
        attribute: the protected attribute (column name).
        demographic_parity: spread of decline rates over the groups with enough rows.
        equal_opportunity: spread of true-positive rates over the groups with enough rows and defaulters.
        by_group: one row per group; columns selection_rate, tpr, fpr, auc, count, positives,
            approval_rate, impact_ratio (NaN for a group too small to assess).
        excluded_groups: groups left out of at least one disparity (too few rows or too few defaulters).
        exclusion_reasons: excluded group -> why, e.g. ``"12 defaulters < 30 (equal opportunity only)"``.
        adverse_impact: approval-rate ratio over the groups with enough rows.
    """

    attribute: str
    demographic_parity: Disparity
    equal_opportunity: Disparity
    by_group: pd.DataFrame
    excluded_groups: list[str] = field(default_factory=list)
    exclusion_reasons: dict[str, str] = field(default_factory=dict)
    adverse_impact: AdverseImpact = field(default_factory=lambda: AdverseImpact.not_assessed(float("nan")))

    @property
    def not_assessed_groups(self) -> dict[str, str]:
        """Groups left out of every measure (too few rows) -> why."""
        return {g: r for g, r in self.exclusion_reasons.items() if "equal opportunity only" not in r}

    @property
    def demographic_parity_difference(self) -> float:
        """Max - min decline rate over the eligible groups (NaN when not measurable)."""
        return self.demographic_parity.value

    @property
    def equal_opportunity_difference(self) -> float:
        """Max - min true-positive rate over the eligible groups (NaN when not measurable)."""
        return self.equal_opportunity.value


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


def spread_interval(rates: np.ndarray, replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    """Confidence interval of ``max(rates) - min(rates)`` from bootstrap replicates of the group rates.

    Simultaneous (max-t) intervals for every pairwise difference, combined into bounds on the spread; see the
    module docstring for why not the percentile interval of the replicated spread.

    Args:
        rates: observed rate of each group, shape (groups,).
        replicates: bootstrap replicates of the rates, shape (resamples, groups).
        confidence: joint coverage of the pairwise intervals, e.g. 0.95.

    Returns:
        (lower, upper) bounds of the spread; the lower one is clipped at 0.
    """
    i, j = np.triu_indices(len(rates), k=1)
    diff = rates[i] - rates[j]
    boot = replicates[:, i] - replicates[:, j]
    se = boot.std(axis=0)
    # a pair whose replicates never move (both rates 0 or 1) contributes no deviation rather than 0/0
    t = np.divide(np.abs(boot - diff), se, out=np.zeros_like(boot), where=se > 0)
    c = float(np.quantile(t.max(axis=1), confidence))
    low = float(np.max(np.maximum(np.abs(diff) - c * se, 0.0)))
    high = float(np.max(np.abs(diff) + c * se))
    return low, high


def _disparity(
    rates: pd.Series, replicates: np.ndarray, eligible: np.ndarray, confidence: float
) -> Disparity:
    """Spread of ``rates`` over the ``eligible`` groups (boolean mask), with its interval."""
    groups = tuple(str(g) for g in rates.index[eligible])
    if len(groups) < 2:
        return Disparity.not_assessed(confidence, groups)
    observed = rates.to_numpy(dtype=float)[eligible]
    low, high = spread_interval(observed, replicates[:, eligible], confidence)
    return Disparity(
        value=float(observed.max() - observed.min()),
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        highest=groups[int(np.argmax(observed))],
        lowest=groups[int(np.argmin(observed))],
        groups=groups,
    )


def _adverse_impact(
    approval: np.ndarray, replicates: np.ndarray, groups: pd.Index, eligible: np.ndarray, confidence: float
) -> AdverseImpact:
    """Min approval-rate ratio over the ``eligible`` groups, with a bootstrap percentile interval."""
    names = [str(g) for g in groups[eligible]]
    rates = approval[eligible]
    if len(names) < 2 or rates.max() <= 0:
        return AdverseImpact.not_assessed(confidence)
    ratios = rates / rates.max()
    boot = replicates[:, eligible]
    top = boot.max(axis=1, keepdims=True)
    boot_min = np.divide(boot, top, out=np.ones_like(boot), where=top > 0).min(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boot_min, [alpha, 1 - alpha])
    return AdverseImpact(
        value=float(ratios.min()),
        ci_low=float(low),
        ci_high=float(high),
        confidence=confidence,
        reference=names[int(np.argmax(rates))],
        lowest=names[int(np.argmin(ratios))],
        ratios={n: float(r) for n, r in zip(names, ratios, strict=True)},
    )


def _attribute_seed(seed: int, attribute: str) -> np.random.Generator:
    """One stream per attribute, independent of the order in which attributes are assessed."""
    return np.random.default_rng([seed, zlib.crc32(attribute.encode())])


def assess_fairness(
    y_true: np.ndarray | pd.Series,
    y_pred: np.ndarray | pd.Series,
    y_score: np.ndarray | pd.Series,
    sensitive: pd.DataFrame,
    attributes: list[str],
    min_group_size: int = _DEFAULTS.fairness_min_group_size,
    min_group_positives: int = _DEFAULTS.fairness_min_group_defaulters,
    *,
    n_resamples: int = _DEFAULTS.fairness_bootstrap_resamples,
    confidence: float = _DEFAULTS.fairness_confidence,
    seed: int = 0,
    y_approved: np.ndarray | pd.Series | None = None,
) -> dict[str, FairnessResult]:
    """Measure decision fairness for every protected attribute, with bootstrap confidence intervals.

    Args:
        y_true: 1 = defaulted.
        y_pred: 1 = declined (the positive prediction).
        y_score: predicted probability of default.
        sensitive: frame holding the protected attribute columns, aligned row by row with ``y_true``.
        attributes: the protected attributes to assess (each must be a column of ``sensitive``).
        min_group_size: groups with fewer rows are left out of both disparities.
        min_group_positives: groups with fewer defaulters are left out of the equal opportunity difference.
        n_resamples: bootstrap resamples per attribute.
        confidence: confidence level of the intervals.
        seed: bootstrap seed; the same seed and data give the same intervals.
        y_approved: 1 = approved outright (for the adverse impact ratio); default: not declined.

    Returns:
        attribute -> :class:`FairnessResult`.

    Raises:
        KeyError: a protected attribute is not a column of ``sensitive``.
    """
    y_true = np.asarray(y_true).astype(int)
    y_pred = np.asarray(y_pred).astype(int)
    y_score = np.asarray(y_score, dtype=float)
    approved = 1 - y_pred if y_approved is None else np.asarray(y_approved).astype(int)
    min_rows, min_pos = max(1, min_group_size), max(1, min_group_positives)
    results: dict[str, FairnessResult] = {}
    for attribute in attributes:
        if attribute not in sensitive.columns:
            raise KeyError(f"protected attribute {attribute!r} is not a column of the test frame")
        groups = _labels(sensitive[attribute].reset_index(drop=True))
        frame = group_frame(y_true, y_pred, y_score, groups)
        counts = frame["count"].to_numpy()
        positives = frame["positives"].to_numpy()
        negatives = counts - positives
        dp_eligible = counts >= min_rows
        eo_eligible = dp_eligible & (positives >= min_pos)

        # stratified bootstrap over (group, outcome): redraw the declines among each group's defaulters and
        # among its non-defaulters; sizes and defaulter counts stay those of the test set
        by_stratum = pd.DataFrame({"g": groups.to_numpy(), "y": y_true, "d": y_pred}).groupby(["g", "y"])["d"]
        declines = (
            by_stratum.sum().unstack(fill_value=0).reindex(index=frame.index, columns=[0, 1], fill_value=0)
        )
        rng = _attribute_seed(seed, attribute)
        tpr_obs = np.divide(declines[1].to_numpy(), positives, out=np.zeros(len(frame)), where=positives > 0)
        fpr_obs = np.divide(declines[0].to_numpy(), negatives, out=np.zeros(len(frame)), where=negatives > 0)
        tp = rng.binomial(positives, tpr_obs, size=(n_resamples, len(frame)))
        fp = rng.binomial(negatives, fpr_obs, size=(n_resamples, len(frame)))
        selection_boot = (tp + fp) / np.maximum(counts, 1)
        tpr_boot = tp / np.maximum(positives, 1)
        approvals = pd.Series(approved).groupby(groups.to_numpy()).sum().reindex(frame.index, fill_value=0)
        approval_obs = approvals.to_numpy(dtype=float) / np.maximum(counts, 1)
        approval_boot = rng.binomial(counts, approval_obs, size=(n_resamples, len(frame))) / np.maximum(
            counts, 1
        )
        impact = _adverse_impact(approval_obs, approval_boot, frame.index, dp_eligible, confidence)
        frame = frame.assign(
            approval_rate=approval_obs,
            impact_ratio=[impact.ratios.get(str(g), float("nan")) for g in frame.index],
        )

        reasons: dict[str, str] = {}
        for group, n, pos in zip(frame.index, counts, positives, strict=True):
            if n < min_rows:
                reasons[str(group)] = f"{n} rows < {min_rows}"
            elif pos < min_pos:
                reasons[str(group)] = f"{pos} defaulters < {min_pos} (equal opportunity only)"
        results[attribute] = FairnessResult(
            attribute=attribute,
            demographic_parity=_disparity(frame["selection_rate"], selection_boot, dp_eligible, confidence),
            equal_opportunity=_disparity(frame["tpr"], tpr_boot, eo_eligible, confidence),
            by_group=frame,
            excluded_groups=sorted(reasons),
            exclusion_reasons=reasons,
            adverse_impact=impact,
        )
    return results
