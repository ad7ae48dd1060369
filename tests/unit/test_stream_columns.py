"""The stream's Columns: one length, frames as batch feature tables have them, concatenation in order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from creditops.streaming.columns import Columns, as_frame


def test_columns_of_unequal_lengths_are_refused():
    with pytest.raises(ValueError, match=r"one length, got \[2, 3\]"):
        Columns({"applicant_id": np.array([1, 2, 3]), "amount": np.array([1.0, 2.0])})


def test_columns_round_trip_a_frame_and_concatenate_in_order():
    frame = pd.DataFrame(
        {
            "applicant_id": np.array([7, 8], dtype=np.int64),
            "event_timestamp": pd.to_datetime(
                ["2026-01-01T00:00:00.000000001", "2026-02-01T00:00:00.000000000"], utc=True
            ),
            "amount": [1.5, np.nan],
        }
    )
    rows = Columns.of(frame)
    assert len(rows) == 2 and rows.columns == list(frame.columns)
    assert rows["event_timestamp"].dtype == np.dtype("datetime64[ns]")
    pd.testing.assert_frame_equal(rows.frame(), frame)
    assert as_frame(frame) is frame
    both = Columns.concat([rows, Columns.of(frame.iloc[::-1].reset_index(drop=True))])
    assert both["applicant_id"].tolist() == [7, 8, 8, 7] and len(Columns.concat([])) == 0
