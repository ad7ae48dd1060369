"""Reason-code mapping: TreeSHAP contributions -> adverse-action reasons, per raw field of the contract.

The rules (ECOA / Reg B adverse-action notices state why an application was scored as riskier):

* only **adverse** contributions become reasons: a field whose contribution raised the PD (> 0);
* reasons are about what the applicant gave, per raw field: the contributions of a categorical's one-hot
  columns are summed into the field's own (Shapley values are additive over a group of columns), and the
  reason names the field and the category the applicant holds (``purpose: car``). A one-hot column the
  applicant does not hold (value 0) is therefore never named as a reason;
* the text is the contract's (per feature, per category for categoricals), or an honest generic fallback.

The contributions themselves come from :mod:`creditops.explain` (the TreeSHAP engine).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from creditops.features.contract import FeatureContract

__all__ = ["ReasonCode", "ReasonMap", "top_reasons"]


@dataclass(frozen=True, slots=True)
class ReasonCode:
    """One adverse-action reason: a field whose value pushed the probability of default up.

    Attributes:
        feature: The raw field (a numeric feature, or a categorical's source column).
        value: The applicant's value: a number, the category held, or None when missing.
        contribution: Its (summed) TreeSHAP contribution in log-odds, always > 0.
        reason: Plain-language reason text.
    """

    feature: str
    value: float | str | None
    contribution: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "feature": self.feature,
            "value": self.value,
            "contribution": self.contribution,
            "reason": self.reason,
        }


def top_reasons(contribs: np.ndarray, top_k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``top_k`` largest positive contributions per row (vectorised).

    Args:
        contribs: (n_rows, n_fields) contributions WITHOUT the bias column.
        top_k: reasons per row.

    Returns:
        ``(idx, val)`` both (n_rows, k) sorted by decreasing contribution; ``idx`` is -1 where fewer than k
        fields raised the PD (only contributions > 0 are reasons).
    """
    n, p = contribs.shape
    k = max(0, min(top_k, p))
    if n == 0 or k == 0:
        return np.full((n, k), -1, dtype=np.int64), np.zeros((n, k), dtype=contribs.dtype)
    if n == 1:  # the request path: one argsort beats the vectorised machinery
        row = contribs[0]
        order = np.argsort(-row, kind="stable")[:k]
        vals = row[order]
        keep = vals > 0
        return np.where(keep, order, -1)[None, :], np.where(keep, vals, 0)[None, :]
    if k < p:
        part = np.argpartition(-contribs, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(p), (n, p)).copy()
    vals = np.take_along_axis(contribs, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    idx = np.where(vals > 0, idx, -1)
    vals = np.where(vals > 0, vals, 0)
    return idx, vals


class ReasonMap:
    """Reasons of one contract: groups one-hot columns into their field, picks adverse ones, names them.

    Args:
        contract: The model's feature contract.
    """

    def __init__(self, contract: FeatureContract) -> None:
        self.contract = contract
        self.fields = list(contract.raw_fields)
        features = list(contract.features)
        index = {f: j for j, f in enumerate(features)}
        #: field -> model column (numeric) ; categorical field -> [(category, column)]
        self.column: list[int] = []
        self.categories: dict[int, list[tuple[str, int]]] = {}
        for k, field in enumerate(self.fields):
            if field in contract.encodings:
                cats = [(cat, index[col]) for cat, col in contract.encodings[field].items()]
                self.categories[k] = cats
                self.column.append(cats[0][1])
            else:
                self.column.append(index[field])
        self._group: np.ndarray | None = None
        if self.categories:
            group = np.zeros((len(features), len(self.fields)), dtype=np.float32)
            for k, field in enumerate(self.fields):
                for j in [c for _, c in self.categories.get(k, [])] or [index[field]]:
                    group[j, k] = 1.0
            self._group = group
        self.texts = [contract.reason_text(f) for f in self.fields]
        self._texts_json = [json.dumps(t, ensure_ascii=False) for t in self.texts]
        self._names_json = [json.dumps(f, ensure_ascii=False) for f in self.fields]

    # -- which ------------------------------------------------------------------------------------------
    def field_contributions(self, contribs: np.ndarray) -> np.ndarray:
        """(n, n_fields) contributions per raw field (one-hot columns summed); ``contribs`` may carry bias."""
        c = contribs[:, : len(self.contract.features)]
        return c if self._group is None else c @ self._group

    def top(self, contribs: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        """:func:`top_reasons` over the raw fields."""
        return top_reasons(self.field_contributions(contribs), top_k)

    # -- naming -----------------------------------------------------------------------------------------
    def held(self, k: int, row: np.ndarray) -> tuple[str | None, int | None]:
        """(category, column) a categorical field ``k`` holds in a model row, (None, None) if none."""
        for cat, j in self.categories[k]:
            if row[j] == 1.0:
                return cat, j
        return None, None

    def value(self, k: int, row: np.ndarray) -> float | str | None:
        """The applicant's raw value of field ``k`` (number, category, or None when missing)."""
        if k in self.categories:
            return self.held(k, row)[0]
        x = float(row[self.column[k]])
        return None if x != x else x

    def text(self, k: int, row: np.ndarray) -> str:
        """Reason text of field ``k`` for this row (a categorical's names the category held)."""
        if k not in self.categories:
            return self.texts[k]
        cat, j = self.held(k, row)
        if j is None:
            return f"{self.texts[k]} (category not given or not recognised)"
        col = self.contract.features[j]
        return self.contract.reasons.get(col) or f"{self.fields[k].replace('_', ' ')}: {cat}"

    def codes(self, M: np.ndarray, idx: np.ndarray, val: np.ndarray) -> list[list[ReasonCode]]:
        """ReasonCode lists per row from :meth:`top`'s output and the model matrix."""
        out: list[list[ReasonCode]] = []
        for r in range(idx.shape[0]):
            row = M[r]
            codes = []
            for k, v in zip(idx[r].tolist(), val[r].tolist(), strict=True):
                if k < 0:
                    break
                codes.append(ReasonCode(self.fields[k], self.value(k, row), v, self.text(k, row)))
            out.append(codes)
        return out

    def text_columns(self, M: np.ndarray, idx: np.ndarray) -> list[np.ndarray]:
        """Per reason rank, an object array of texts (None where no reason): the batch output columns."""
        static = np.array([*self.texts, None], dtype=object)
        cols = []
        for j in range(idx.shape[1]):
            col = static[idx[:, j]]
            for k in self.categories:
                rows = np.flatnonzero(idx[:, j] == k)
                for r in rows.tolist():
                    col[r] = self.text(k, M[r])
            cols.append(col)
        return cols

    def explanation_json(self, M: np.ndarray, idx: np.ndarray, val: np.ndarray) -> list[str]:
        """Canonical JSON (sorted keys, compact) of each row's reasons, as the audit log stores them."""
        out = []
        idx_l, val_l = idx.tolist(), val.tolist()
        for r in range(len(idx_l)):
            parts = []
            for k, v in zip(idx_l[r], val_l[r], strict=True):
                if k < 0:
                    break
                if k in self.categories:
                    text = json.dumps(self.text(k, M[r]), ensure_ascii=False)
                    value = json.dumps(self.value(k, M[r]), ensure_ascii=False)
                else:
                    text = self._texts_json[k]
                    x = float(M[r, self.column[k]])
                    value = "null" if x != x else repr(x)
                parts.append(
                    '{"contribution":' + repr(v) + ',"feature":' + self._names_json[k]
                    + ',"reason":' + text + ',"value":' + value + "}"
                )  # fmt: skip
            out.append("[" + ",".join(parts) + "]")
        return out
