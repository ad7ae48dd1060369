"""The retraining trigger policy: should monitoring start the retraining pipeline now, and why.

A pure function of what monitoring saw and the retraining history, so every decision is reproducible and
each reason is recorded:

* **persistent alerts**: a drift or calibration alert (by fingerprint: same alert, same version, same
  feature or grade) firing in each of the last ``persist_windows`` windows; one bad window is noise;
* **AUC floor**: AUC on matured outcomes below ``auc_floor`` (the seed's rule: 0.78) on at least
  ``min_auc_outcomes`` outcomes;
* **schedule**: ``schedule_days`` since the last retraining (monthly by default);

and two brakes, recorded as blockers: a **cooldown** after the last retraining, and a minimum of **new
labelled outcomes** since it (retraining on the same labels cannot fix anything). Retraining itself is
automatic; promoting its challenger waits for a recorded human approval unless ``auto_promote``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from creditops.config import RetrainingConfig
from creditops.monitoring.alerts import Alert


@dataclass(frozen=True)
class TriggerDecision:
    """Whether to retrain, with every reason for and every blocker against it."""

    retrain: bool
    reasons: list[str] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)
    promotion_requires_approval: bool = True
    decided_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the audit / deployment history)."""
        return asdict(self)


def _key(alert: Alert) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in alert.labels.items() if k != "severity"))


def decide_retraining(
    windows: Sequence[Sequence[Alert]],
    *,
    now: datetime,
    last_retrained_at: datetime | None,
    new_labelled_outcomes: int,
    matured_auc: float | None = None,
    matured_outcomes: int = 0,
    policy: RetrainingConfig | None = None,
) -> TriggerDecision:
    """Apply the trigger policy.

    Args:
        windows: Firing alerts of each monitoring window, oldest first (e.g. per day).
        now: Decision time (timezone-aware).
        last_retrained_at: When the last retraining started (None = never).
        new_labelled_outcomes: Matured outcomes ingested since the last retraining.
        matured_auc: AUC on matured outcomes of the newest window that has them (None = none yet).
        matured_outcomes: Outcomes behind ``matured_auc``.
        policy: Thresholds (default :class:`RetrainingConfig`).

    Returns:
        The decision; ``retrain`` is true when at least one reason holds and nothing blocks.
    """
    p = policy or RetrainingConfig()
    reasons: list[str] = []
    recent = [list(w) for w in windows[-p.persist_windows :]]
    if len(recent) == p.persist_windows:
        persistent = None
        for alerts in recent:
            keys = {_key(a) for a in alerts if a.status == "firing" and a.name in p.persistent_alerts}
            persistent = keys if persistent is None else persistent & keys
        for key in sorted(persistent or ()):
            labels = dict(key)
            detail = ", ".join(f"{k}={v}" for k, v in key if k != "alertname")
            reasons.append(
                f"{labels['alertname']} ({detail}) firing in each of the last {p.persist_windows} windows"
            )
    if matured_auc is not None and matured_outcomes >= p.min_auc_outcomes and matured_auc < p.auc_floor:
        reasons.append(f"AUC on {matured_outcomes} matured outcomes {matured_auc:.3f} < {p.auc_floor}")
    days_since = None if last_retrained_at is None else (now - last_retrained_at).total_seconds() / 86_400
    if p.schedule_days is not None and (days_since is None or days_since >= p.schedule_days):
        reasons.append(
            "scheduled retraining: never retrained"
            if days_since is None
            else f"scheduled retraining: {days_since:.1f} days since the last (every {p.schedule_days:g})"
        )
    blockers: list[str] = []
    if days_since is not None and days_since < p.cooldown_days:
        blockers.append(f"cooldown: last retraining {days_since:.1f} days ago (< {p.cooldown_days:g})")
    if new_labelled_outcomes < p.min_new_outcomes:
        blockers.append(f"only {new_labelled_outcomes} new labelled outcomes (< {p.min_new_outcomes})")
    return TriggerDecision(
        retrain=bool(reasons) and not blockers,
        reasons=reasons,
        blockers=blockers,
        promotion_requires_approval=not p.auto_promote,
        decided_at=now.isoformat(),
    )
