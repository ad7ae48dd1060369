"""The one decision path: ``decide(bundle, frame) -> Decisions`` and the audit records of those decisions.

The predictor, ``creditops score`` (batch), the explainer and the bench all call :func:`decide`; nothing
here knows about HTTP or files. One exact TreeSHAP pass (:mod:`creditops.explain`) gives both the reason
codes (:mod:`creditops.serving.reasons`) and the margin (TreeSHAP contributions sum to it), so a decision
costs a single pass over the trees. :func:`audit_records` is the only place an audit record of a decision is
built.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from creditops.explain import explainer_for
from creditops.governance.audit import AuditRecord, canonical_json, utc_now_iso
from creditops.serving.encode import Encoder
from creditops.serving.reasons import ReasonCode, ReasonMap

__all__ = [
    "Decisions",
    "audit_records",
    "decide",
    "encoder_for",
    "model_version_of",
    "new_prediction_ids",
]


# --------------------------------------------------------------------------------------------------------
# ids and versions

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


def model_version_of(bundle: Any) -> str:
    """A stable label of the model that served a decision: ``<model_name>@<version>``.

    Uses ``bundle.version`` (the registered version the registry wrote into the bundle,
    :data:`creditops.artifact.REGISTRATION_FILE`) or ``manifest.params['model_version']`` when
    present, otherwise the manifest creation time and the first 8 hex digits of the model's SHA-256 (two
    bundles written in the same second stay apart; the same model file always gets the same label).
    """
    m = bundle.manifest
    version = getattr(bundle, "version", None) or (m.params or {}).get("model_version")
    if not version:
        digest = hashlib.sha256(bytes(bundle.booster.save_raw("ubj"))).hexdigest()[:8]
        version = f"{pd.Timestamp(m.created_at):%Y%m%dT%H%M%SZ}-{digest}"
    return f"{m.model_name}@{version}"


# --------------------------------------------------------------------------------------------------------
# per-bundle state


@dataclass(frozen=True)
class _State:
    encoder: Encoder
    reasons: ReasonMap
    version: str
    cal_x: np.ndarray
    cal_y: np.ndarray


_STATES: weakref.WeakKeyDictionary[Any, _State] = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


def _state(bundle: Any) -> _State:
    state = _STATES.get(bundle.booster)
    if state is None:
        with _STATES_LOCK:
            contract = bundle.contract
            cal = bundle.manifest.calibration
            state = _State(
                Encoder(contract),
                ReasonMap(contract),
                model_version_of(bundle),
                np.asarray(cal.x, dtype=np.float64),
                np.asarray(cal.y, dtype=np.float64),
            )
            _STATES[bundle.booster] = state
    return state


def encoder_for(bundle: Any) -> Encoder:
    """The (cached) contract encoder of a bundle: how its servers read raw values."""
    return _state(bundle).encoder


# --------------------------------------------------------------------------------------------------------
# decisions


@dataclass(frozen=True)
class Decisions:
    """Columnar decisions for ``n`` rows (one TreeSHAP pass).

    Attributes:
        prediction_ids: One id per row (time-ordered).
        pd: Calibrated probability of default, (n,).
        score: Score points, (n,).
        decision: ``approve`` / ``review`` / ``decline``, (n,) object array.
        contributions: TreeSHAP contributions (n, n_features + 1) in log-odds, last column the bias.
        reason_index: (n, k) index into ``fields`` of each adverse reason, -1 where none.
        reason_value: (n, k) the reason's contribution (> 0).
        matrix: The float32 model inputs that were scored (n, n_features).
        fields: The contract's raw fields (what reasons name).
        model_name: Manifest model name.
        model_version: Label recorded on every decision.
        reason_map: The contract's reason mapping (names and texts the reasons).
    """

    prediction_ids: list[str]
    pd: np.ndarray
    score: np.ndarray
    decision: np.ndarray
    contributions: np.ndarray
    reason_index: np.ndarray
    reason_value: np.ndarray
    matrix: np.ndarray
    fields: list[str]
    model_name: str
    model_version: str
    reason_map: ReasonMap

    def __len__(self) -> int:
        return len(self.prediction_ids)

    @property
    def margin(self) -> np.ndarray:
        """Model margin (log-odds before calibration) per row: the contributions' sum."""
        return self.contributions.sum(axis=1, dtype=np.float64)

    def reasons(self) -> list[list[ReasonCode]]:
        """Adverse-action reasons per row, largest first."""
        return self.reason_map.codes(self.matrix, self.reason_index, self.reason_value)

    def reason_texts(self) -> list[np.ndarray]:
        """Per reason rank, the reason texts of every row (None where no reason): batch output columns."""
        return self.reason_map.text_columns(self.matrix, self.reason_index)

    def to_dicts(self) -> list[dict[str, Any]]:
        """One JSON-ready answer per row: prediction_id, pd, score, decision, reasons, model_version."""
        pd_, score, dec = self.pd.tolist(), self.score.tolist(), self.decision.tolist()
        return [
            {
                "prediction_id": pid,
                "pd": pd_[i],
                "score": score[i],
                "decision": dec[i],
                "reasons": [r.to_dict() for r in reasons],
                "model_version": self.model_version,
            }
            for i, (pid, reasons) in enumerate(zip(self.prediction_ids, self.reasons(), strict=True))
        ]


def decide(
    bundle: Any,
    frame: pd.DataFrame | np.ndarray,
    *,
    top_k: int = 4,
    model_version: str | None = None,
    n_threads: int | None = None,
) -> Decisions:
    """PD, score points, decision and adverse-action reasons for every row.

    Args:
        bundle: A loaded :class:`creditops.artifact.Bundle`.
        frame: Raw fields as a user has them (a DataFrame: categoricals as values, e.g. ``purpose="car"``;
            the contract encodes them) or an already-encoded float model matrix in manifest order. Either
            way the contract's validation runs (range, float32 bounds).
        top_k: Reasons per decision (only fields that raised the PD are reasons).
        model_version: Label recorded on each decision (default :func:`model_version_of`).
        n_threads: TreeSHAP threads for large inputs (default: all cores).

    Raises:
        creditops.serving.encode.RequestError: a row breaks the contract (the first one is named).
    """
    state = _state(bundle)
    if isinstance(frame, pd.DataFrame):
        M, bad, reasons = state.encoder.encode_frame(frame)
        if bad.any():
            raise _first_bad(bad, reasons)
    else:
        M = state.encoder.check_matrix(frame)
    contribs = explainer_for(bundle).shap_values(M, n_threads)
    margin = contribs.sum(axis=1, dtype=np.float64)
    pd_ = np.interp(1.0 / (1.0 + np.exp(-margin)), state.cal_x, state.cal_y)
    if len(pd_) == 1:  # the request path: Python scalars beat numpy's per-call overhead
        score, decision = _one(bundle, float(pd_[0]))
    else:
        score = np.asarray(bundle.score_points(pd_), dtype=np.float64).reshape(-1)
        decision = np.asarray(bundle.decide(pd_), dtype=object).reshape(-1)
    idx, val = state.reasons.top(contribs, top_k)
    return Decisions(
        prediction_ids=new_prediction_ids(len(M)),
        pd=pd_,
        score=score,
        decision=decision,
        contributions=contribs,
        reason_index=idx,
        reason_value=val,
        matrix=M,
        fields=state.reasons.fields,
        model_name=bundle.manifest.model_name,
        model_version=model_version or state.version,
        reason_map=state.reasons,
    )


def _one(bundle: Any, p: float) -> tuple[np.ndarray, np.ndarray]:
    """Score points and decision of one PD, exactly as ``Bundle.score_points`` / ``Bundle.decide``."""
    from creditops.artifact import PD_CLIP

    s, t = bundle.manifest.score_scaling, bundle.manifest.thresholds
    c = min(max(p, PD_CLIP), 1.0 - PD_CLIP)
    points = s.offset + s.factor * math.log((1.0 - c) / c)
    if p >= t.decline_at_or_above_pd:
        decision = "decline"
    else:
        decision = "approve" if p < t.approve_below_pd else "review"
    return np.array([points]), np.array([decision], dtype=object)


def _first_bad(bad: np.ndarray, reasons: list[str]) -> Exception:
    from creditops.serving.encode import RequestError

    row = int(np.flatnonzero(bad)[0])
    field = reasons[0].split(":", 1)[0]
    return RequestError(field, reasons[0], row)


# --------------------------------------------------------------------------------------------------------
# audit


def _plain(value: Any) -> Any:
    """JSON-safe value of an input as sent (non-finite floats -> None, numpy scalars -> Python)."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _matrix_json(M: np.ndarray, features: list[str]) -> list[str]:
    """JSON object (sorted keys) of each row's model inputs (15 significant digits round-trip float32)."""
    order = sorted(range(len(features)), key=lambda j: features[j])
    frame = pd.DataFrame(M[:, order], columns=[features[j] for j in order])
    return frame.to_json(orient="records", lines=True, double_precision=15).splitlines()


def audit_records(
    decisions: Decisions,
    inputs: Sequence[Mapping[str, Any]] | None = None,
    caller_id: str = "",
    ts: str | None = None,
    route: Mapping[str, str] | None = None,
) -> list[AuditRecord]:
    """The audit records of ``decisions``: inputs, output, reasons, decision, model, caller, time.

    The one place a decision's audit record is built (predictor, batch and every other caller use it).

    Args:
        decisions: From :func:`decide`.
        inputs: Per row, the inputs as the caller gave them (raw values, or ``applicant_id`` + the values
            read by id); default the model inputs that were scored (``decisions.matrix``).
        caller_id: Who asked (the verified identity, ``batch``...).
        ts: Record time (default now, UTC, one stamp for the whole call).
        route: Which rollout arm served the call (``{"arm": ..., "rollout": ...}``, from the router), kept in
            each record's ``output.route``.
    """
    n = len(decisions)
    # output is canonical JSON (sorted keys): decision, pd, [route], score
    routed = ',"route":' + canonical_json(dict(route)) if route else ""
    ts = ts or utc_now_iso()
    if inputs is None:
        features = list(decisions.reason_map.contract.features)
        rows: Sequence[Any] = _matrix_json(decisions.matrix, features) if n else []
    else:
        if len(inputs) != n:
            raise ValueError(f"{len(inputs)} input rows for {n} decisions")
        rows = [{k: _plain(v) for k, v in row.items()} for row in inputs]
    explanations = decisions.reason_map.explanation_json(
        decisions.matrix, decisions.reason_index, decisions.reason_value
    )
    pd_l, score_l, dec_l = decisions.pd.tolist(), decisions.score.tolist(), decisions.decision.tolist()
    name, version = decisions.model_name, decisions.model_version
    return [
        AuditRecord(
            prediction_id=decisions.prediction_ids[i],
            model_name=name,
            model_version=version,
            inputs=rows[i],
            output='{"decision":"'
            + dec_l[i]
            + '","pd":'
            + repr(pd_l[i])
            + routed
            + ',"score":'
            + repr(score_l[i])
            + "}",
            explanation=explanations[i],
            decision=dec_l[i],
            caller_id=caller_id,
            ts=ts,
        )
        for i in range(n)
    ]
