"""Fairness of served decisions per window, by protected group.

Protected attributes are joined from the application records by applicant id: they are never sent to the
model and never in the audited inputs. Per attribute and group: decisions, approval rate, the adverse impact
ratio (the group's approval rate over the most-approved group's; below 0.80 is the "four-fifths" screening
signal of US lending practice, not a legal threshold) and, once outcomes have matured, the approval rate among
applicants who did not default (equal opportunity: the true-positive rate of "approve" for good applicants),
with its gap to the best-treated group.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def fairness_by_group(
    approved: np.ndarray,
    groups: pd.DataFrame,
    defaulted: np.ndarray | None = None,
    attributes: Sequence[str] | None = None,
    min_group: int = 30,
) -> list[dict[str, Any]]:
    """Approval rate, adverse impact ratio and equal-opportunity gap per group of each protected attribute.

    Args:
        approved: 1 where the decision was approve.
        groups: Protected attributes, one row per decision (same order), one column per attribute; missing
            values form no group.
        defaulted: Matured outcomes per decision (NaN = not matured), for equal opportunity.
        attributes: Columns of ``groups`` to evaluate (default: all).
        min_group: Groups with fewer decisions are reported but left out of the ratios (too noisy).

    Returns:
        One row per (attribute, group): attribute, group, n, approval_rate, air, n_good, good_approval_rate,
        eo_gap (best good-approval rate minus this group's; NaN without matured outcomes).
    """
    approved = np.asarray(approved, dtype=float)
    outcome = np.full(approved.size, np.nan) if defaulted is None else np.asarray(defaulted, dtype=float)
    rows: list[dict[str, Any]] = []
    for attr in attributes or list(groups.columns):
        frame = pd.DataFrame(
            {"g": groups[attr].astype("string").to_numpy(), "a": approved, "good": outcome == 0, "y": outcome}
        ).dropna(subset=["g"])
        frame["ga"] = frame["a"].where(frame["good"])
        agg = frame.groupby("g", observed=True).agg(
            n=("a", "size"),
            approval_rate=("a", "mean"),
            n_good=("good", "sum"),
            good_approval_rate=("ga", "mean"),
        )
        big = agg[agg["n"] >= min_group]
        best = big["approval_rate"].max() if len(big) else np.nan
        big_good = agg[agg["n_good"] >= min_group]
        best_good = big_good["good_approval_rate"].max() if len(big_good) else np.nan
        for g, r in agg.iterrows():
            ok = r["n"] >= min_group
            ok_good = r["n_good"] >= min_group
            rows.append(
                {
                    "attribute": attr, "group": str(g), "n": int(r["n"]),
                    "approval_rate": float(r["approval_rate"]),
                    "air": float(r["approval_rate"] / best) if ok and best > 0 else float("nan"),
                    "n_good": int(r["n_good"]),
                    "good_approval_rate": float(r["good_approval_rate"]) if ok_good else float("nan"),
                    "eo_gap": float(best_good - r["good_approval_rate"]) if ok_good else float("nan"),
                }
            )  # fmt: skip
    return rows
