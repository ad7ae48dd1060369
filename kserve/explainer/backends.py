"""Contribution backends of the explainer: each maps a feature matrix to TreeSHAP values + bias.

``treeshap`` (default) is exact path-dependent TreeSHAP from xgboost itself (``Bundle.contributions``, i.e.
``pred_contribs``: the numbers the predictor's reason codes reproduce); license-clean, runs in the core env.
``alibi`` is alibi's ``TreeShap`` (path-dependent, raw margin output) and only exists in the separate
alibi env (alibi is Business Source License 1.1, needs numpy<2): imported when selected, never before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from creditops.artifact import Bundle


class ContributionBackend(Protocol):
    """Maps rows (manifest feature order, float32) to contributions ``(n, n_features + 1)``, last = bias."""

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """Contributions in margin (log-odds) units; each row sums to the row's margin."""
        ...


def treeshap_backend(bundle: Bundle) -> ContributionBackend:
    """Xgboost's own TreeSHAP (``pred_contribs``) through the bundle."""
    return lambda X: bundle.contributions(X).to_numpy(dtype=np.float64)


def alibi_backend(bundle: Bundle) -> ContributionBackend:
    """Alibi ``TreeShap``, path-dependent (no background data), on the raw margin."""
    try:
        from alibi.explainers import TreeShap
    except ImportError as exc:
        raise RuntimeError(
            f"explainer backend 'alibi' needs the alibi env (.venv-alibi, alibi image): {exc}"
        ) from exc

    explainer = TreeShap(bundle.booster, model_output="raw", task="classification")
    explainer.fit()

    def explain(X: np.ndarray) -> np.ndarray:
        explanation = explainer.explain(X)
        values = np.asarray(explanation.shap_values[0], dtype=np.float64).reshape(len(X), -1)
        bias = float(np.ravel(explanation.expected_value)[0])
        return np.column_stack([values, np.full(len(X), bias)])

    return explain


BACKENDS: dict[str, Callable[[Bundle], ContributionBackend]] = {
    "treeshap": treeshap_backend,
    "alibi": alibi_backend,
}
