"""Event times as int64 UTC nanoseconds, the one conversion the feature code and the stores share."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def utc_ns(ts: Any) -> np.ndarray:
    """Nanoseconds since the epoch, UTC (naive = UTC), whatever the column's resolution.

    A column already of datetimes is converted directly: ``pd.to_datetime`` would scan it value by value,
    which costs more than the features themselves on a stream batch's few rows. Only text is parsed.
    """
    if isinstance(ts, np.ndarray) and ts.dtype == "datetime64[ns]":  # naive = UTC: the values are the answer
        return ts.view(np.int64)
    if pd.api.types.is_datetime64_any_dtype(ts):
        index = pd.DatetimeIndex(ts)
        return (index.tz_convert("UTC") if index.tz is not None else index).as_unit("ns").asi8
    return pd.DatetimeIndex(pd.to_datetime(ts, utc=True)).as_unit("ns").asi8
