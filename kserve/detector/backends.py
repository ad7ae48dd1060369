"""KS backends of the detector: each turns (reference, current batch) into a ``DriftReport``.

Both use ``creditops.monitoring.drift`` for PSI, the multiple-test correction and the verdict, so they differ
only in who runs the per-feature two-sample KS test: ``scipy`` (default, core env: ``scipy.stats.ks_2samp``)
or ``alibi-detect`` (one ``KSDrift`` per feature, fitted on that feature's non-missing reference values; only
in the separate alibi env, Business Source License 1.1, imported when selected).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from creditops.monitoring.drift import Correction, DriftReport, detect_drift, drift_report, psi


class DriftBackend(Protocol):
    """Maps a batch of current rows (one column per feature) to a drift report against the reference."""

    def __call__(self, current: pd.DataFrame) -> DriftReport:
        """Per-feature drift of ``current``."""
        ...


def scipy_backend(
    reference: pd.DataFrame, features: Sequence[str], alpha: float, correction: Correction, bins: int
) -> DriftBackend:
    """``creditops.monitoring.drift.detect_drift`` (scipy ``ks_2samp``)."""
    return lambda current: detect_drift(
        reference, current, features, alpha=alpha, correction=correction, bins=bins
    )


def alibi_detect_backend(
    reference: pd.DataFrame, features: Sequence[str], alpha: float, correction: Correction, bins: int
) -> DriftBackend:
    """alibi-detect ``KSDrift`` per feature for KS statistic and p-value; correction, PSI: creditops."""
    try:
        from alibi_detect.cd import KSDrift
    except ImportError as exc:
        raise RuntimeError(
            f"detector backend 'alibi-detect' needs the alibi env (.venv-alibi): {exc}"
        ) from exc

    ref = {f: reference[f].to_numpy(dtype=float, na_value=np.nan) for f in features}
    detectors = {
        f: KSDrift(values[~np.isnan(values)].reshape(-1, 1), p_val=alpha) for f, values in ref.items()
    }

    def detect(current: pd.DataFrame) -> DriftReport:
        ks_stats, p_values, psis = [], [], []
        for f in features:
            values = current[f].to_numpy(dtype=float, na_value=np.nan)
            present = values[~np.isnan(values)]
            if present.size and detectors[f].x_ref.size:
                data = detectors[f].predict(present.reshape(-1, 1), return_p_val=True, return_distance=True)[
                    "data"
                ]
                ks, p = float(np.ravel(data["distance"])[0]), float(np.ravel(data["p_val"])[0])
            else:
                ks, p = 0.0, 1.0  # nothing to compare: same convention as creditops.monitoring.drift.ks_test
            ks_stats.append(ks)
            p_values.append(p)
            psis.append(psi(ref[f], values, bins=bins))
        return drift_report(
            features,
            ks_stats,
            p_values,
            psis,
            alpha,
            correction,
            n_reference=len(reference),
            n_current=len(current),
        )

    return detect


BACKENDS: dict[str, Callable[[pd.DataFrame, Sequence[str], float, Correction, int], DriftBackend]] = {
    "scipy": scipy_backend,
    "alibi-detect": alibi_detect_backend,
}
