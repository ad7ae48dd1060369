"""The monitoring reference of one model version, built at training time and stored beside its bundle.

``monitoring_reference.json`` holds everything monitoring compares served decisions against, so a monitor
never needs the training data: per feature the reference bins (decile edges of a numeric feature, the
category values of a categorical one) with their shares, the missing rate, the valid range and a quantile
sketch for the KS test; the score distribution; PDs and default rates per score grade (master scale); the
expected default rate and decision rates; and the initial validation AUC / Gini / KS.

The file travels with the bundle directory (MLflow logs the whole directory), and carries the model's
label (``<model_name>@<version>``) so monitoring always knows which reference applies to which served
version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from creditops.errors import CreditOpsError

REFERENCE_FILE = "monitoring_reference.json"
#: Upper PD bounds of grades A..F of the master scale; grade G is everything above the last bound.
GRADE_EDGES: tuple[float, ...] = (0.01, 0.025, 0.05, 0.10, 0.20, 0.40)
GRADES: tuple[str, ...] = ("A", "B", "C", "D", "E", "F", "G")
#: Quantiles kept per feature for the KS test (resolution 0.1 % of the reference CDF).
KS_SKETCH = 1001
#: An integer feature with at most this many distinct reference values is binned by value, not deciles.
MAX_CATEGORIES = 12


class MonitoringReferenceError(CreditOpsError):
    """A monitoring reference is missing, unreadable or does not match the model."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def as_model_sees(values: Any) -> np.ndarray:
    """Values as the model compares them: float32 (XGBoost's input type), as float64 again.

    Training data are float64 and served values reach the model as float32, so a value on a bin edge (ties
    are common: counts per month are multiples of 1/12) would fall on either side of it depending on how
    float32 rounded it. Reference edges, reference values and served values are all compared after this
    cast, so a tie is a tie on both sides.
    """
    return np.asarray(values, dtype=np.float32).astype(np.float64)


class FeatureReference(_Strict):
    """Reference distribution of one feature (or of the score).

    Attributes:
        name: Feature name.
        kind: ``numeric`` (decile bins, open outer bins) or ``categorical`` (one bin per value + unseen).
        edges: Interior bin edges of a numeric feature (ties collapsed).
        categories: Values of a categorical feature, one bin each; a last bin holds unseen values.
        shares: Reference share per bin, then the missing share (always present, may be 0).
        n: Reference rows.
        low: Lowest valid value (None = open), from the feature contract.
        high: Highest valid value (None = open).
        sketch: ``KS_SKETCH`` reference quantiles (the KS test's reference CDF).
    """

    name: str
    kind: Literal["numeric", "categorical"]
    edges: list[float] = Field(default_factory=list)
    categories: list[float] = Field(default_factory=list)
    shares: list[float]
    n: int = Field(gt=0)
    low: float | None = None
    high: float | None = None
    sketch: list[float] = Field(default_factory=list)

    @property
    def n_bins(self) -> int:
        """Bins with a share (the chi-square degrees of freedom + 1), the missing bin counted when used."""
        return int(sum(1 for s in self.shares if s > 0))

    def bin_counts(self, values: np.ndarray) -> np.ndarray:
        """Counts per reference bin (last = missing) of ``values``, compared as the model sees them."""
        values = as_model_sees(values)
        n_bins = len(self.shares)
        if self.kind == "numeric":
            edges = as_model_sees(self.edges)
            idx = np.searchsorted(edges, values, side="left")
        else:
            cats = as_model_sees(self.categories)
            pos = np.searchsorted(cats, values)
            pos_c = np.minimum(pos, cats.size - 1)
            idx = np.where(cats[pos_c] == values, pos_c, cats.size)  # cats.size = unseen bin
        idx[np.isnan(values)] = n_bins - 1
        return np.bincount(idx, minlength=n_bins)

    def bin_counts_sorted(self, ok_sorted: np.ndarray, n_missing: int) -> np.ndarray:
        """Same as :meth:`bin_counts` from the sorted non-missing values (a few binary searches)."""
        n_bins = len(self.shares)
        counts = np.zeros(n_bins, dtype=np.int64)
        m = ok_sorted.size
        ok_sorted = as_model_sees(ok_sorted)
        if self.kind == "numeric":
            upto = np.searchsorted(ok_sorted, as_model_sees(self.edges), side="right")
            counts[: n_bins - 1] = np.diff(np.r_[0, upto, m])
        else:
            cats = as_model_sees(self.categories)
            lo = np.searchsorted(ok_sorted, cats, side="left")
            hi = np.searchsorted(ok_sorted, cats, side="right")
            counts[: cats.size] = hi - lo
            counts[cats.size] = m - int((hi - lo).sum())  # unseen values
        counts[-1] = n_missing
        return counts


class GradeReference(_Strict):
    """Validation figures of one score grade (PD band)."""

    grade: str
    pd_low: float
    pd_high: float
    n: int
    mean_pd: float | None
    default_rate: float | None


class ValidationMetrics(_Strict):
    """Discrimination on the validation set when the model was trained."""

    auc: float
    gini: float
    ks: float
    n: int
    default_rate: float


class MonitoringReference(_Strict):
    """Everything monitoring needs about one model version (``monitoring_reference.json``)."""

    schema_version: int = 1
    model_name: str
    labels: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    features: list[FeatureReference]
    score: FeatureReference
    expected_default_rate: float
    decision_rates: dict[str, float] = Field(default_factory=dict)
    grades: list[GradeReference]
    validation: ValidationMetrics

    def feature_names(self) -> list[str]:
        """Monitored features, in model order."""
        return [f.name for f in self.features]

    def with_label(self, label: str) -> MonitoringReference:
        """A copy that also answers to ``label`` (e.g. the registry's ``name@3`` once registered)."""
        return self.model_copy(update={"labels": list(dict.fromkeys([*self.labels, label]))})


# --------------------------------------------------------------------------------------------------------
# building


def feature_reference(
    name: str,
    values: np.ndarray,
    kind: str = "numeric",
    bins: int = 10,
    bounds: tuple[float | None, float | None] = (None, None),
) -> FeatureReference:
    """Reference bins, shares and KS sketch of one feature's values (``kind``: numeric or categorical)."""
    values = np.asarray(values, dtype=float)
    ok = values[~np.isnan(values)]
    n = values.size
    missing = (n - ok.size) / n if n else 0.0
    sketch = np.quantile(ok, np.linspace(0, 1, KS_SKETCH)).tolist() if ok.size else []
    if kind == "categorical":
        cats, counts = np.unique(ok, return_counts=True)
        shares = [*(counts / n).tolist(), 0.0, missing]  # per value, unseen (0 in the reference), missing
        return FeatureReference(
            name=name, kind="categorical", categories=cats.tolist(), shares=shares, n=n,
            low=bounds[0], high=bounds[1], sketch=sketch,
        )  # fmt: skip
    edges = np.array([])
    if ok.size:
        # Edges are reference values (inverted CDF), so every bin (lo, hi] holds at least its upper edge and a
        # heavily tied feature gets one bin per tied value instead of empty interpolated bins; an edge at the
        # maximum would leave the open top bin empty, so it is dropped.
        q = np.quantile(ok, np.arange(1, bins) / bins, method="inverted_cdf")
        edges = np.unique(q)
        edges = edges[edges < ok.max()]
    counts = np.bincount(
        np.searchsorted(as_model_sees(edges), as_model_sees(ok), side="left"), minlength=edges.size + 1
    )
    shares = [*(counts / n).tolist(), missing]
    return FeatureReference(
        name=name, kind="numeric", edges=edges.tolist(), shares=shares, n=n,
        low=bounds[0], high=bounds[1], sketch=sketch,
    )  # fmt: skip


def feature_kind(name: str, values: np.ndarray, dtype: str | None = None) -> str:
    """``categorical`` for a category code (``*_code``), a flag or an int with few values, else numeric."""
    ok = np.asarray(values, dtype=float)
    ok = ok[~np.isnan(ok)]
    distinct = np.unique(ok).size
    if name.endswith("_code") or distinct <= 2:
        return "categorical"
    if dtype == "int" and distinct <= MAX_CATEGORIES:
        return "categorical"
    return "numeric"


def discrimination(y: np.ndarray, pd_: np.ndarray) -> tuple[float, float]:
    """AUC (Mann-Whitney, ties count half) and the KS statistic (max TPR - FPR) of PDs against outcomes.

    Returns:
        ``(auc, ks)``; NaN for both when only one class is present.
    """
    from scipy.stats import rankdata

    y = np.asarray(y, dtype=bool)
    p = np.asarray(pd_, dtype=float)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan"), float("nan")
    ranks = rankdata(p)
    auc = (ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
    order = np.argsort(p, kind="stable")
    ys = y[order]
    ps = p[order]
    last = np.r_[ps[1:] != ps[:-1], True]  # evaluate only at the end of a run of tied PDs
    cum_bad = np.cumsum(ys)[last] / n1
    cum_good = np.cumsum(~ys)[last] / n0
    return float(auc), float(np.max(np.abs(cum_bad - cum_good)))


def grade_of(pd_: np.ndarray) -> np.ndarray:
    """Grade index (0 = A) of each PD on the master scale."""
    return np.searchsorted(np.asarray(GRADE_EDGES), np.asarray(pd_, dtype=float), side="right")


def build_reference(
    inputs: pd.DataFrame,
    features: Sequence[str],
    pd_valid: np.ndarray,
    y_valid: np.ndarray,
    score_valid: np.ndarray,
    decisions_valid: Sequence[str] | np.ndarray,
    *,
    model_name: str,
    labels: Sequence[str] = (),
    dtypes: Mapping[str, str] | None = None,
    valid_ranges: Mapping[str, tuple[float | None, float | None]] | None = None,
    bins: int = 10,
) -> MonitoringReference:
    """Build the monitoring reference of a model from its training inputs and validation predictions.

    Args:
        inputs: Training inputs (one column per feature), the population drift is measured against.
        features: Model features, in model order.
        pd_valid: Calibrated PDs on the validation set.
        y_valid: Validation outcomes (1 = default).
        score_valid: Score points on the validation set.
        decisions_valid: Decisions on the validation set (approve / review / decline).
        model_name: The model's name.
        labels: Model labels this reference answers to (``<model_name>@<version>``).
        dtypes: Feature -> ``int`` | ``float`` (from the manifest).
        valid_ranges: Feature -> inclusive valid range (from the manifest), for out-of-range checks.
        bins: Quantile bins per numeric feature (deciles).

    Raises:
        MonitoringReferenceError: a feature is missing, or the validation arrays are empty or disagree.
    """
    missing = [f for f in features if f not in inputs.columns]
    if missing:
        raise MonitoringReferenceError(f"reference inputs lack feature(s) {missing}")
    pd_valid = np.asarray(pd_valid, dtype=float)
    y_valid = np.asarray(y_valid, dtype=float)
    score_valid = np.asarray(score_valid, dtype=float)
    decisions_valid = np.asarray(decisions_valid, dtype=object)
    if not (pd_valid.size == y_valid.size == score_valid.size == decisions_valid.size) or pd_valid.size == 0:
        raise MonitoringReferenceError(
            f"validation arrays must be non-empty and of one length (pd {pd_valid.size}, y {y_valid.size}, "
            f"score {score_valid.size}, decisions {decisions_valid.size})"
        )
    dtypes = dtypes or {}
    ranges = valid_ranges or {}
    feats = []
    for name in features:
        col = inputs[name].to_numpy(dtype=float, na_value=np.nan)
        kind = feature_kind(name, col, dtypes.get(name))
        feats.append(feature_reference(name, col, kind, bins, tuple(ranges.get(name, (None, None)))))
    score = feature_reference("score", score_valid, "numeric", bins, (None, None))
    auc, ks = discrimination(y_valid, pd_valid)
    g = grade_of(pd_valid)
    lows = (0.0, *GRADE_EDGES)
    highs = (*GRADE_EDGES, 1.0)
    grades = []
    for i, name in enumerate(GRADES):
        mask = g == i
        k = int(mask.sum())
        grades.append(
            GradeReference(
                grade=name, pd_low=lows[i], pd_high=highs[i], n=k,
                mean_pd=float(pd_valid[mask].mean()) if k else None,
                default_rate=float(y_valid[mask].mean()) if k else None,
            )
        )  # fmt: skip
    rates = {d: float(np.mean(decisions_valid == d)) for d in ("approve", "review", "decline")}
    return MonitoringReference(
        model_name=model_name,
        labels=list(labels),
        features=feats,
        score=score,
        expected_default_rate=float(pd_valid.mean()),
        decision_rates=rates,
        grades=grades,
        validation=ValidationMetrics(
            auc=auc, gini=2 * auc - 1, ks=ks, n=int(pd_valid.size), default_rate=float(y_valid.mean())
        ),
    )


def bundle_reference(
    bundle: Any, train_inputs: pd.DataFrame, valid: pd.DataFrame, target: str
) -> MonitoringReference:
    """Reference of a loaded bundle: bins from ``train_inputs``, grades and metrics scored on ``valid``."""
    from creditops.serving import model_version_of

    m = bundle.manifest
    pd_valid = bundle.predict_pd(valid)
    return build_reference(
        train_inputs,
        m.features,
        pd_valid,
        valid[target].to_numpy(dtype=float),
        np.asarray(bundle.score_points(pd_valid), dtype=float),
        bundle.decide(pd_valid),
        model_name=m.model_name,
        labels=[model_version_of(bundle)],
        dtypes=m.dtypes,
        valid_ranges=m.valid_ranges,
    )


def write_bundle_reference(
    bundle_dir: str | Path, train_inputs: pd.DataFrame, valid: pd.DataFrame, target: str
) -> Path:
    """Build the reference of the bundle in ``bundle_dir`` and store it there (training calls this)."""
    from creditops.artifact import load_bundle

    ref = bundle_reference(load_bundle(bundle_dir), train_inputs, valid, target)
    return save_reference(ref, Path(bundle_dir) / REFERENCE_FILE)


def save_reference(reference: MonitoringReference, path: str | Path) -> Path:
    """Write the reference JSON (temporary file + rename, so a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(reference.model_dump_json() + "\n")
    tmp.replace(path)
    return path


def load_reference(path: str | Path) -> MonitoringReference:
    """Read a reference from its JSON file or from a bundle directory holding one.

    Raises:
        MonitoringReferenceError: missing, not JSON, or invalid (the message names the fields).
    """
    path = Path(path)
    if path.is_dir():
        path = path / REFERENCE_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise MonitoringReferenceError(f"no monitoring reference at {path}") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MonitoringReferenceError(f"{path}: not valid JSON ({exc})") from None
    try:
        return MonitoringReference.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise MonitoringReferenceError(f"{path}: invalid monitoring reference: {problems}") from None


class ReferenceSet:
    """Which reference applies to which served model version (by the audit log's ``model_version`` label)."""

    def __init__(self, references: Sequence[MonitoringReference] = ()) -> None:
        self._by_label: dict[str, MonitoringReference] = {}
        for ref in references:
            self.add(ref)

    def add(self, reference: MonitoringReference, label: str | None = None) -> None:
        """Register a reference under its labels (and ``label``)."""
        for name in [*reference.labels, *([label] if label else [])]:
            self._by_label[name] = reference

    def get(self, label: str) -> MonitoringReference:
        """The reference of a served version.

        Raises:
            MonitoringReferenceError: no reference is known for that version (monitoring refuses to guess).
        """
        try:
            return self._by_label[label]
        except KeyError:
            known = ", ".join(sorted(self._by_label)) or "none"
            raise MonitoringReferenceError(
                f"no monitoring reference for model version {label!r} (known: {known})"
            ) from None

    def labels(self) -> list[str]:
        """Known version labels."""
        return sorted(self._by_label)
