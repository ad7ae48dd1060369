"""Label-free monitoring of one window of served decisions against the served version's reference.

Per feature: CSI (PSI on a model input) with the reference bins and its sample-size critical value, the KS
test against the reference's quantile sketch with Benjamini-Hochberg correction over the features, and the
data quality of the served inputs (missing, out-of-range, unseen categories). On the predictions: score PSI,
mean PD against the expected default rate, approve / review / decline rates, the reason-code mix, and two
anomalies: a burst of identical requests and a caller far off its usual decline rate.

Everything is a handful of numpy passes per column: no per-row Python.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from creditops.monitoring.drift import (
    PSI_ACT,
    PSI_WARN,
    Level,
    adjust_p_values,
    psi_critical_value,
    psi_from_shares,
    psi_level,
)
from creditops.monitoring.reference import FeatureReference, MonitoringReference

DECISIONS = ("approve", "review", "decline")


@dataclass
class DecisionWindow:
    """Served decisions of one window, one model version, as arrays (row i = one audited decision).

    Attributes:
        model_version: Label of the version that served them (the audit log's ``model_version``).
        features: Feature names, the column order of ``X``.
        X: Served inputs, float (NaN = missing).
        pd: Calibrated PD per decision.
        score: Score points per decision.
        decision: approve / review / decline.
        caller_id: Who asked.
        reason: First adverse-action reason (a feature name, "" when none).
        ts: Decision time (numpy datetime64[ns], UTC).
        prediction_id: Audit prediction id.
        applicant_id: Applicant id when the request carried one (else "").
        start: Window start (ISO), for the record.
        end: Window end (ISO, exclusive).
    """

    model_version: str
    features: list[str]
    X: np.ndarray
    pd: np.ndarray
    score: np.ndarray
    decision: np.ndarray
    caller_id: np.ndarray
    reason: np.ndarray
    ts: np.ndarray
    prediction_id: np.ndarray
    applicant_id: np.ndarray
    start: str = ""
    end: str = ""

    def __len__(self) -> int:
        return int(self.pd.size)

    def take(self, mask: np.ndarray, start: str = "", end: str = "") -> DecisionWindow:
        """The decisions selected by a boolean mask (or index array)."""
        return DecisionWindow(
            self.model_version, self.features, self.X[mask], self.pd[mask], self.score[mask],
            self.decision[mask], self.caller_id[mask], self.reason[mask], self.ts[mask],
            self.prediction_id[mask], self.applicant_id[mask], start or self.start, end or self.end,
        )  # fmt: skip


@dataclass(frozen=True)
class FeatureStat:
    """Drift and data quality of one feature in one window."""

    name: str
    psi: float
    critical: float
    level: Level
    ks: float
    p_value: float
    p_adjusted: float
    ks_drifted: bool
    missing_rate: float
    reference_missing_rate: float
    out_of_range_rate: float
    unseen_rate: float


@dataclass(frozen=True)
class Anomaly:
    """Something odd about the requests themselves."""

    kind: str
    detail: str
    count: int
    caller_id: str = ""


@dataclass
class WindowReport:
    """Label-free monitoring of one window."""

    model_version: str
    start: str
    end: str
    n: int
    features: list[FeatureStat]
    score_psi: float
    score_critical: float
    score_level: Level
    mean_pd: float
    expected_default_rate: float
    decision_rates: dict[str, float]
    reference_decision_rates: dict[str, float]
    reason_mix: dict[str, float]
    anomalies: list[Anomaly] = field(default_factory=list)
    score_shares: list[float] = field(default_factory=list)
    performance: dict[str, Any] | None = None
    calibration: list[dict[str, Any]] | None = None
    fairness: list[dict[str, Any]] | None = None

    @property
    def approval_rate(self) -> float:
        """Share of approvals."""
        return self.decision_rates.get("approve", 0.0)

    @property
    def mean_pd_ratio(self) -> float:
        """Mean served PD over the expected default rate of the reference."""
        return self.mean_pd / self.expected_default_rate if self.expected_default_rate > 0 else math.nan

    def drifted(self, level: str = "warn") -> list[str]:
        """Features whose CSI level is at least ``level`` (``warn`` or ``act``)."""
        ok = ("warn", "act") if level == "warn" else ("act",)
        return [f.name for f in self.features if f.level in ok]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = asdict(self)
        out["approval_rate"] = self.approval_rate
        out["mean_pd_ratio"] = self.mean_pd_ratio
        return out


def _sketch_cdf(sketch: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference CDF read off its quantile sketch at sorted, distinct ``x``: (left limits, right limits).

    The sketch's k-th point is the k/(K-1) quantile. At a (tied) sketch value the right limit is the last such
    k and the left limit the first; between two distinct sketch values the CDF is interpolated linearly (the
    CDF of a continuous feature), so there both limits agree.
    """
    k = sketch.size - 1
    # x is sorted: place the (few) sketch points into x and count, instead of searching every x in the sketch.
    # hi[i] = #sketch <= x[i], hi_left[i] = #sketch < x[i].
    n = x.size
    hi = np.cumsum(np.bincount(np.searchsorted(x, sketch, side="left"), minlength=n + 1))[:n]
    hi_left = np.cumsum(np.bincount(np.searchsorted(x, sketch, side="right"), minlength=n + 1))[:n]
    lo = np.clip(hi - 1, 0, k)
    hi_c = np.minimum(hi, k)
    span = sketch[hi_c] - sketch[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(span > 0, (x - sketch[lo]) / span, 0.0)
    right = (lo + frac) / k
    right[hi == 0] = 0.0
    right[hi > k] = 1.0
    left = np.where(hi_left != hi, hi_left / k, right)  # x is a sketch value: the CDF jumps there
    return left, right


def _ks_against_sketch(ref: FeatureReference, values: np.ndarray) -> tuple[float, float]:
    """KS statistic of ``values`` against the reference CDF read off its quantile sketch, asymptotic p."""
    return _ks_sorted(ref, np.sort(values[~np.isnan(values)]))


def _ks_sorted(ref: FeatureReference, cur: np.ndarray) -> tuple[float, float]:
    """KS against the sketch for sorted non-missing window values.

    Both CDFs are monotone and the window's is a step function, so the supremum of their gap is reached at
    the window's distinct values, comparing left limits with left limits and right with right.
    """
    sketch = np.asarray(ref.sketch, dtype=float)
    n_ref = round(ref.n * (1.0 - ref.shares[-1]))
    m = cur.size
    if sketch.size < 2 or m == 0 or n_ref == 0:
        return 0.0, 1.0
    first = np.flatnonzero(np.r_[True, cur[1:] != cur[:-1]])
    left, right = _sketch_cdf(sketch, cur[first])
    d = max(
        float(np.max(np.abs(left - first / m))),  # just below each distinct value
        float(np.max(np.abs(right - np.r_[first[1:], m] / m))),  # and at it
    )
    en = n_ref * m / (n_ref + m)
    # scipy's two-sided one-sample distribution with the effective size (ks_2samp's "asymp" p-value); for
    # large effective sizes its limit, the Kolmogorov distribution, agrees to many digits and is far cheaper.
    p = stats.kstwobign.sf(d * math.sqrt(en)) if en > 2000 else stats.kstwo.sf(d, max(round(en), 1))
    return d, float(p)


def feature_stats(
    reference: MonitoringReference,
    X: np.ndarray,
    *,
    quantile: float = 0.95,
    alpha: float = 0.05,
    warn: float = PSI_WARN,
    act: float = PSI_ACT,
) -> list[FeatureStat]:
    """CSI, KS (BH-adjusted) and data quality of every reference feature over the window's inputs.

    Args:
        reference: The served version's reference.
        X: Served inputs, columns in ``reference.feature_names()`` order.
        quantile: Quantile of the PSI null distribution used as critical value.
        alpha: False discovery rate of the KS tests (Benjamini-Hochberg over the features).
        warn: Business PSI threshold for a warning.
        act: Business PSI threshold for action.
    """
    X = np.asarray(X)
    m = X.shape[0]
    rows: list[dict[str, Any]] = []
    p_values = []
    for j, ref in enumerate(reference.features):
        col = np.asarray(X[:, j], dtype=float)
        nan = np.isnan(col)
        n_nan = int(nan.sum())
        cur = np.sort(col[~nan] if n_nan else col)  # one sort serves the bins, the KS test and the range
        counts = ref.bin_counts_sorted(cur, n_nan)
        value = psi_from_shares(np.asarray(ref.shares), counts)
        crit = psi_critical_value(ref.n, m, ref.n_bins, quantile)
        ks, p = _ks_sorted(ref, cur)
        p_values.append(p)
        oor = 0
        if ref.low is not None:
            oor += int(np.searchsorted(cur, ref.low, side="left"))
        if ref.high is not None:
            oor += int(cur.size - np.searchsorted(cur, ref.high, side="right"))
        unseen = counts[len(ref.categories)] / m if ref.kind == "categorical" and m else 0.0
        rows.append(
            {
                "name": ref.name, "psi": value, "critical": crit, "level": psi_level(value, crit, warn, act),
                "ks": ks, "p_value": p, "missing_rate": n_nan / m if m else 0.0,
                "reference_missing_rate": float(ref.shares[-1]),
                "out_of_range_rate": oor / m if m else 0.0, "unseen_rate": float(unseen),
            }
        )  # fmt: skip
    adjusted = adjust_p_values(p_values, "fdr_bh")
    return [
        FeatureStat(**r, p_adjusted=float(pa), ks_drifted=bool(pa < alpha))
        for r, pa in zip(rows, adjusted, strict=True)
    ]


def request_anomalies(
    window: DecisionWindow,
    *,
    burst_min: int = 20,
    caller_min_rows: int = 50,
    caller_z: float = 4.0,
    caller_baseline: Mapping[str, tuple[int, int]] | None = None,
) -> list[Anomaly]:
    """Bursts of identical requests and callers far off their usual decline rate.

    Args:
        window: The decisions.
        burst_min: Identical input rows (all features equal) from one window that make a burst.
        caller_min_rows: Rows a caller needs in the window before its mix is judged.
        caller_z: Two-proportion z-score beyond which a caller's decline rate is anomalous.
        caller_baseline: Caller -> (decisions, declines) in earlier windows (its usual mix); a caller
            without history is compared with the other callers of the same window.
    """
    out: list[Anomaly] = []
    n = len(window)
    if n == 0:
        return out
    # One 64-bit hash per input row (pandas' per-column hashes combined): identical requests share it.
    frame = pd.DataFrame(np.asarray(window.X))
    row_hash = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    inverse, uniques = pd.factorize(row_hash)
    counts = np.bincount(inverse, minlength=uniques.size)
    for k in np.flatnonzero(counts >= burst_min):
        callers = pd.unique(window.caller_id[inverse == k])
        out.append(
            Anomaly(
                "identical_requests", f"{int(counts[k])} identical requests", int(counts[k]),
                ",".join(str(c) for c in callers[:5]),
            )
        )  # fmt: skip
    declined = window.decision == "decline"
    baseline = caller_baseline or {}
    inv, names = pd.factorize(window.caller_id.astype(str))
    n_by = np.bincount(inv, minlength=names.size)
    d_by = np.bincount(inv, weights=declined, minlength=names.size)
    for i, caller in enumerate(names):
        if n_by[i] < caller_min_rows:
            continue
        if caller in baseline and baseline[caller][0] >= caller_min_rows:
            n0, d0 = baseline[caller]
            against = "its history"
        else:
            n0, d0 = n - n_by[i], d_by.sum() - d_by[i]
            against = "other callers"
        if n0 < caller_min_rows:
            continue
        p1, p0 = d_by[i] / n_by[i], d0 / n0
        pooled = (d_by[i] + d0) / (n_by[i] + n0)
        se = math.sqrt(max(pooled * (1 - pooled) * (1 / n_by[i] + 1 / n0), 1e-12))
        z = (p1 - p0) / se
        if abs(z) > caller_z:
            out.append(
                Anomaly(
                    "caller_mix", f"decline rate {p1:.1%} vs {p0:.1%} ({against}), z={z:.1f}",
                    int(n_by[i]), str(caller),
                )
            )  # fmt: skip
    return out


def analyse_window(
    reference: MonitoringReference,
    window: DecisionWindow,
    *,
    quantile: float = 0.95,
    alpha: float = 0.05,
    warn: float = PSI_WARN,
    act: float = PSI_ACT,
    burst_min: int = 20,
    caller_min_rows: int = 50,
    caller_z: float = 4.0,
    caller_baseline: Mapping[str, tuple[int, int]] | None = None,
) -> WindowReport:
    """All label-free monitoring of one window (see the module docstring).

    Raises:
        ValueError: the window's features differ from the reference's.
    """
    names = reference.feature_names()
    if list(window.features) != names:
        missing = sorted(set(names) - set(window.features))
        raise ValueError(f"window features differ from the reference of {window.model_version}: {missing}")
    feats = feature_stats(reference, window.X, quantile=quantile, alpha=alpha, warn=warn, act=act)
    n = len(window)
    score_counts = reference.score.bin_counts(window.score)
    score_psi = psi_from_shares(np.asarray(reference.score.shares), score_counts)
    score_crit = psi_critical_value(reference.score.n, n, reference.score.n_bins, quantile)
    rates = {d: float(np.mean(window.decision == d)) if n else 0.0 for d in DECISIONS}
    reason_counts = pd.Series(window.reason).value_counts()
    mix = {str(r): float(c / n) for r, c in reason_counts.items() if r}
    return WindowReport(
        model_version=window.model_version,
        start=window.start,
        end=window.end,
        n=n,
        features=feats,
        score_psi=score_psi,
        score_critical=score_crit,
        score_level=psi_level(score_psi, score_crit, warn, act),
        mean_pd=float(np.mean(window.pd)) if n else math.nan,
        expected_default_rate=reference.expected_default_rate,
        decision_rates=rates,
        reference_decision_rates=dict(reference.decision_rates),
        reason_mix=dict(sorted(mix.items(), key=lambda kv: -kv[1])),
        score_shares=(score_counts / max(n, 1)).tolist(),
        anomalies=request_anomalies(
            window,
            burst_min=burst_min,
            caller_min_rows=caller_min_rows,
            caller_z=caller_z,
            caller_baseline=caller_baseline,
        ),  # fmt: skip
    )


def window_from_frame(
    frame: Any, features: Sequence[str], model_version: str, start: str = "", end: str = ""
) -> DecisionWindow:
    """A :class:`DecisionWindow` from a DataFrame with the features and ``pd``/``score``/``decision`` columns.

    Optional columns: ``caller_id``, ``reason``, ``ts``, ``prediction_id``, ``applicant_id``.
    """
    n = len(frame)

    def col(name: str, default: Any) -> np.ndarray:
        return frame[name].to_numpy() if name in frame.columns else np.full(n, default, dtype=object)

    return DecisionWindow(
        model_version=model_version,
        features=list(features),
        X=frame[list(features)].to_numpy(dtype=np.float32, na_value=np.nan),
        pd=frame["pd"].to_numpy(dtype=float),
        score=frame["score"].to_numpy(dtype=float),
        decision=frame["decision"].to_numpy(dtype=object),
        caller_id=col("caller_id", ""),
        reason=col("reason", ""),
        ts=frame["ts"].to_numpy(dtype="datetime64[ns]")
        if "ts" in frame.columns
        else np.zeros(n, dtype="datetime64[ns]"),
        prediction_id=col("prediction_id", ""),
        applicant_id=col("applicant_id", ""),
        start=start,
        end=end,
    )
