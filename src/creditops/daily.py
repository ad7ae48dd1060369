"""The daily data run's core: its settings, the monitoring check and the retraining policy.

:func:`monitoring_check` is the one place the daily pipeline calls the drift core (today
:func:`creditops.monitoring.drift.detect_drift`), so a new monitoring core replaces one function body.
:func:`retraining_decision` is pure: a :class:`RetrainDecision` with every reason that triggered it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from creditops.config import Settings, load_config


def daily_settings(config: str, workdir: str, source: str, n_applicants: int, seed: int) -> Settings:
    """Resolved settings of a daily run: a config file (empty: the defaults) with the run's parameters.

    Args:
        config: path of a creditops YAML config (backends, MLflow...); ``""`` for the embedded defaults.
        workdir: working directory (``""`` keeps the config's).
        source: data source to ingest.
        n_applicants: synthetic applicants.
        seed: synthetic world seed.

    Raises:
        ConfigError: a bad config file or parameter (the message names the field).
    """
    overrides: dict[str, Any] = {"data": {"source": source, "n_applicants": n_applicants, "seed": seed}}
    if workdir:
        overrides["workdir"] = workdir
    return load_config(config or None, overrides).resolved()


@dataclass(frozen=True)
class MonitoringSummary:
    """What the retraining policy needs from the monitoring check."""

    n_reference: int
    n_current: int
    features: list[str]
    drifted_features: list[str]
    psi: dict[str, float]
    report: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def monitoring_check(
    reference: pd.DataFrame, current: pd.DataFrame, features: Sequence[str], alpha: float = 0.05
) -> MonitoringSummary:
    """Drift of ``current`` against ``reference`` on ``features`` (KS with Bonferroni, PSI beside it)."""
    from creditops.monitoring.drift import detect_drift

    report = detect_drift(reference, current, list(features), alpha=alpha)
    return MonitoringSummary(
        n_reference=report.n_reference,
        n_current=report.n_current,
        features=list(features),
        drifted_features=report.drifted_features,
        psi={f.name: f.psi for f in report.features},
        report=report.to_dict(),
    )


def daily_drift(
    tables: dict[str, pd.DataFrame],
    as_of: pd.Timestamp,
    features: Sequence[str],
    window_days: int = 30,
    alpha: float = 0.05,
    reference: pd.DataFrame | None = None,
    timestamp: str = "event_timestamp",
) -> MonitoringSummary:
    """Monitoring of a day's feature tables: the last ``window_days`` before ``as_of`` against the rest.

    Each table is checked on its own features (its rows are its own population: applications, monthly
    bureau snapshots, as-of points); ``reference`` (e.g. a model's reference sample) replaces the earlier
    rows where it has the feature. Tables whose window or history is empty are skipped.
    """
    cutoff = pd.Timestamp(as_of) - pd.Timedelta(days=window_days)
    parts = []
    for table in tables.values():
        names = [f for f in features if f in table.columns]
        recent = pd.to_datetime(table[timestamp], utc=True) > cutoff
        current, ref = table[recent], table[~recent]
        if reference is not None and set(names) <= set(reference.columns):
            ref = reference
        if names and len(current) and len(ref):
            parts.append(monitoring_check(ref, current, names, alpha=alpha))
    if not parts:
        return MonitoringSummary(0, 0, list(features), [], {})
    return MonitoringSummary(
        n_reference=min(p.n_reference for p in parts),
        n_current=min(p.n_current for p in parts),
        features=[f for p in parts for f in p.features],
        drifted_features=[f for p in parts for f in p.drifted_features],
        psi={k: v for p in parts for k, v in p.psi.items()},
        report={"tables": [p.report for p in parts]},
    )


@dataclass(frozen=True)
class RetrainPolicy:
    """When the daily run asks for retraining.

    Attributes:
        max_drifted_share: retrain when more than this share of the features drifted (KS).
        max_psi: retrain when any feature's PSI exceeds this (0.25 = the usual "major shift").
        min_current_rows: below this many current rows the check is inconclusive: no retraining on noise.
    """

    max_drifted_share: float = 0.2
    max_psi: float = 0.25
    min_current_rows: int = 100


@dataclass(frozen=True)
class RetrainDecision:
    """The policy's answer and why."""

    retrain: bool
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def retraining_decision(
    summary: MonitoringSummary, policy: RetrainPolicy = RetrainPolicy()
) -> RetrainDecision:
    """Decide whether to retrain from a monitoring summary; every triggering rule is a reason."""
    if summary.n_current < policy.min_current_rows:
        return RetrainDecision(
            False, [f"only {summary.n_current} current rows (< {policy.min_current_rows}): inconclusive"]
        )
    reasons = []
    share = len(summary.drifted_features) / max(len(summary.features), 1)
    if share > policy.max_drifted_share:
        reasons.append(
            f"{len(summary.drifted_features)}/{len(summary.features)} features drifted "
            f"({share:.0%} > {policy.max_drifted_share:.0%}): {', '.join(summary.drifted_features[:10])}"
        )
    shifted = {f: v for f, v in summary.psi.items() if v > policy.max_psi}
    for name, value in sorted(shifted.items(), key=lambda kv: -kv[1]):
        reasons.append(f"PSI of {name} is {value:.3f} (> {policy.max_psi})")
    return RetrainDecision(bool(reasons), reasons)
