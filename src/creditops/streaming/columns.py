"""A stream batch's feature rows as named numpy columns: what the online write needs, without a frame.

A batch touches a few applicants; building a pandas frame per view and taking it apart again column by
column in the online writer cost more than computing the features. :class:`Columns` holds the columns the
feature functions return and answers the two questions the writers ask of a table (``len(table)`` rows,
``table[name]`` a column). Frames are built where they are worth it: the offline write, once for the rows of
all batches since the last flush (:meth:`Columns.concat`), and a caller that asks for
:attr:`~creditops.streaming.consumer.BatchOutcome.tables`.

Timestamps are ``datetime64[ns]`` arrays in UTC; :meth:`Columns.frame` makes them tz-aware, as batch
feature tables are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from creditops.timestamps import utc_ns


class Columns:
    """Rows of one table as named 1-D numpy arrays of one length (column order kept).

    Args:
        data: column name -> values; every array has the same length.
    """

    __slots__ = ("_rows", "data")

    def __init__(self, data: Mapping[str, np.ndarray]):
        self.data = dict(data)
        lengths = {len(v) for v in self.data.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of one table have one length, got {sorted(lengths)}")
        self._rows = lengths.pop() if lengths else 0

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Columns:
        """The columns of ``frame`` (datetime columns as UTC ``datetime64[ns]``)."""
        return cls(
            {
                c: utc_ns(frame[c]).view("datetime64[ns]")
                if pd.api.types.is_datetime64_any_dtype(frame[c])
                else frame[c].to_numpy()
                for c in frame.columns
            }
        )

    @classmethod
    def concat(cls, parts: Sequence[Columns]) -> Columns:
        """The rows of ``parts`` one after the other (the columns of the first, in its order)."""
        if not parts:
            return cls({})
        return cls({c: np.concatenate([p.data[c] for p in parts]) for c in parts[0].data})

    def __len__(self) -> int:
        return self._rows

    def __getitem__(self, name: str) -> np.ndarray:
        return self.data[name]

    @property
    def columns(self) -> list[str]:
        """Column names, in order."""
        return list(self.data)

    def frame(self) -> pd.DataFrame:
        """The rows as a frame (timestamps tz-aware UTC)."""
        return pd.DataFrame(
            {
                c: pd.DatetimeIndex(v).tz_localize("UTC") if v.dtype.kind == "M" else v
                for c, v in self.data.items()
            }
        )


def as_frame(table: pd.DataFrame | Columns) -> pd.DataFrame:
    """``table`` as a frame (a frame is returned as it is)."""
    return table.frame() if isinstance(table, Columns) else table
