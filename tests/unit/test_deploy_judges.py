"""Canary analysis judges: each passes on input built to pass and fails on input built to fail."""

from __future__ import annotations

import numpy as np
import pytest

from creditops.deploy import judges


def test_error_rate_passes_fails_and_waits_for_data() -> None:
    assert judges.error_rate(0, 500).status == "pass"
    assert judges.error_rate(4, 500, max_rate=0.01).status == "pass"
    assert judges.error_rate(30, 500, max_rate=0.01).status == "fail"
    assert judges.error_rate(0, 5).status == "inconclusive"
    # five errors in five requests is a breach already: no need to wait for min_requests
    assert judges.error_rate(5, 5).status == "fail"
    with pytest.raises(ValueError, match="errors <= total"):
        judges.error_rate(3, 2)


def test_latency_rank_test_fails_a_slow_canary_only() -> None:
    rng = np.random.default_rng(0)
    champion = rng.lognormal(np.log(10), 0.2, 300)
    same = rng.lognormal(np.log(10), 0.2, 300)
    slow = rng.lognormal(np.log(100), 0.2, 300)
    assert judges.latency(same, champion).status == "pass"
    verdict = judges.latency(slow, champion)
    assert verdict.status == "fail" and verdict.value > 5 and verdict.p_value < 1e-10
    # significantly but immaterially slower (x1.1): passes
    assert judges.latency(champion * 1.1, champion).status == "pass"
    assert judges.latency(slow[:5], champion).status == "inconclusive"


def test_psi_critical_value_matches_the_null_distribution() -> None:
    rng = np.random.default_rng(1)
    n = m = 200
    crit = judges.psi_critical_value(n, m, bins=10, alpha=0.05)
    null = []
    for _ in range(400):
        a, b = rng.normal(size=n), rng.normal(size=m)
        null.append(judges.psi(a, b, bins=10))
    # the chi-square approximation should put ~5 % of null PSIs above the critical value
    assert 0.01 < np.mean(np.array(null) > crit) < 0.12


def test_score_psi_fails_only_above_threshold_and_critical_value() -> None:
    rng = np.random.default_rng(2)
    champion = rng.beta(2, 8, 2000)
    same = rng.beta(2, 8, 2000)
    shifted = np.clip(champion + 0.15, 0, 1)
    assert judges.score_psi(same, champion).status == "pass"
    verdict = judges.score_psi(shifted, champion)
    assert verdict.status == "fail" and verdict.value > verdict.critical and verdict.value > 0.1
    # a tiny window: PSI of noise exceeds 0.1 easily, but not the critical value -> not a fail
    small = judges.score_psi(rng.beta(2, 8, 200), rng.beta(2, 8, 200), threshold=0.05)
    assert 0.05 < small.value < small.critical and small.status == "pass"
    assert judges.score_psi(same[:10], champion).status == "inconclusive"


def test_approval_shift_two_proportion_test() -> None:
    assert judges.approval_shift(600, 1000, 610, 1000).status == "pass"
    verdict = judges.approval_shift(450, 1000, 610, 1000)
    assert verdict.status == "fail" and verdict.p_value < 1e-6
    # material but not significant on a small sample
    assert judges.approval_shift(30, 50, 36, 50, max_diff=0.05).status == "pass"
    assert judges.approval_shift(3, 10, 5, 10).status == "inconclusive"
    assert judges.two_proportion_p(0, 10, 0, 10) == 1.0


def test_audit_completeness_and_readiness() -> None:
    assert judges.audit_completeness(100, 100).status == "pass"
    assert judges.audit_completeness(100, 99).status == "fail"
    assert judges.audit_completeness(100, 101).status == "fail"
    # a request in flight may already be audited, but no more records than answers + in flight
    assert judges.audit_completeness(100, 103, in_flight=5).status == "pass"
    assert judges.audit_completeness(100, 106, in_flight=5).status == "fail"
    assert judges.readiness(True).status == "pass"
    assert judges.readiness(False, "latestCreatedRevision != latestReadyRevision").failed
    assert judges.readiness(False).to_dict()["p_value"] is None
