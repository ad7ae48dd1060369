"""Train / validation / test split: random (stratified on the target) or out-of-time (by event time)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from creditops.errors import DataError


@dataclass(frozen=True)
class Split:
    """Three disjoint parts of one frame (original index kept, so rows stay traceable)."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame | None = None

    def sizes(self) -> dict[str, int]:
        """Row counts per part."""
        return {
            "train": len(self.train),
            "valid": len(self.valid),
            "test": 0 if self.test is None else len(self.test),
        }


def split_frame(
    df: pd.DataFrame,
    how: Literal["random", "out_of_time"] = "random",
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 7,
    *,
    target: str = "defaulted",
    time_column: str = "event_timestamp",
) -> Split:
    """Split ``df`` into train, validation and test.

    Args:
        df: the training frame.
        how: ``random`` stratifies on ``target`` so every part has the same default rate; ``out_of_time``
            sorts by ``time_column`` and keeps the oldest rows for training and the newest for test, which is
            how a credit model meets the future.
        fractions: train, valid, test shares; must be positive and sum to 1.
        seed: random seed (random split only).
        target: label column (stratification).
        time_column: event time column (out-of-time split).

    Raises:
        DataError: bad fractions, missing column, or too few rows for three parts.
    """
    if len(fractions) != 3 or min(fractions) <= 0 or not np.isclose(sum(fractions), 1.0):
        raise DataError(f"fractions must be three positive shares summing to 1, got {fractions}")
    if len(df) < 3:
        raise DataError(f"need at least 3 rows to split, got {len(df)}")
    f_train, f_valid, f_test = fractions
    if how == "random":
        if target not in df.columns:
            raise DataError(f"cannot stratify: column {target!r} missing")
        strat = df[target] if df[target].value_counts().min() >= 3 else None
        train, rest = train_test_split(df, train_size=f_train, random_state=seed, stratify=strat)
        strat_rest = rest[target] if strat is not None and rest[target].value_counts().min() >= 2 else None
        valid, test = train_test_split(
            rest, train_size=f_valid / (f_valid + f_test), random_state=seed, stratify=strat_rest
        )
        return Split(train, valid, test)
    if how == "out_of_time":
        if time_column not in df.columns:
            raise DataError(f"out-of-time split needs the time column {time_column!r}")
        ordered = df.sort_values(time_column, kind="stable")
        n = len(ordered)
        cut1 = int(round(n * f_train))
        cut2 = int(round(n * (f_train + f_valid)))
        cut1, cut2 = max(1, min(cut1, n - 2)), max(cut1 + 1, min(cut2, n - 1))
        return Split(ordered.iloc[:cut1], ordered.iloc[cut1:cut2], ordered.iloc[cut2:])
    raise DataError(f"unknown split {how!r}; expected 'random' or 'out_of_time'")
