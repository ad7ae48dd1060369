"""One monitoring run: audited decisions -> windows per served version -> every judge, against its reference.

The three clocks of credit monitoring all come out of one pass: label-free drift, prediction and fairness
monitoring on every window; performance (AUC / Gini / KS with intervals) and calibration back-tests per
window as soon as enough of its outcomes have matured; vintage curves of early delinquency over the run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from creditops.config import MonitoringConfig
from creditops.monitoring.fairness import fairness_by_group
from creditops.monitoring.performance import (
    calibration_backtest,
    discrimination_with_intervals,
    hosmer_lemeshow,
    vintage_curves,
)
from creditops.monitoring.reference import MonitoringReference, ReferenceSet
from creditops.monitoring.source import AuditDecisions
from creditops.monitoring.window import WindowReport, analyse_window


@dataclass
class MonitoringRun:
    """Every window of one run, oldest first, plus run-wide figures."""

    windows: list[WindowReport]
    references: dict[str, MonitoringReference]
    vintages: pd.DataFrame | None = None
    seconds: float = 0.0
    n_decisions: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def latest(self) -> dict[str, WindowReport]:
        """The newest window of each served version."""
        out: dict[str, WindowReport] = {}
        for w in self.windows:
            out[w.model_version] = w
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``creditops monitor run --json``)."""
        return {
            "n_decisions": self.n_decisions,
            "seconds": self.seconds,
            "skipped": self.skipped,
            "windows": [w.to_dict() for w in self.windows],
            "vintages": None if self.vintages is None else self.vintages.to_dict(orient="records"),
        }


def _edges(ts: np.ndarray, freq: str) -> list[pd.Timestamp]:
    lo = pd.Timestamp(ts.min()).floor(freq)
    hi = pd.Timestamp(ts.max()).floor(freq) + pd.tseries.frequencies.to_offset(freq)
    return list(pd.date_range(lo, hi, freq=freq))


def run_monitoring(
    decisions: AuditDecisions,
    references: ReferenceSet,
    config: MonitoringConfig | None = None,
    *,
    outcomes: pd.DataFrame | None = None,
    protected: pd.DataFrame | None = None,
    as_of: Any = None,
) -> MonitoringRun:
    """Monitor every window of every served version in ``decisions``.

    Args:
        decisions: Audited decisions (:func:`creditops.monitoring.source.read_audit_decisions`).
        references: Which reference applies to which served version; a version without one is refused.
        config: Windows and judges (default :class:`MonitoringConfig`).
        outcomes: Matured outcomes joined to the decisions, one row per decision, from
            :func:`creditops.data.outcomes.join_outcomes` (``defaulted`` NaN = not matured).
        protected: Protected attributes per decision (rows aligned with ``decisions``), joined from the
            application records; never model inputs.
        as_of: Observation date for vintage curves (default: the newest decision).

    Raises:
        MonitoringReferenceError: a served version has no reference.
    """
    cfg = config or MonitoringConfig()
    t0 = time.perf_counter()
    run = MonitoringRun(windows=[], references={}, n_decisions=len(decisions))
    if len(decisions) == 0:
        return run
    feature_index = {f: j for j, f in enumerate(decisions.features)}
    y_all = None if outcomes is None else outcomes["defaulted"].to_numpy(dtype=float)
    baseline: dict[str, tuple[int, int]] = {}
    edges = _edges(decisions.ts, cfg.window)
    bucket = (
        np.searchsorted(np.array([np.datetime64(e, "ns") for e in edges]), decisions.ts, side="right") - 1
    )
    for version in decisions.versions():
        ref = references.get(version)
        run.references[version] = ref
        cols = [feature_index[f] for f in ref.feature_names()]
        vmask = decisions.model_version == version
        for b in np.unique(bucket[vmask]):
            rows = np.flatnonzero(vmask & (bucket == b))
            if rows.size < cfg.min_window_rows:
                run.skipped[version] = run.skipped.get(version, 0) + int(rows.size)
                continue
            w = decisions.select(version, rows, cols, ref.feature_names(), edges[b], edges[b + 1])
            report = analyse_window(
                ref, w, quantile=cfg.psi_quantile, alpha=cfg.ks_alpha, warn=cfg.psi_warn, act=cfg.psi_act,
                burst_min=cfg.burst_min_identical, caller_min_rows=cfg.caller_min_rows, caller_z=cfg.caller_z,
                caller_baseline=baseline,
            )  # fmt: skip
            _update_baseline(baseline, w.caller_id, w.decision)
            y = None if y_all is None else y_all[rows]
            if y is not None:
                matured = ~np.isnan(y)
                report.performance = {"matured": int(matured.sum())}
                if matured.sum() >= cfg.min_outcomes:
                    perf = discrimination_with_intervals(y[matured], w.pd[matured], n_boot=cfg.bootstrap)
                    perf["matured"] = int(matured.sum())
                    perf["validation_auc"] = ref.validation.auc
                    perf["auc_change"] = perf["auc"] - ref.validation.auc
                    perf["hosmer_lemeshow"] = hosmer_lemeshow(y[matured], w.pd[matured])
                    report.performance = perf
                    report.calibration = calibration_backtest(y[matured], w.pd[matured])
            if protected is not None and len(protected.columns):
                report.fairness = fairness_by_group(
                    (w.decision == "approve").astype(float),
                    protected.iloc[rows].reset_index(drop=True),
                    None if y is None else y,
                )
            run.windows.append(report)
    run.windows.sort(key=lambda r: (r.start, r.model_version))
    if outcomes is not None and "delinquency_date" in outcomes.columns:
        event = pd.to_datetime(outcomes["delinquency_date"], utc=True)
        if "outcome_date" in outcomes.columns:
            # a default without a reported delinquency date still counts, at its default date
            at_default = pd.to_datetime(outcomes["outcome_date"], utc=True).where(outcomes["defaulted"] == 1)
            event = event.where(event.notna(), at_default)
        as_of = as_of if as_of is not None else pd.Timestamp(decisions.ts.max(), tz="UTC")
        run.vintages = vintage_curves(pd.to_datetime(decisions.ts, utc=True), event, as_of)
    run.seconds = time.perf_counter() - t0
    return run


def _update_baseline(baseline: dict[str, tuple[int, int]], callers: np.ndarray, decision: np.ndarray) -> None:
    names, inv = np.unique(callers.astype(str), return_inverse=True)
    n = np.bincount(inv, minlength=names.size)
    d = np.bincount(inv, weights=decision == "decline", minlength=names.size)
    for i, name in enumerate(names):
        n0, d0 = baseline.get(str(name), (0, 0))
        baseline[str(name)] = (n0 + int(n[i]), d0 + int(d[i]))


def finite(value: float | None) -> bool:
    """True for a real number (not None, not NaN)."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))
