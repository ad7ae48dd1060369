"""Shadow and A/B reports: per-arm metrics and significance tests on approval rate and score distribution.

A shadow run compares the challenger with the champion on the *same* requests (mirrored traffic); an A/B test
compares two disjoint, sticky groups of applicants. Either way the report gives each arm's volume, error rate,
approval / decline rates, PD quantiles and latency, a two-proportion z-test on the approval rate, a two-sample
Kolmogorov-Smirnov test and the PSI (with its critical value) on the score distribution, and a verdict.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from creditops.deploy import judges
from creditops.deploy.analysis import ArmWindow


def arm_metrics(arm: ArmWindow) -> dict[str, Any]:
    """Volume, errors, decision rates, PD quantiles and median latency of one arm."""
    n = arm.answered
    scores = np.asarray(arm.scores, dtype=float)
    q = np.quantile(scores, [0.1, 0.5, 0.9]).tolist() if n else [None] * 3
    return {
        "requests": arm.requests,
        "rows": n,
        "error_rate": arm.errors / arm.requests if arm.requests else None,
        "approval_rate": arm.approved / n if n else None,
        "decline_rate": arm.declined / n if n else None,
        "pd_mean": float(scores.mean()) if n else None,
        "pd_p10_p50_p90": q,
        "latency_ms_p50": float(np.median(arm.latencies_ms)) if arm.latencies_ms else None,
    }


def compare_arms(
    challenger: ArmWindow, champion: ArmWindow, *, alpha: float = 0.01, psi_threshold: float = 0.1
) -> dict[str, Any]:
    """The report: both arms' metrics, the tests, and ``significant_difference`` / ``verdict``."""
    report: dict[str, Any] = {"champion": arm_metrics(champion), "challenger": arm_metrics(challenger)}
    tests: dict[str, Any] = {}
    if challenger.answered and champion.answered:
        p = judges.two_proportion_p(
            challenger.approved, challenger.answered, champion.approved, champion.answered
        )
        diff = challenger.approved / challenger.answered - champion.approved / champion.answered
        tests["approval_rate"] = {"diff": diff, "p_value": p, "significant": p < alpha}
        ks = stats.ks_2samp(challenger.scores, champion.scores)
        tests["score_ks"] = {
            "statistic": float(ks.statistic),
            "p_value": float(ks.pvalue),
            "significant": ks.pvalue < alpha,
        }
        verdict = judges.score_psi(
            challenger.scores, champion.scores, threshold=psi_threshold, alpha=alpha, min_samples=1
        )
        tests["score_psi"] = {"psi": verdict.value, "critical": verdict.critical, "breach": verdict.failed}
    report["tests"] = tests
    report["alpha"] = alpha
    significant = any(t.get("significant") or t.get("breach") for t in tests.values())
    report["significant_difference"] = significant
    if not tests:
        report["verdict"] = "no data in one of the arms"
    elif significant:
        report["verdict"] = "the arms differ significantly (see tests)"
    else:
        report["verdict"] = f"no significant difference at alpha={alpha}"
    return report
