"""Serve a stream of applications through a bundle into the audit log at chosen times (demo, tests, bench).

The decisions go through the one decision path (:func:`creditops.scoring.score_frame`) and are audited the way
the predictor audits a by-id request (``applicant_id`` + the served feature values), only with a decision time
chosen by the caller, so weeks of traffic can be laid down in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from creditops.governance.audit import AuditLog, AuditRecord
from creditops.scoring import score_frame


def serve_to_audit(
    bundle: Any,
    frame: pd.DataFrame,
    ts: Sequence[Any] | np.ndarray,
    audit: AuditLog,
    *,
    caller_ids: Sequence[str] | np.ndarray | None = None,
    applicant_ids: Sequence[Any] | np.ndarray | None = None,
    model_version: str | None = None,
    chunk: int = 20_000,
) -> int:
    """Score ``frame`` (features in any column order) and append one audit record per row.

    Args:
        bundle: A loaded bundle.
        frame: Applications with the bundle's features.
        ts: Decision time per row.
        audit: Where the records go.
        caller_ids: Caller per row (default ``simulator``).
        applicant_ids: Applicant id per row (default: the frame's ``applicant_id`` column when present).
        model_version: Version label to record (default: the bundle's).
        chunk: Rows per audit transaction.

    Returns:
        Records written.
    """
    features = list(bundle.manifest.features)
    n = len(frame)
    stamps = pd.to_datetime(pd.Series(ts), utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").to_numpy()
    callers = np.full(n, "simulator", dtype=object) if caller_ids is None else np.asarray(caller_ids, object)
    if applicant_ids is None and "applicant_id" in frame.columns:
        applicant_ids = frame["applicant_id"].to_numpy()
    written = 0
    M = frame[features].to_numpy(dtype=np.float32)
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        decisions = score_frame(bundle, M[lo:hi], model_version=model_version)
        rows = M[lo:hi].tolist()
        records = []
        for k, (d, row) in enumerate(zip(decisions, rows, strict=True)):
            inputs: dict[str, Any] = {f: (None if v != v else v) for f, v in zip(features, row, strict=True)}
            if applicant_ids is not None:
                inputs = {"applicant_id": _plain(applicant_ids[lo + k]), **inputs}
            records.append(
                AuditRecord(
                    prediction_id=d.prediction_id,
                    model_name=bundle.manifest.model_name,
                    model_version=d.model_version,
                    inputs=inputs,
                    output={"pd": d.pd, "score": d.score},
                    explanation=[
                        {"feature": r.feature, "reason": r.reason, "contribution": float(r.contribution)}
                        for r in d.reasons
                    ],
                    decision=d.decision,
                    caller_id=str(callers[lo + k]),
                    ts=str(stamps[lo + k]),
                )
            )
        written += audit.append(records)
    return written


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
