"""Feature drift between a reference sample and a window of current data: KS tests and PSI/CSI.

Each feature gets a two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``); the p-values are
adjusted for testing many features at once (Bonferroni or Benjamini-Hochberg), and a feature has drifted
when its adjusted p-value is below ``alpha``. The population stability index (PSI; called CSI when computed
on a model input rather than on the score) is reported beside it as an effect size: KS answers "is it
different", PSI answers "by how much", and on large windows the first is true long before the second matters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

Correction = Literal["bonferroni", "fdr_bh"]

#: Floor for a bin's share in PSI, so an empty bin adds a large but finite term instead of infinity.
PSI_EPSILON = 1e-4


@dataclass(frozen=True)
class FeatureDrift:
    """Drift statistics of one feature.

    Attributes:
        name: Feature name.
        ks_stat: Two-sample KS statistic (largest gap between the two empirical CDFs), in [0, 1].
        p_value: Raw KS p-value.
        p_adjusted: p-value adjusted for the number of features tested.
        psi: Population stability index of current against reference (quantile bins of the reference).
        drifted: ``p_adjusted < alpha``.
    """

    name: str
    ks_stat: float
    p_value: float
    p_adjusted: float
    psi: float
    drifted: bool


@dataclass(frozen=True)
class DriftReport:
    """Per-feature drift and the overall verdict (drifted when any feature drifted)."""

    features: list[FeatureDrift]
    drifted: bool
    alpha: float = 0.05
    correction: Correction = "bonferroni"
    n_reference: int = 0
    n_current: int = 0

    @property
    def drifted_features(self) -> list[str]:
        """Names of the features that drifted, in input order."""
        return [f.name for f in self.features if f.drifted]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (servers and reports)."""
        out = asdict(self)
        out["drifted_features"] = self.drifted_features
        return out


def _finite(values: Any) -> np.ndarray:
    """Float array of the values with NaN removed (a missing value is counted in PSI, not tested by KS)."""
    arr = np.asarray(values, dtype=float).ravel()
    return arr[~np.isnan(arr)]


def psi(ref: Any, cur: Any, bins: int = 10) -> float:
    """Population stability index of ``cur`` against ``ref``.

    Bin edges are the reference's quantiles (ties collapse bins, so a discrete feature gets one bin per
    distinct value at most); the outer bins are open, so current values outside the reference range still
    count. Missing values (NaN) get a bin of their own when either side has any. Shares are floored at
    ``PSI_EPSILON`` so an empty bin is finite. Rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major.

    Args:
        ref: Reference values (1-D, numeric).
        cur: Current values (1-D, numeric).
        bins: Number of quantile bins of the reference.

    Returns:
        ``sum((cur_share - ref_share) * ln(cur_share / ref_share))`` over bins, >= 0.

    Raises:
        ValueError: ``bins`` < 1 or either sample is empty.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    ref_all = np.asarray(ref, dtype=float).ravel()
    cur_all = np.asarray(cur, dtype=float).ravel()
    if ref_all.size == 0 or cur_all.size == 0:
        raise ValueError(f"psi needs non-empty samples (reference {ref_all.size}, current {cur_all.size})")
    ref_ok, cur_ok = _finite(ref_all), _finite(cur_all)
    if ref_ok.size:
        edges = np.unique(np.quantile(ref_ok, np.linspace(0.0, 1.0, bins + 1))[1:-1])
    else:
        edges = np.array([])
    ref_counts = np.bincount(np.searchsorted(edges, ref_ok, side="right"), minlength=edges.size + 1)
    cur_counts = np.bincount(np.searchsorted(edges, cur_ok, side="right"), minlength=edges.size + 1)
    ref_nan, cur_nan = ref_all.size - ref_ok.size, cur_all.size - cur_ok.size
    if ref_nan or cur_nan:
        ref_counts = np.append(ref_counts, ref_nan)
        cur_counts = np.append(cur_counts, cur_nan)
    ref_share = np.clip(ref_counts / ref_all.size, PSI_EPSILON, None)
    cur_share = np.clip(cur_counts / cur_all.size, PSI_EPSILON, None)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def adjust_p_values(
    p_values: Sequence[float] | np.ndarray, correction: Correction = "bonferroni"
) -> np.ndarray:
    """Adjust p-values for multiple testing.

    Args:
        p_values: Raw p-values, one per test.
        correction: ``bonferroni`` (family-wise error rate: ``min(1, p * m)``) or ``fdr_bh``
            (Benjamini-Hochberg false discovery rate, step-up adjusted p-values).

    Returns:
        Adjusted p-values in input order.

    Raises:
        ValueError: Unknown correction.
    """
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p
    if correction == "bonferroni":
        return np.minimum(p * p.size, 1.0)
    if correction == "fdr_bh":
        return stats.false_discovery_control(p, method="bh")
    raise ValueError(f"correction must be 'bonferroni' or 'fdr_bh', got {correction!r}")


def ks_test(ref: Any, cur: Any) -> tuple[float, float]:
    """Two-sample KS statistic and p-value on the non-missing values (no values on a side: 0.0, 1.0)."""
    ref_ok, cur_ok = _finite(ref), _finite(cur)
    if ref_ok.size == 0 or cur_ok.size == 0:
        return 0.0, 1.0
    result = stats.ks_2samp(ref_ok, cur_ok)
    return float(result.statistic), float(result.pvalue)


def drift_report(
    names: Sequence[str],
    ks_stats: Sequence[float],
    p_values: Sequence[float],
    psis: Sequence[float],
    alpha: float = 0.05,
    correction: Correction = "bonferroni",
    n_reference: int = 0,
    n_current: int = 0,
) -> DriftReport:
    """Assemble a report from per-feature raw statistics (shared by every KS backend).

    Args:
        names: Feature names.
        ks_stats: KS statistic per feature.
        p_values: Raw KS p-value per feature.
        psis: PSI per feature.
        alpha: Significance level applied to the adjusted p-values.
        correction: Multiple-test correction, see :func:`adjust_p_values`.
        n_reference: Reference rows (for the record).
        n_current: Current rows (for the record).

    Returns:
        The report; a feature drifted when its adjusted p-value < ``alpha``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    adjusted = adjust_p_values(p_values, correction)
    features = [
        FeatureDrift(
            name=str(name),
            ks_stat=float(ks),
            p_value=float(p),
            p_adjusted=float(p_adj),
            psi=float(value),
            drifted=bool(p_adj < alpha),
        )
        for name, ks, p, p_adj, value in zip(names, ks_stats, p_values, adjusted, psis, strict=True)
    ]
    return DriftReport(
        features=features,
        drifted=any(f.drifted for f in features),
        alpha=alpha,
        correction=correction,
        n_reference=n_reference,
        n_current=n_current,
    )


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str],
    alpha: float = 0.05,
    correction: Correction = "bonferroni",
    bins: int = 10,
) -> DriftReport:
    """Test every feature of ``current`` against ``reference`` for drift.

    Args:
        reference: Reference sample (e.g. the bundle's reference.parquet), one column per feature.
        current: Window of current data (e.g. served inputs).
        features: Features to test, in report order.
        alpha: Significance level for the adjusted p-values.
        correction: ``bonferroni`` or ``fdr_bh``.
        bins: Quantile bins for PSI.

    Returns:
        A :class:`DriftReport`.

    Raises:
        ValueError: A feature is missing from either frame, or either frame is empty.
    """
    for label, frame in (("reference", reference), ("current", current)):
        missing = [f for f in features if f not in frame.columns]
        if missing:
            raise ValueError(f"{label} data lacks feature columns: {missing}")
        if len(frame) == 0:
            raise ValueError(f"{label} data has no rows")
    ks_stats, p_values, psis = [], [], []
    for name in features:
        ref_col = reference[name].to_numpy(dtype=float, na_value=np.nan)
        cur_col = current[name].to_numpy(dtype=float, na_value=np.nan)
        ks, p = ks_test(ref_col, cur_col)
        ks_stats.append(ks)
        p_values.append(p)
        psis.append(psi(ref_col, cur_col, bins=bins))
    return drift_report(
        features,
        ks_stats,
        p_values,
        psis,
        alpha=alpha,
        correction=correction,
        n_reference=len(reference),
        n_current=len(current),
    )


# --------------------------------------------------------------------------------------------------------
# Credit PSI against stored reference bins, with the sample-size critical value.

#: Business thresholds of PSI/CSI: below WARN stable, WARN-ACT moderate shift, above ACT significant shift.
PSI_WARN = 0.10
PSI_ACT = 0.25

Level = Literal["ok", "significant", "warn", "act"]


def psi_critical_value(n_reference: int, n_current: int, n_bins: int, quantile: float = 0.95) -> float:
    """PSI exceeded with probability ``1 - quantile`` when both samples come from one distribution.

    Under no drift ``PSI ~ (1/N + 1/M) * chi2(B - 1)`` asymptotically (PSI is the symmetrised KL divergence,
    twice the G-test statistic scaled by the sample sizes), so PSI is sample-size blind: 10 bins give a 95 %
    critical value of about 0.338 at 100 vs 100 rows and 0.001 at 100k vs 20k.

    Args:
        n_reference: Rows the reference shares were estimated from (N).
        n_current: Rows in the window (M).
        n_bins: Bins with a share (B), including a missing-value or unseen-category bin.
        quantile: Quantile of the null distribution (0.95 = 5 % false alarms per feature and window).

    Returns:
        ``(1/N + 1/M) * chi2.ppf(quantile, B - 1)``; ``inf`` when either sample is empty.
    """
    if n_reference <= 0 or n_current <= 0:
        return float("inf")
    dof = max(int(n_bins) - 1, 1)
    return float((1.0 / n_reference + 1.0 / n_current) * stats.chi2.ppf(quantile, dof))


def psi_level(value: float, critical: float, warn: float = PSI_WARN, act: float = PSI_ACT) -> Level:
    """Alert level of one PSI: a business threshold counts only when the critical value is also exceeded.

    ``significant`` marks a shift that is statistically real but below the business threshold (reported,
    never alerted on by itself).
    """
    if not value > critical:
        return "ok"
    if value > act:
        return "act"
    if value > warn:
        return "warn"
    return "significant"


def psi_from_shares(ref_share: np.ndarray, cur_counts: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """PSI of current bin counts against reference shares, both floored at ``epsilon`` (never infinite).

    Args:
        ref_share: Reference share per bin (sums to 1).
        cur_counts: Current count per bin (same bins).
        epsilon: Floor of a share, so an empty bin adds a large but finite term.
    """
    ref = np.clip(np.asarray(ref_share, dtype=float), epsilon, None)
    cur_counts = np.asarray(cur_counts, dtype=float)
    total = cur_counts.sum()
    if total <= 0:
        return 0.0
    cur = np.clip(cur_counts / total, epsilon, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def bin_numeric(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index per value with open outer bins; NaN goes to an extra last bin (index ``len(edges) + 1``).

    Bin ``i`` holds ``edges[i-1] < x <= edges[i]`` (so a value equal to an edge, a tie, falls in the lower
    bin, the same side ``numpy.quantile`` puts the reference's own ties); bin 0 is ``x <= edges[0]`` and the
    last finite bin is ``x > edges[-1]``, however far outside the reference range.
    """
    values = np.asarray(values, dtype=float)
    idx = np.searchsorted(edges, values, side="left")
    idx[np.isnan(values)] = edges.size + 1
    return idx


def ks_asymptotic(ref_sorted: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic and asymptotic p-value against a pre-sorted reference (NaN ignored).

    The same statistic as ``scipy.stats.ks_2samp``; the p-value is its ``method="asymp"`` one
    (Kolmogorov distribution of ``D * sqrt(nm / (n + m))``), computed with one sort of the window.
    """
    cur = np.sort(cur[~np.isnan(cur)])
    n, m = ref_sorted.size, cur.size
    if n == 0 or m == 0:
        return 0.0, 1.0
    grid = np.concatenate([ref_sorted, cur])
    cdf_ref = np.searchsorted(ref_sorted, grid, side="right") / n
    cdf_cur = np.searchsorted(cur, grid, side="right") / m
    d = float(np.max(np.abs(cdf_ref - cdf_cur)))
    # scipy.stats.ks_2samp(method="asymp"): Kolmogorov distribution with the effective sample size.
    return d, float(stats.kstwo.sf(d, round(n * m / (n + m))))
