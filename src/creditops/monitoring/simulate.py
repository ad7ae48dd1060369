"""Serve a stream of applications through a bundle into the audit log at chosen times (demo, tests, bench).

The decisions go through the one decision path (:func:`creditops.serving.decide`, records from
:func:`creditops.serving.audit_records`) and are audited the way the predictor audits a by-id request
(``applicant_id`` + the served feature values), only with a decision time chosen by the caller, so weeks of
traffic can be laid down in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from creditops.governance.audit import AuditLog
from creditops.serving import audit_records, decide


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
        decisions = decide(bundle, M[lo:hi], model_version=model_version)
        inputs = []
        for k, row in enumerate(M[lo:hi].tolist()):
            values: dict[str, Any] = {f: (None if v != v else v) for f, v in zip(features, row, strict=True)}
            if applicant_ids is not None:
                values = {"applicant_id": _plain(applicant_ids[lo + k]), **values}
            inputs.append(values)
        records = [
            replace(r, caller_id=str(callers[lo + k]), ts=str(stamps[lo + k]))
            for k, r in enumerate(audit_records(decisions, inputs))
        ]
        written += audit.append(records)
    return written


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
