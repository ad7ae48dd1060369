"""Canary analysis judges: one small pure function per check, each returning a :class:`Verdict`.

Each judge compares the canary with the champion on the same traffic window (the router splits one stream, so
both arms see the same population) and answers ``pass``, ``fail`` or ``inconclusive`` (too few observations
to judge: the controller neither advances nor counts a failure; the progress deadline bounds the wait).

Statistical judges fail only when a difference is both *significant* (a test at ``alpha``) and *material*
(above a business threshold): on a busy endpoint a test alone flags differences nobody cares about, and on a
quiet one a threshold alone flags noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

from creditops.monitoring.drift import psi

Status = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Verdict:
    """Outcome of one judge on one analysis window.

    Attributes:
        name: The judge (``error_rate``, ``latency``, ``score_psi``, ``approval_shift``, ``audit``...).
        status: ``pass``, ``fail`` or ``inconclusive``.
        value: The measured statistic (rate, median ratio, PSI, rate difference, missing records...).
        threshold: The business limit it was held to.
        detail: One line a person can read.
        p_value: The test's p-value where a test was run (NaN otherwise).
        critical: The statistic's critical value where one applies (PSI), NaN otherwise.
    """

    name: str
    status: Status
    value: float
    threshold: float
    detail: str
    p_value: float = float("nan")
    critical: float = float("nan")

    @property
    def failed(self) -> bool:
        """True when the judge found a breach."""
        return self.status == "fail"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (NaN as None)."""
        return {k: (None if isinstance(v, float) and v != v else v) for k, v in asdict(self).items()}


def error_rate(errors: int, total: int, *, max_rate: float = 0.01, min_requests: int = 20) -> Verdict:
    """Share of canary requests that failed (5xx, transport errors, timeouts), held to ``max_rate``.

    Args:
        errors: Failed canary requests in the window.
        total: All canary requests in the window.
        max_rate: Largest acceptable error rate (Flagger's request-success-rate >= 99 % is 0.01).
        min_requests: Fewer requests than this -> inconclusive, unless the errors alone already exceed the
            limit over ``min_requests`` (five errors out of five fail at once).
    """
    if errors < 0 or total < errors:
        raise ValueError(f"need 0 <= errors <= total, got errors={errors}, total={total}")
    rate = errors / total if total else 0.0
    detail = f"{errors}/{total} failed ({rate:.2%}, limit {max_rate:.2%})"
    if errors > max_rate * max(total, min_requests):
        return Verdict("error_rate", "fail", rate, max_rate, detail)
    if total < min_requests:
        return Verdict("error_rate", "inconclusive", rate, max_rate, detail + f"; < {min_requests} requests")
    return Verdict("error_rate", "pass", rate, max_rate, detail)


def latency(
    canary_ms: Sequence[float],
    champion_ms: Sequence[float],
    *,
    max_ratio: float = 1.5,
    alpha: float = 0.01,
    min_samples: int = 20,
) -> Verdict:
    """Canary latency against the champion's: a one-sided Mann-Whitney U test (as Kayenta judges metrics).

    Fails when the canary is significantly slower (``p < alpha``) and its median exceeds the champion's by
    more than ``max_ratio``.
    """
    c = np.asarray(canary_ms, dtype=float)
    b = np.asarray(champion_ms, dtype=float)
    if c.size < min_samples or b.size < min_samples:
        return Verdict(
            "latency", "inconclusive", float("nan"), max_ratio, f"{c.size}/{b.size} samples < {min_samples}"
        )
    ratio = float(np.median(c) / max(np.median(b), 1e-9))
    p = float(stats.mannwhitneyu(c, b, alternative="greater").pvalue)
    detail = (
        f"median {np.median(c):.1f} ms vs champion {np.median(b):.1f} ms (x{ratio:.2f}, limit x{max_ratio}),"
        f" Mann-Whitney p={p:.2g}"
    )
    status: Status = "fail" if p < alpha and ratio > max_ratio else "pass"
    return Verdict("latency", status, ratio, max_ratio, detail, p_value=p)


def psi_critical_value(n: int, m: int, bins: int, alpha: float = 0.01) -> float:
    """PSI value exceeded with probability ``alpha`` when both samples come from one distribution.

    Under no drift ``PSI ~ (1/N + 1/M) chi2(B - 1)`` asymptotically (PSI is a symmetrised divergence whose
    scaled value is a chi-square statistic), so small windows need a larger PSI to mean anything.
    """
    if n < 1 or m < 1 or bins < 2:
        raise ValueError(f"need n, m >= 1 and bins >= 2, got n={n}, m={m}, bins={bins}")
    return float((1.0 / n + 1.0 / m) * stats.chi2.ppf(1.0 - alpha, bins - 1))


def score_psi(
    canary_scores: Sequence[float],
    champion_scores: Sequence[float],
    *,
    threshold: float = 0.1,
    bins: int = 10,
    alpha: float = 0.01,
    min_samples: int = 200,
) -> Verdict:
    """PSI of the canary's scores (PD) against the champion's on the same traffic, with its critical value.

    Fails only when the PSI is above both the business ``threshold`` and the sample-size critical value
    (:func:`psi_critical_value`), so a small window cannot fail a good model on noise. Below ~200 scores per
    arm the chi-square approximation is too loose (measured: ~12 % false alarms at 60 per arm and
    ``alpha=0.01``, ~1 % at 200), hence ``min_samples``.
    """
    c = np.asarray(canary_scores, dtype=float)
    b = np.asarray(champion_scores, dtype=float)
    if c.size < min_samples or b.size < min_samples:
        return Verdict(
            "score_psi", "inconclusive", float("nan"), threshold, f"{c.size}/{b.size} scores < {min_samples}"
        )
    value = psi(b, c, bins=bins)
    n_bins = int(np.unique(np.quantile(b[~np.isnan(b)], np.linspace(0, 1, bins + 1))[1:-1]).size + 1)
    critical = psi_critical_value(c.size, b.size, max(n_bins, 2), alpha)
    detail = f"PSI {value:.4f} (threshold {threshold}, critical {critical:.4f} at n={c.size}/{b.size})"
    status: Status = "fail" if value > threshold and value > critical else "pass"
    return Verdict("score_psi", status, value, threshold, detail, critical=critical)


def approval_shift(
    canary_approved: int,
    canary_total: int,
    champion_approved: int,
    champion_total: int,
    *,
    max_diff: float = 0.05,
    alpha: float = 0.01,
    min_samples: int = 50,
    label: str = "approval",
) -> Verdict:
    """Shift of the approval (or decline) rate: a two-sided two-proportion z-test plus a material limit.

    Fails when ``|p_canary - p_champion| > max_diff`` and the pooled z-test rejects equality at ``alpha``.
    """
    name = f"{label}_shift"
    for k, n in ((canary_approved, canary_total), (champion_approved, champion_total)):
        if k < 0 or n < k:
            raise ValueError(f"need 0 <= count <= total, got {k}/{n}")
    if canary_total < min_samples or champion_total < min_samples:
        return Verdict(
            name, "inconclusive", float("nan"), max_diff, f"{canary_total}/{champion_total} < {min_samples}"
        )
    p1, p2 = canary_approved / canary_total, champion_approved / champion_total
    diff, p = p1 - p2, two_proportion_p(canary_approved, canary_total, champion_approved, champion_total)
    detail = f"{label} rate {p1:.1%} vs champion {p2:.1%} (diff {diff:+.1%}, limit {max_diff:.0%}), p={p:.2g}"
    status: Status = "fail" if abs(diff) > max_diff and p < alpha else "pass"
    return Verdict(name, status, diff, max_diff, detail, p_value=p)


def two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (1.0 when both rates are 0 or 1)."""
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (k1 / n1 - k2 / n2) / se
    return float(2 * stats.norm.sf(abs(z)))


def audit_completeness(answers: int, records: int, in_flight: int = 0) -> Verdict:
    """Every answer has its audit record and no record lacks an answer: ``records == answers``.

    A request still in flight may already be audited (the predictor audits before it answers), so with
    ``in_flight`` rows outstanding when the records were counted,
    ``answers <= records <= answers + in_flight`` passes; anything else fails.
    """
    missing = answers - records
    extra = records - answers - in_flight
    detail = f"{records} audit records for {answers} answers" + (
        f" (+{in_flight} in flight)" if in_flight else ""
    )
    status: Status = "pass" if missing <= 0 and extra <= 0 else "fail"
    return Verdict("audit", status, float(max(missing, extra, 0)), 0.0, detail)


def readiness(ready: bool, detail: str = "") -> Verdict:
    """The canary endpoint reports ready (model loaded; on Kubernetes: latest created == latest ready)."""
    return Verdict(
        "ready", "pass" if ready else "fail", float(ready), 1.0, detail or ("ready" if ready else "not ready")
    )
