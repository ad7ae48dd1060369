"""Scoring core: request validation and decisions (PD, score points, decision, reason codes) for a bundle.

Servers (``kserve/predictor``), the CLI and batch scoring all call :func:`coerce_features` then
:func:`score_frame`; nothing here knows about HTTP. One exact TreeSHAP pass gives both the reason codes and
the margin (TreeSHAP contributions sum to the margin), so a request costs a single pass over the trees.
"""

from __future__ import annotations

import math
import os
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd

from creditops.governance.audit import AuditRecord, utc_now_iso
from creditops.governance.explain import ReasonCode, contributions_array, reasons_from_contribs

__all__ = [
    "Decision",
    "RequestError",
    "audit_records",
    "coerce_features",
    "coerce_matrix",
    "model_version_of",
    "new_prediction_ids",
    "predict_from_contribs",
    "score_frame",
]

Range = tuple[float | None, float | None]
_PLAIN_NUMBERS = (float, int)


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


@dataclass(frozen=True, slots=True)
class Decision:
    """One credit decision."""

    prediction_id: str
    pd: float
    score: float
    decision: str
    reasons: list[ReasonCode] = field(default_factory=list)
    model_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (reasons as dicts)."""
        return {
            "prediction_id": self.prediction_id,
            "pd": self.pd,
            "score": self.score,
            "decision": self.decision,
            "reasons": [
                {"feature": r.feature, "value": r.value, "contribution": r.contribution, "reason": r.reason}
                for r in self.reasons
            ],
            "model_version": self.model_version,
        }


# --------------------------------------------------------------------------------------------------------
# validation


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def coerce_features(
    records: Sequence[Mapping[str, Any]],
    features: Sequence[str],
    ranges: Mapping[str, Range] | None = None,
) -> pd.DataFrame:
    """Validate request records and return a float32 frame with columns in ``features`` order.

    Args:
        records: one mapping per applicant (feature name -> number).
        features: the model's ordered feature list (the manifest's).
        ranges: optional ``feature -> (low, high)`` inclusive bounds, ``None`` meaning unbounded.

    Raises:
        RequestError: see :func:`coerce_matrix`.
    """
    return pd.DataFrame(coerce_matrix(records, features, ranges), columns=list(features), copy=False)


def coerce_matrix(
    records: Sequence[Mapping[str, Any]],
    features: Sequence[str],
    ranges: Mapping[str, Range] | None = None,
) -> np.ndarray:
    """Like :func:`coerce_features` but returns the float32 matrix (the low-latency path: no DataFrame).

    Args:
        records: one mapping per applicant (feature name -> number).
        features: the model's ordered feature list (the manifest's).
        ranges: optional ``feature -> (low, high)`` inclusive bounds, ``None`` meaning unbounded.

    Raises:
        RequestError: naming the field(s) and the row for missing fields (all of them), unknown fields,
            non-numeric values (strings, booleans, null), NaN/inf, or values out of range.
    """
    if isinstance(records, Mapping) or not isinstance(records, Sequence) or isinstance(records, str | bytes):
        raise RequestError("instances", "expected a list of records (objects of feature -> number)")
    if not records:
        raise RequestError("instances", "no records to score")
    feats = list(features)
    wanted = set(feats)
    bounds = [(ranges or {}).get(f, (None, None)) for f in feats]
    out = np.empty((len(records), len(feats)), dtype=np.float32)
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise RequestError("instances", f"record is a {_type_name(rec)}, expected an object", i)
        if len(rec) != len(feats) or rec.keys() != wanted:
            missing = [f for f in feats if f not in rec]
            extra = sorted(str(k) for k in rec if k not in wanted)
            if missing:
                raise RequestError(", ".join(missing), f"missing field(s): {', '.join(missing)}", i)
            raise RequestError(", ".join(extra), f"unknown field(s): {', '.join(extra)}", i)
        row = out[i]
        for j, f in enumerate(feats):
            v = rec[f]
            # bool is an int subclass; a JSON true/false is never a valid feature value.
            if type(v) not in _PLAIN_NUMBERS and (isinstance(v, bool) or not isinstance(v, Real)):
                raise RequestError(f, f"{f} must be a number, got {_type_name(v)} {v!r}"[:200], i)
            x = float(v)
            if not math.isfinite(x):
                raise RequestError(f, f"{f} must be finite, got {x}", i)
            lo, hi = bounds[j]
            if (lo is not None and x < lo) or (hi is not None and x > hi):
                raise RequestError(f, f"{f}={x:g} outside valid range [{lo}, {hi}]", i)
            row[j] = x
    return out


# --------------------------------------------------------------------------------------------------------
# ids


_ID_LOCK = threading.Lock()
_last_ms = 0
_counter = 0


def new_prediction_ids(n: int) -> list[str]:
    """``n`` UUIDv7-layout ids (32 hex chars): time-ordered by millisecond, then a counter, then random bits.

    Ids from one process sort in creation order; across processes they sort by millisecond.
    """
    global _last_ms, _counter
    with _ID_LOCK:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
        else:
            _counter = 0
        start = _counter
        _counter += n
        _last_ms = ms
    rand = np.frombuffer(os.urandom(8 * n), dtype=np.uint64) if n else np.zeros(0, np.uint64)
    ids = []
    for k in range(n):
        seq = start + k
        # 48-bit ms | ver 7 | 12-bit counter high | var 10 | 14-bit counter low + 48 random bits
        hi = (ms << 16) | 0x7000 | ((seq >> 14) & 0xFFF)
        lo = (0b10 << 62) | ((seq & 0x3FFF) << 48) | (int(rand[k]) & 0xFFFF_FFFF_FFFF)
        ids.append(f"{hi:016x}{lo:016x}")
    return ids


# --------------------------------------------------------------------------------------------------------
# scoring


@dataclass(frozen=True)
class _BundleInfo:
    features: list[str]
    version: str
    cal_x: np.ndarray
    cal_y: np.ndarray


_INFO: weakref.WeakKeyDictionary[Any, _BundleInfo] = weakref.WeakKeyDictionary()


def _info(bundle: Any) -> _BundleInfo:
    info = _INFO.get(bundle.booster)
    if info is None:
        cal = bundle.manifest.calibration
        info = _BundleInfo(
            list(bundle.manifest.features),
            model_version_of(bundle),
            np.asarray(cal.x, dtype=np.float64),
            np.asarray(cal.y, dtype=np.float64),
        )
        _INFO[bundle.booster] = info
    return info


def model_version_of(bundle: Any) -> str:
    """A stable label of the model that served a decision: ``<model_name>@<version>``.

    Uses ``bundle.version`` (set by the registry resolver) or ``manifest.params['model_version']`` when
    present, otherwise the manifest creation time.
    """
    m = bundle.manifest
    version = getattr(bundle, "version", None) or (m.params or {}).get("model_version")
    if not version:
        version = pd.Timestamp(m.created_at).strftime("%Y%m%dT%H%M%SZ")
    return f"{m.model_name}@{version}"


def predict_from_contribs(bundle: Any, contribs: np.ndarray) -> np.ndarray:
    """Calibrated PD from TreeSHAP contributions (they sum to the margin): ``interp(sigmoid(margin))``.

    Same value as ``bundle.predict_pd`` (up to float32 rounding) without a second pass over the trees.
    """
    margin = contribs.sum(axis=1, dtype=np.float64)
    raw = 1.0 / (1.0 + np.exp(-margin))
    info = _info(bundle)
    return np.interp(raw, info.cal_x, info.cal_y)


def score_frame(
    bundle: Any,
    X: pd.DataFrame | np.ndarray,
    top_k: int = 4,
    model_version: str | None = None,
) -> list[Decision]:
    """Score validated features: PD, score points, decision and top adverse-action reasons per row.

    Args:
        bundle: a loaded :class:`creditops.artifact.Bundle`.
        X: features in manifest order (DataFrame by name, or a float matrix), already validated.
        top_k: reasons per decision (only features that raised the PD are reasons).
        model_version: label recorded on each decision (default :func:`model_version_of`).
    """
    info = _info(bundle)
    if isinstance(X, pd.DataFrame):
        X = X if list(X.columns) == info.features else X[info.features]
        M = X.to_numpy(dtype=np.float32)
    else:
        M = np.asarray(X, dtype=np.float32)
    M = np.ascontiguousarray(M)
    contribs = contributions_array(bundle, M)
    pd_ = predict_from_contribs(bundle, contribs)
    score = np.asarray(bundle.score_points(pd_), dtype=np.float64).reshape(-1)
    decision = np.asarray(bundle.decide(pd_), dtype=object).reshape(-1)
    reasons = reasons_from_contribs(bundle, M, contribs, top_k)
    version = model_version or info.version
    ids = new_prediction_ids(len(M))
    return [
        Decision(ids[i], float(pd_[i]), float(score[i]), str(decision[i]), reasons[i], version)
        for i in range(len(M))
    ]


def audit_records(
    bundle: Any, X: pd.DataFrame | np.ndarray, decisions: Sequence[Decision], caller_id: str = ""
) -> list[AuditRecord]:
    """Audit records for served decisions (inputs as served, output, reasons), ready for ``AuditLog.append``.

    Args:
        bundle: the bundle that made the decisions.
        X: the validated inputs that were scored (same rows, same order as ``decisions``).
        decisions: from :func:`score_frame`.
        caller_id: who asked (API client id, ``batch``...).
    """
    info = _info(bundle)
    if isinstance(X, pd.DataFrame):
        X = X if list(X.columns) == info.features else X[info.features]
        M = X.to_numpy(dtype=np.float32)
    else:
        M = np.asarray(X, dtype=np.float32)
    ts = utc_now_iso()
    rows = M.tolist()
    out = []
    for d, row in zip(decisions, rows, strict=True):
        full = d.to_dict()
        out.append(
            AuditRecord(
                prediction_id=d.prediction_id,
                model_name=bundle.manifest.model_name,
                model_version=d.model_version,
                inputs=dict(zip(info.features, row, strict=True)),
                output={"pd": d.pd, "score": d.score, "decision": d.decision},
                explanation=full["reasons"],
                decision=d.decision,
                caller_id=caller_id,
                ts=ts,
            )
        )
    return out
