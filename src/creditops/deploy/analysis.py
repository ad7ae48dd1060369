"""What one analysis window holds per arm, and the judges run on it (:func:`analyse`).

The router (local target) or a metrics source (Kubernetes target) fills an :class:`ArmWindow` per arm; the
controller only sees these numbers, so it is the same for both targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from creditops.config import CanaryConfig
from creditops.deploy import judges
from creditops.deploy.judges import Verdict


@dataclass
class ArmWindow:
    """Observations of one arm (champion, canary, shadow, A/B arm) over one analysis window.

    Attributes:
        requests: Requests routed to the arm (rows, for batch requests).
        errors: Requests that failed on this arm (5xx, transport error, timeout).
        latencies_ms: Per-request latency.
        scores: PD of every answered row.
        approved: Rows decided ``approve``.
        declined: Rows decided ``decline``.
        audited: Audit records of the arm over the whole rollout (``-1``: not counted).
        audit_answers: Rows the arm answered over the whole rollout, read before counting ``audited``.
        audit_in_flight: Rows answered or in flight after counting, beyond ``audit_answers``.
        unmeasured: Judges the source has no data for (``error_rate``, ``latency``, ``audit``), with why:
            they report ``inconclusive`` with that detail instead of judging empty lists (the Kubernetes
            source without Prometheus).
    """

    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    approved: int = 0
    declined: int = 0
    audited: int = -1
    audit_answers: int = -1
    audit_in_flight: int = 0
    unmeasured: dict[str, str] = field(default_factory=dict)

    @property
    def answered(self) -> int:
        """Rows answered (one PD per answered row)."""
        return len(self.scores)


def analyse(
    canary: ArmWindow, champion: ArmWindow, cfg: CanaryConfig, *, ready: tuple[bool, str] = (True, "")
) -> list[Verdict]:
    """Run every judge on the window: readiness, errors, latency, score PSI, approval/decline shift, audit.

    The statistical judges test at ``cfg.look_alpha``: the window is looked at again at every check.
    """
    unmeasured = {**champion.unmeasured, **canary.unmeasured}
    verdicts = [
        judges.readiness(*ready),
        _unmeasured("error_rate", cfg.max_error_rate, canary.unmeasured)
        or judges.error_rate(
            canary.errors, canary.requests, max_rate=cfg.max_error_rate, min_requests=cfg.min_requests
        ),
        _unmeasured("latency", cfg.max_latency_ratio, unmeasured)
        or judges.latency(
            canary.latencies_ms,
            champion.latencies_ms,
            max_ratio=cfg.max_latency_ratio,
            alpha=cfg.look_alpha,
            min_samples=cfg.min_latency_samples,
        ),
        judges.score_psi(canary.scores, champion.scores, threshold=cfg.psi_threshold, alpha=cfg.look_alpha),
        judges.approval_shift(
            canary.approved,
            canary.answered,
            champion.approved,
            champion.answered,
            max_diff=cfg.max_approval_shift,
            alpha=cfg.look_alpha,
        ),
        judges.approval_shift(
            canary.declined,
            canary.answered,
            champion.declined,
            champion.answered,
            max_diff=cfg.max_approval_shift,
            alpha=cfg.look_alpha,
            label="decline",
        ),
    ]
    if canary.audited >= 0:
        verdicts.append(
            _unmeasured("audit", 0.0, canary.unmeasured)
            or judges.audit_completeness(canary.audit_answers, canary.audited, canary.audit_in_flight)
        )
    return verdicts


def _unmeasured(name: str, threshold: float, unmeasured: dict[str, str]) -> Verdict | None:
    """An ``inconclusive`` verdict naming why ``name`` was not measured, or None when it was."""
    if name not in unmeasured:
        return None
    return Verdict(name, "inconclusive", float("nan"), threshold, unmeasured[name])
