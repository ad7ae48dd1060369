"""Performance once outcomes mature: discrimination with intervals, calibration back-tests, vintages.

* Discrimination: AUC, Gini (= 2 AUC - 1) and the KS statistic (max TPR - FPR) with percentile bootstrap
  intervals, compared with the initial validation stored in the reference.
* Calibration per score grade (master scale): the Jeffreys test (ECB / EBA practice): with ``k`` defaults out
  of ``n`` the posterior of the default rate is ``Beta(k + 1/2, n - k + 1/2)``; its CDF at the grade's mean
  predicted PD is the one-sided p-value of "the PD is too low". Traffic light: green p >= 5 %, amber
  0.1 % <= p < 5 %, red p < 0.1 %. The exact binomial p-value is reported beside it.
* Hosmer-Lemeshow over PD deciles (chi-square with G - 2 degrees of freedom).
* Vintage curves: cumulative share of a decision month's accounts with an early-delinquency (or default)
  event by months on book, only over months that have been observed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from creditops.monitoring.reference import GRADE_EDGES, GRADES, discrimination, grade_of


def discrimination_with_intervals(
    y: np.ndarray, pd_: np.ndarray, n_boot: int = 200, level: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """AUC, Gini and KS with percentile bootstrap intervals.

    Args:
        y: Outcomes (1 = default).
        pd_: Predicted PDs.
        n_boot: Bootstrap resamples (0 = no intervals).
        level: Interval coverage.
        seed: Resampling seed.

    Returns:
        ``n``, ``defaults``, ``auc``, ``gini``, ``ks`` and ``<metric>_lo`` / ``<metric>_hi``; NaN when only
        one class is present.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(pd_, dtype=float)
    auc, ks = discrimination(y, p)
    out: dict[str, Any] = {
        "n": int(y.size),
        "defaults": int(y.sum()),
        "auc": auc,
        "gini": 2 * auc - 1,
        "ks": ks,
    }
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    if n_boot and not math.isnan(auc):
        aucs, kss = _poisson_bootstrap(y.astype(bool), p, n_boot, seed)
        out.update(
            auc_lo=float(np.quantile(aucs, lo_q)), auc_hi=float(np.quantile(aucs, hi_q)),
            ks_lo=float(np.quantile(kss, lo_q)), ks_hi=float(np.quantile(kss, hi_q)),
        )  # fmt: skip
        out.update(gini_lo=2 * out["auc_lo"] - 1, gini_hi=2 * out["auc_hi"] - 1)
    else:
        for k in ("auc", "gini", "ks"):
            out[f"{k}_lo"] = out[f"{k}_hi"] = float("nan")
    return out


_POISSON1_CDF = np.cumsum(stats.poisson.pmf(np.arange(12), 1.0))[:-1].astype(np.float32)


def _poisson_bootstrap(y: np.ndarray, p: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """AUC and KS of ``n_boot`` Poisson-bootstrap resamples, all at once.

    Each resample weights every row by an independent Poisson(1) count (the large-sample equivalent of
    drawing n rows with replacement), so the rows keep one sort order: per run of tied PDs the resample's
    bad and good weights are summed, and AUC (ties count half) and KS (max gap of the cumulative shares)
    follow from cumulative sums, one matrix operation for all resamples.
    """
    order = np.argsort(p, kind="stable")
    ps, ys = p[order], y[order]
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])
    rng = np.random.default_rng(seed)
    aucs, kss = [], []
    for lo in range(0, n_boot, 50):  # blocks of 50 resamples bound the memory at 50 x n weights
        # Poisson(1) counts by inverting its CDF on uniforms: several times faster than rng.poisson.
        u = rng.random((min(50, n_boot - lo), ps.size), dtype=np.float32)
        w = np.searchsorted(_POISSON1_CDF, u).astype(np.float32)
        bad, good = w * ys, w * ~ys
        if starts.size < ps.size:  # tied PDs: one column per run of ties
            bad = np.add.reduceat(bad, starts, axis=1)
            good = np.add.reduceat(good, starts, axis=1)
        total_bad, total_good = bad.sum(axis=1), good.sum(axis=1)
        cum_good = np.cumsum(good, axis=1)
        below = cum_good - good
        auc = (bad * (below + 0.5 * good)).sum(axis=1) / (total_bad * total_good)
        ks = np.abs(np.cumsum(bad, axis=1) / total_bad[:, None] - cum_good / total_good[:, None]).max(axis=1)
        aucs.append(auc)
        kss.append(ks)
    return np.concatenate(aucs), np.concatenate(kss)


def traffic_light(p_value: float, amber: float = 0.05, red: float = 0.001) -> str:
    """``green`` / ``amber`` / ``red`` for a one-sided calibration p-value."""
    if p_value < red:
        return "red"
    if p_value < amber:
        return "amber"
    return "green"


def calibration_backtest(
    y: np.ndarray, pd_: np.ndarray, amber: float = 0.05, red: float = 0.001
) -> list[dict[str, Any]]:
    """Jeffreys and binomial back-test of realised default rate against mean predicted PD, per grade.

    Args:
        y: Matured outcomes (1 = default).
        pd_: PDs the decisions were made with.
        amber: p-value below which the grade is amber.
        red: p-value below which the grade is red.

    Returns:
        One row per grade with decisions: grade, n, defaults, mean_pd, default_rate, jeffreys_p,
        binomial_p, light, and the 95 % Jeffreys interval of the default rate.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(pd_, dtype=float)
    g = grade_of(p)
    rows = []
    lows = (0.0, *GRADE_EDGES)
    for i, name in enumerate(GRADES):
        mask = g == i
        n = int(mask.sum())
        if n == 0:
            continue
        k = int(y[mask].sum())
        mean_pd = float(p[mask].mean())
        posterior = stats.beta(k + 0.5, n - k + 0.5)
        jeffreys_p = float(posterior.cdf(mean_pd))
        binomial_p = float(stats.binom.sf(k - 1, n, mean_pd))  # P(X >= k) under the predicted PD
        rows.append(
            {
                "grade": name, "pd_low": lows[i], "n": n, "defaults": k, "mean_pd": mean_pd,
                "default_rate": k / n, "jeffreys_p": jeffreys_p, "binomial_p": binomial_p,
                "light": traffic_light(jeffreys_p, amber, red),
                "rate_lo": float(posterior.ppf(0.025)), "rate_hi": float(posterior.ppf(0.975)),
            }
        )  # fmt: skip
    return rows


def hosmer_lemeshow(y: np.ndarray, pd_: np.ndarray, groups: int = 10) -> dict[str, float]:
    """Hosmer-Lemeshow statistic over PD quantile groups and its chi-square(G - 2) p-value."""
    y = np.asarray(y, dtype=float)
    p = np.clip(np.asarray(pd_, dtype=float), 1e-9, 1 - 1e-9)
    order = np.argsort(p, kind="stable")
    chunks = [c for c in np.array_split(order, groups) if c.size]
    stat = 0.0
    for c in chunks:
        n, observed, expected = c.size, y[c].sum(), p[c].sum()
        denom = expected * (1 - expected / n)
        if denom > 0:
            stat += (observed - expected) ** 2 / denom
    dof = max(len(chunks) - 2, 1)
    return {"statistic": float(stat), "dof": float(dof), "p_value": float(stats.chi2.sf(stat, dof))}


def vintage_curves(
    decision_ts: Sequence[Any] | np.ndarray,
    event_ts: Sequence[Any] | np.ndarray,
    as_of: Any,
    months: int = 12,
) -> pd.DataFrame:
    """Cumulative event rate by vintage (decision month) and months on book.

    Args:
        decision_ts: When each account was booked.
        event_ts: When its first early-delinquency (or default) event happened, NaT if none (yet).
        as_of: Observation date: a (vintage, month) cell is shown only if every account of the vintage has
            been on book that long.
        months: Months on book to show (columns 1..months).

    Returns:
        One row per vintage (``YYYY-MM``), columns ``accounts`` and ``mob_1`` .. ``mob_<months>`` (NaN where
        not yet observable).
    """
    booked = pd.to_datetime(pd.Series(decision_ts), utc=True)
    event = pd.to_datetime(pd.Series(event_ts), utc=True)
    as_of = pd.Timestamp(as_of)
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of.tz_convert("UTC")
    vintage = booked.dt.tz_localize(None).dt.to_period("M")
    mob_event = (event - booked).dt.days / 30.4375
    rows = []
    for v, idx in booked.groupby(vintage).groups.items():
        last_booked = booked[idx].max()
        observable = int((as_of - last_booked).days // 30.4375)
        row: dict[str, Any] = {"vintage": str(v), "accounts": len(idx)}
        ev = mob_event[idx].to_numpy(dtype=float)
        for mob in range(1, months + 1):
            row[f"mob_{mob}"] = float(np.mean(ev <= mob)) if mob <= observable else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)
