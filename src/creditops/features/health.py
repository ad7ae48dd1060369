"""Feature health: freshness, null and out-of-range rates, offline vs online drift, training-serving skew.

Pure functions over frames and timestamps; ``feast_repo.health`` reads the stores and calls them.
:func:`health_gauges` exposes a :class:`FeatureHealth` as Prometheus gauges, :func:`health_markdown` as
the report section.

Skew: for a served decision the audit log holds the vector the model saw (by-id requests are audited as
``applicant_id`` + the values read online); the offline point-in-time retrieval for the same applicant at
the decision's time must give the same values. Served values are float32 (the model's input type), so
values are compared at float32 precision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from creditops.monitoring.drift import psi


@dataclass(frozen=True)
class FeatureHealth:
    """One health check's results (every mapping keyed by view or feature name)."""

    freshness_seconds: dict[str, float]
    null_rate: dict[str, float]
    out_of_range_rate: dict[str, float]
    offline_online_psi: dict[str, float]
    skew_checked: int = 0
    skew_mismatches: dict[str, int] = field(default_factory=dict)
    skew_examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def freshness(newest: Mapping[str, datetime | None], now: datetime) -> dict[str, float]:
    """Age in seconds of each view's newest online value (``inf`` when the view holds none)."""
    return {
        view: (now - ts).total_seconds() if ts is not None else float("inf") for view, ts in newest.items()
    }


def null_rates(values: pd.DataFrame, features: Sequence[str]) -> dict[str, float]:
    """Share of missing values per feature (1.0 on an empty frame: nothing is known)."""
    if len(values) == 0:
        return {f: 1.0 for f in features}
    return {f: float(values[f].isna().mean()) for f in features}


def out_of_range_rates(
    values: pd.DataFrame, ranges: Mapping[str, tuple[float | None, float | None]]
) -> dict[str, float]:
    """Share of present values outside each feature's inclusive valid range (features without one: 0)."""
    out = {}
    for name, (low, high) in ranges.items():
        if name not in values.columns:
            continue
        col = pd.to_numeric(values[name], errors="coerce").dropna()
        if col.empty:
            out[name] = 0.0
            continue
        bad = pd.Series(False, index=col.index)
        if low is not None:
            bad |= col < low
        if high is not None:
            bad |= col > high
        out[name] = float(bad.mean())
    return out


def offline_online_psi(
    offline: pd.DataFrame, online: pd.DataFrame, features: Sequence[str]
) -> dict[str, float]:
    """PSI of the online values against the offline table's latest rows, per feature."""
    return {
        f: psi(offline[f].to_numpy(float, na_value=np.nan), online[f].to_numpy(float, na_value=np.nan))
        for f in features
    }


def skew(
    served: pd.DataFrame, offline: pd.DataFrame, features: Sequence[str], rtol: float = 1e-6
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Per-feature count of served values that differ from the offline point-in-time values (same rows).

    Both values missing counts as equal; one missing does not. Returns the counts and up to 20 examples.
    """
    counts, examples = {}, []
    for f in features:
        a = served[f].to_numpy(np.float64, na_value=np.nan).astype(np.float32).astype(np.float64)
        b = offline[f].to_numpy(np.float64, na_value=np.nan).astype(np.float32).astype(np.float64)
        same = np.isclose(a, b, rtol=rtol, atol=0.0) | (np.isnan(a) & np.isnan(b))
        counts[f] = int((~same).sum())
        for i in np.flatnonzero(~same)[: max(0, 20 - len(examples))]:
            examples.append({"row": int(i), "feature": f, "served": float(a[i]), "offline": float(b[i])})
    return counts, examples


def health_gauges(health: FeatureHealth, registry: Any = None) -> Any:
    """The health as Prometheus gauges in ``registry`` (default: a new ``CollectorRegistry``)."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = registry or CollectorRegistry()
    h = health
    series = (
        (
            "creditops_feature_freshness_seconds",
            "Age of the newest online value",
            "view",
            h.freshness_seconds,
        ),
        ("creditops_feature_null_rate", "Share of missing online values", "feature", h.null_rate),
        (
            "creditops_feature_out_of_range_rate",
            "Share outside the valid range",
            "feature",
            h.out_of_range_rate,
        ),
        ("creditops_feature_offline_online_psi", "PSI online vs offline", "feature", h.offline_online_psi),
        ("creditops_feature_skew_mismatches", "Served != offline retrieval", "feature", h.skew_mismatches),
    )
    for name, doc, label, values in series:
        gauge = Gauge(name, doc, [label], registry=registry)
        for key, value in values.items():
            gauge.labels(key).set(value)
    Gauge("creditops_feature_skew_checked", "Served decisions checked for skew", registry=registry).set(
        health.skew_checked
    )
    return registry


def health_markdown(health: FeatureHealth, max_psi: float = 0.25) -> str:
    """The feature-health section of the monitoring report."""
    lines = ["## Feature health", "", "| view | newest value age |", "|---|---|"]
    lines += [f"| {v} | {_age(s)} |" for v, s in health.freshness_seconds.items()]
    lines += [
        "",
        "| feature | null rate | out of range | offline/online PSI | skew mismatches |",
        "|---|---|---|---|---|",
    ]
    for f in health.null_rate:
        p = health.offline_online_psi.get(f, float("nan"))
        flag = (
            " ⚠"
            if p > max_psi or health.skew_mismatches.get(f, 0) or health.out_of_range_rate.get(f, 0)
            else ""
        )
        oor = health.out_of_range_rate.get(f, 0.0)
        lines.append(
            f"| {f}{flag} | {health.null_rate[f]:.3f} | {oor:.3f} | {p:.4f} | "
            f"{health.skew_mismatches.get(f, 0)}/{health.skew_checked} |"
        )
    if health.skew_examples:
        lines += ["", "Skew examples (served vs offline point-in-time):", ""]
        lines += [
            f"- row {e['row']} {e['feature']}: {e['served']} vs {e['offline']}" for e in health.skew_examples
        ]
    return "\n".join(lines) + "\n"


def _age(seconds: float) -> str:
    if seconds == float("inf"):
        return "no value"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds:.0f} s"
