"""Contract-driven validation and encoding: raw values as a user has them -> the model's float32 matrix.

One policy for every path (a request's records, a batch file, rows read from the online store by id):

* a numeric field is a number or missing (``null`` / NaN): XGBoost routes missing values natively and
  the model was trained with them (e.g. an undeclared income);
* a categorical field is one of the contract's categories (``"car"``; ``1``, ``1.0`` and ``"1"`` are the
  same category) or missing (all of its one-hot columns 0, as at training); anything else is refused,
  naming the field and the allowed values;
* every model column lies inside :meth:`FeatureContract.bounds` (the declared range, closed by float32's
  largest finite value, so a finite number too large for the model's float32 input is refused instead of
  becoming inf).

:meth:`Encoder.encode_records` is the low-latency row-wise front (a few records), :meth:`Encoder.encode_frame`
the columnar one (a batch chunk: bad rows are reported, not raised); both end in the same range check
(:meth:`Encoder.violations`), which by-id rows get too (:meth:`Encoder.check_matrix`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd

from creditops.features.contract import FeatureContract
from creditops.features.spec import category_label

__all__ = ["Encoder", "RequestError", "category_label"]

_PLAIN_NUMBERS = (float, int)
_MAX_ALLOWED_SHOWN = 20


class RequestError(ValueError):
    """A scoring request is invalid; ``field`` names the offending field(s), ``row`` the record index.

    Servers map it to HTTP 400/422 with ``str(error)`` as the message.
    """

    def __init__(self, field: str, message: str, row: int | None = None) -> None:
        self.field = field
        self.message = message
        self.row = row
        where = f"row {row}: " if row is not None else ""
        super().__init__(f"{where}{message}")


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


class Encoder:
    """Validates and encodes raw values for one :class:`FeatureContract` (build once per model).

    Args:
        contract: The model's feature contract (from the bundle manifest).
    """

    def __init__(self, contract: FeatureContract) -> None:
        self.contract = contract
        self.features = list(contract.features)
        self.fields = list(contract.raw_fields)
        self._field_set = frozenset(self.fields)
        index = {f: j for j, f in enumerate(self.features)}
        self.numeric = [(f, index[f]) for f in self.fields if f not in contract.encodings]
        self.categorical = {
            src: {cat: index[col] for cat, col in mapping.items()}
            for src, mapping in contract.encodings.items()
        }
        bounds = np.array([contract.bounds(f) for f in self.features], dtype=np.float64).reshape(-1, 2)
        self.low = np.ascontiguousarray(bounds[:, 0])
        self.high = np.ascontiguousarray(bounds[:, 1])
        self._template = np.full(len(self.features), np.nan)
        for mapping in self.categorical.values():
            self._template[list(mapping.values())] = 0.0

    # -- messages -----------------------------------------------------------------------------------------
    def allowed(self, field: str) -> str:
        """The categories of a categorical field, for error messages."""
        cats = list(self.categorical[field])
        shown = ", ".join(repr(c) for c in cats[:_MAX_ALLOWED_SHOWN])
        return shown + (f" ... ({len(cats)} in all)" if len(cats) > _MAX_ALLOWED_SHOWN else "")

    def _range_error(self, row: int, j: int, value: float) -> RequestError:
        f = self.features[j]
        field = self.contract.one_hot[f][0] if f in self.contract.one_hot else f
        return RequestError(
            field, f"{f}={value:g} outside valid range [{self.low[j]:g}, {self.high[j]:g}]", row
        )

    # -- the one range policy -----------------------------------------------------------------------------
    def violations(self, M: np.ndarray) -> np.ndarray:
        """Boolean (n, n_features): value outside its bounds (missing = NaN is never a violation)."""
        with np.errstate(invalid="ignore"):
            return (M < self.low) | (M > self.high)

    def check_matrix(self, M: np.ndarray) -> np.ndarray:
        """Range-check a float64 model matrix (e.g. rows read by id) and return it as float32.

        Raises:
            RequestError: the first value outside its bounds, naming the field and row.
        """
        M = np.asarray(M, dtype=np.float64)
        bad = self.violations(M)
        if bad.any():
            r, j = np.argwhere(bad)[0]
            raise self._range_error(int(r), int(j), float(M[r, j]))
        return np.ascontiguousarray(M, dtype=np.float32)

    # -- row-wise front (requests) ------------------------------------------------------------------------
    def encode_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Validate request records (raw field -> value) and return the float32 model matrix.

        Raises:
            RequestError: naming the field(s) and the row: missing fields (all of them), unknown fields,
                a non-number for a numeric field, an unknown category (with the allowed values), a value
                out of range.
        """
        if (
            isinstance(records, Mapping)
            or not isinstance(records, Sequence)
            or isinstance(records, str | bytes)
        ):
            raise RequestError("instances", "expected a list of records (objects of field -> value)")
        if not records:
            raise RequestError("instances", "no records to score")
        n_fields = len(self.fields)
        M = np.tile(self._template, (len(records), 1))
        for i, rec in enumerate(records):
            if not isinstance(rec, Mapping):
                raise RequestError("instances", f"record is a {_type_name(rec)}, expected an object", i)
            if len(rec) != n_fields or rec.keys() != self._field_set:
                missing = [f for f in self.fields if f not in rec]
                if missing:
                    raise RequestError(", ".join(missing), f"missing field(s): {', '.join(missing)}", i)
                extra = sorted(str(k) for k in rec if k not in self._field_set)
                raise RequestError(", ".join(extra), f"unknown field(s): {', '.join(extra)}", i)
            row = M[i]
            for f, j in self.numeric:
                v = rec[f]
                if type(v) in _PLAIN_NUMBERS:
                    row[j] = v
                elif v is None:
                    continue
                elif isinstance(v, bool) or not isinstance(v, Real):
                    raise RequestError(f, f"{f} must be a number or null, got {_type_name(v)} {v!r}"[:200], i)
                else:
                    row[j] = float(v)
            for src, mapping in self.categorical.items():
                v = rec[src]
                if v is None:
                    continue
                j = mapping.get(category_label(v)) if not isinstance(v, bool | list | dict) else None
                if j is None:
                    raise RequestError(
                        src, f"{src}: unknown category {v!r}"[:120] + f"; allowed: {self.allowed(src)}", i
                    )
                row[j] = 1.0
        return self.check_matrix(M)

    # -- columnar front (batch) ---------------------------------------------------------------------------
    def missing_columns(self, columns: Sequence[str]) -> list[str]:
        """Fields a frame lacks (a categorical may come raw or as all of its one-hot columns)."""
        have = set(columns)
        out = []
        for f in self.fields:
            if f in have:
                continue
            if f in self.categorical and all(self.features[j] in have for j in self.categorical[f].values()):
                continue
            out.append(f)
        return out

    def encode_frame(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Encode a frame of raw fields (or of the model's columns) without raising on bad rows.

        Returns:
            ``(M, bad, reasons)``: the float32 model matrix of every row, a boolean mask of rows that break
            the policy, and one ``"; "``-joined reason per bad row (in row order).

        Raises:
            RequestError: a field is absent from the frame (all named).
        """
        missing = self.missing_columns(list(frame.columns))
        if missing:
            raise RequestError(", ".join(missing), f"missing field(s): {', '.join(missing)}")
        n = len(frame)
        M = np.tile(self._template, (n, 1)) if n else np.empty((0, len(self.features)))
        problems: list[tuple[np.ndarray, str]] = []
        numeric = list(self.numeric)
        for src, mapping in self.categorical.items():
            if src not in frame.columns:  # already one-hot encoded: range-checked as 0/1 below
                numeric += [(self.features[j], j) for j in mapping.values()]
                continue
            col = frame[src]
            present = col.notna().to_numpy()
            labels = col.map(category_label, na_action="ignore").to_numpy(dtype=object)
            known = np.zeros(n, bool)
            for cat, j in mapping.items():
                hit = labels == cat
                M[:, j] = hit
                known |= hit
            problems.append((present & ~known, f"{src}: unknown category (allowed: {self.allowed(src)})"))
        for f, j in numeric:
            col = frame[f]
            if pd.api.types.is_bool_dtype(col.dtype):
                problems.append((np.ones(n, bool), f"{f}: boolean, not a number"))
                continue
            if col.dtype == object:  # mixed column: a string or boolean is refused as on the request path
                plain = np.fromiter((v is None or type(v) in _PLAIN_NUMBERS for v in col), bool, n)
                col = col.where(plain, None)
                problems.append((~plain, f"{f}: not a number"))
            values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            problems.append((np.isnan(values) & col.notna().to_numpy(), f"{f}: not a number"))
            M[:, j] = values
        out = self.violations(M)
        for j in np.flatnonzero(out.any(axis=0)):
            f = self.features[j]
            problems.append((out[:, j], f"{f}: outside valid range [{self.low[j]:g}, {self.high[j]:g}]"))
        bad = np.zeros(n, bool)
        for mask, _ in problems:
            bad |= mask
        reasons: list[str] = []
        if bad.any():
            per_row: dict[int, list[str]] = {int(r): [] for r in np.flatnonzero(bad)}
            for mask, text in problems:
                for r in np.flatnonzero(mask):
                    per_row[int(r)].append(text)
            reasons = ["; ".join(v) for v in per_row.values()]
        M[bad] = 0.0  # never scored; keeps the float32 cast finite
        return np.ascontiguousarray(M, dtype=np.float32), bad, reasons
