"""Batch scoring of Parquet/CSV files of any size with flat memory, quarantine and (optional) audit.

The input is streamed in chunks (``ParquetFile.iter_batches`` / pandas ``chunksize``); each chunk is validated
(bad rows go to ``<output>.quarantine.parquet`` with the reason, never silently dropped), scored with exact
TreeSHAP reason codes, audited in one transaction per chunk, and appended to the output with a
``ParquetWriter``. The output is written under a temporary name and renamed at the end, so a failed run never
leaves a half-written result; rows_in == rows_scored + rows_quarantined is checked before the rename.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from creditops.errors import DataError
from creditops.governance.audit import AuditLog, AuditRecord, utc_now_iso
from creditops.governance.explain import contributions_array, reason_text, top_reasons
from creditops.scoring import model_version_of, new_prediction_ids, predict_from_contribs

__all__ = ["BatchResult", "score_file"]

Range = tuple[float | None, float | None]
_QUARANTINE_SCHEMA = pa.schema(
    [("row_number", pa.int64()), ("id", pa.string()), ("reason", pa.string()), ("raw", pa.string())]
)


@dataclass
class BatchResult:
    """Counts and paths of one batch run (rows_in == rows_scored + rows_quarantined)."""

    output_path: Path
    quarantine_path: Path | None
    rows_in: int = 0
    rows_scored: int = 0
    rows_quarantined: int = 0
    audited: int = 0
    seconds: float = 0.0
    decisions: dict[str, int] = field(default_factory=dict)

    @property
    def rows_per_minute(self) -> float:
        """Throughput over the whole run."""
        return self.rows_in / self.seconds * 60 if self.seconds > 0 else math.inf


def _chunks(path: Path, chunk_rows: int) -> tuple[Iterator[pd.DataFrame], int | None]:
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            pf = pq.ParquetFile(path)
            return (b.to_pandas() for b in pf.iter_batches(batch_size=chunk_rows)), pf.metadata.num_rows
        if suffix == ".csv":
            return iter(pd.read_csv(path, chunksize=chunk_rows)), None
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(f"{path}: cannot read input ({exc})") from exc
    raise DataError(f"{path}: unsupported input format {suffix!r} (use .parquet or .csv)")


def _validate(
    chunk: pd.DataFrame, features: list[str], ranges: Mapping[str, Range]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Vectorised checks -> (float32 matrix of all rows, bad-row mask, reasons for the bad rows)."""
    n = len(chunk)
    M = np.empty((n, len(features)), dtype=np.float32)
    problems: list[tuple[np.ndarray, str]] = []
    for j, f in enumerate(features):
        col = chunk[f]
        if col.dtype == bool or pd.api.types.is_bool_dtype(col.dtype):
            values = np.full(n, np.nan)
            problems.append((np.ones(n, bool), f"{f}: boolean, not a number"))
        else:
            values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            null = col.isna().to_numpy()
            not_num = np.isnan(values) & ~null
            problems.append((null, f"{f}: missing"))
            problems.append((not_num, f"{f}: not a number"))
            problems.append((np.isinf(values), f"{f}: not finite"))
            lo, hi = ranges.get(f, (None, None))
            with np.errstate(invalid="ignore"):
                out = np.zeros(n, bool)
                if lo is not None:
                    out |= values < lo
                if hi is not None:
                    out |= values > hi
            problems.append((out, f"{f}: outside valid range [{lo}, {hi}]"))
        M[:, j] = values
    bad = np.zeros(n, bool)
    for mask, _ in problems:
        bad |= mask
    reasons: list[str] = []
    if bad.any():
        bad_rows = np.flatnonzero(bad)
        per_row: dict[int, list[str]] = {int(r): [] for r in bad_rows}
        for mask, text in problems:
            for r in np.flatnonzero(mask):
                per_row[int(r)].append(text)
        reasons = ["; ".join(per_row[int(r)]) for r in bad_rows]
    return M, bad, reasons


def _inputs_json(M: np.ndarray, features: list[str]) -> list[str]:
    """JSON object (sorted keys) of each row's float32 inputs, 15 significant digits (round-trips float32).

    pandas' C encoder is several times faster than per-value ``repr``; the audit hash covers the stored text,
    so the float formatting only has to be valid JSON and deterministic.
    """
    order = sorted(range(len(features)), key=lambda j: features[j])
    frame = pd.DataFrame(M[:, order], columns=[features[j] for j in order])
    return frame.to_json(orient="records", lines=True, double_precision=15).splitlines()


def _progress(enabled: bool, total: int | None, label: str) -> Any:
    if not enabled:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    )
    bar.start()
    bar.add_task(label, total=total)
    return bar


def score_file(
    bundle: Any,
    input_path: str | Path,
    output_path: str | Path,
    audit: AuditLog | None = None,
    chunk_rows: int = 100_000,
    progress: bool = True,
    caller_id: str = "batch",
    top_k: int = 4,
    ranges: Mapping[str, Range] | None = None,
    id_column: str | None = None,
) -> BatchResult:
    """Score a Parquet or CSV file into a Parquet file.

    Output columns: ``<id column>``, ``prediction_id``, ``pd``, ``score``, ``decision``, ``reason_1`` ..
    ``reason_<top_k>`` (plain-language reasons, null when fewer features raised the PD), ``model_version``.

    Args:
        bundle: loaded model bundle.
        input_path: ``.parquet``/``.pq`` or ``.csv`` with (at least) the model features.
        output_path: Parquet file to write; bad rows go to ``<output>.quarantine.parquet``.
        audit: when given, every scored row is appended (one transaction per chunk) to this log.
        chunk_rows: rows per chunk (memory is proportional to this, not to the file).
        progress: show a rich progress bar.
        caller_id: recorded in the audit log.
        top_k: reasons per row.
        ranges: ``feature -> (low, high)`` valid ranges (rows outside are quarantined); default: the
            bundle manifest's ``valid_ranges``.
        id_column: id column to carry through (default ``applicant_id`` if present, else ``row_number``).

    Raises:
        DataError: unreadable input, unsupported format, or model features missing from the input.
    """
    t0 = time.perf_counter()
    src, out = Path(input_path), Path(output_path)
    quarantine_path = out.with_name(out.name + ".quarantine.parquet")
    quarantine_path.unlink(missing_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    chunks, total = _chunks(src, chunk_rows)
    features = list(bundle.manifest.features)
    ranges = bundle.manifest.valid_ranges if ranges is None else ranges
    version = model_version_of(bundle)
    texts = np.array([reason_text(bundle.manifest, f) for f in features] + [None], dtype=object)
    result = BatchResult(output_path=out, quarantine_path=None)
    writer: pq.ParquetWriter | None = None
    qwriter: pq.ParquetWriter | None = None
    bar = _progress(progress, total, f"scoring {src.name}")
    try:
        for chunk in chunks:
            missing = [f for f in features if f not in chunk.columns]
            if missing:
                raise DataError(f"{src}: model feature(s) missing from the input: {missing}")
            id_col = id_column or ("applicant_id" if "applicant_id" in chunk.columns else "row_number")
            row_number = np.arange(result.rows_in, result.rows_in + len(chunk), dtype=np.int64)
            ids = chunk[id_col].to_numpy() if id_col in chunk.columns else row_number
            M, bad, reasons = _validate(chunk, features, ranges)
            if bad.any():
                raw = chunk.loc[bad].to_json(orient="records", lines=True, date_format="iso").splitlines()
                qtable = pa.table(
                    {
                        "row_number": row_number[bad],
                        "id": [str(x) for x in ids[bad]],
                        "reason": reasons,
                        "raw": raw,
                    },
                    schema=_QUARANTINE_SCHEMA,
                )
                if qwriter is None:
                    qwriter = pq.ParquetWriter(quarantine_path, _QUARANTINE_SCHEMA)
                    result.quarantine_path = quarantine_path
                qwriter.write_table(qtable)
                result.rows_quarantined += int(bad.sum())
            good = ~bad
            G = np.ascontiguousarray(M[good])
            n_good = len(G)
            contribs = contributions_array(bundle, G)
            pd_ = predict_from_contribs(bundle, contribs)
            score = np.asarray(bundle.score_points(pd_), dtype=np.float64).reshape(-1)
            decision = np.asarray(bundle.decide(pd_), dtype=object).reshape(-1)
            ridx, rval = top_reasons(contribs[:, : len(features)], top_k)
            pids = new_prediction_ids(n_good)
            columns: dict[str, Any] = {
                id_col: ids[good],
                "prediction_id": pids,
                "pd": pd_,
                "score": score,
                "decision": decision.astype(str),
            }
            for j in range(ridx.shape[1]):
                columns[f"reason_{j + 1}"] = texts[ridx[:, j]]
            columns["model_version"] = np.full(n_good, version, dtype=object)
            table = pa.table(columns)
            if audit is not None and n_good:
                audit.append(_audit_records(bundle, G, contribs, ridx, pd_, score, decision, pids, caller_id))
                result.audited += n_good
            if writer is None:
                writer = pq.ParquetWriter(tmp_out, table.schema)
            writer.write_table(table)
            for d, c in zip(*np.unique(decision.astype(str), return_counts=True), strict=True):
                result.decisions[str(d)] = result.decisions.get(str(d), 0) + int(c)
            result.rows_in += len(chunk)
            result.rows_scored += n_good
            if bar is not None:
                bar.advance(bar.task_ids[0], len(chunk))
        if writer is None:  # empty input: still write a valid (empty) file
            empty = {"row_number": pa.array([], pa.int64()), "prediction_id": pa.array([], pa.string())}
            writer = pq.ParquetWriter(tmp_out, pa.table(empty).schema)
        writer.close()
        writer = None
        if result.rows_in != result.rows_scored + result.rows_quarantined:  # pragma: no cover - invariant
            raise RuntimeError(f"row counts do not reconcile: {result}")
        os.replace(tmp_out, out)
    finally:
        if writer is not None:
            writer.close()
        if qwriter is not None:
            qwriter.close()
        if bar is not None:
            bar.stop()
        Path(tmp_out).unlink(missing_ok=True)
    result.seconds = time.perf_counter() - t0
    return result


def _audit_records(
    bundle: Any,
    G: np.ndarray,
    contribs: np.ndarray,
    ridx: np.ndarray,
    pd_: np.ndarray,
    score: np.ndarray,
    decision: np.ndarray,
    pids: list[str],
    caller_id: str,
) -> list[AuditRecord]:
    features = list(bundle.manifest.features)
    inputs = _inputs_json(G, features)
    model_name = bundle.manifest.model_name
    version = model_version_of(bundle)
    ts = utc_now_iso()
    reason_json = [json.dumps(reason_text(bundle.manifest, f), ensure_ascii=False) for f in features]
    feat_json = [json.dumps(f, ensure_ascii=False) for f in features]
    ridx_l = ridx.tolist()
    pd_l, score_l, dec_l = pd_.tolist(), score.tolist(), decision.tolist()
    records = []
    for i in range(len(G)):
        parts = []
        for f in ridx_l[i]:
            if f < 0:
                break
            parts.append(
                '{"contribution":' + repr(float(contribs[i, f])) + ',"feature":' + feat_json[f]
                + ',"reason":' + reason_json[f] + ',"value":' + repr(float(G[i, f])) + "}"
            )  # fmt: skip
        records.append(
            AuditRecord(
                prediction_id=pids[i],
                model_name=model_name,
                model_version=version,
                inputs=inputs[i],
                output='{"decision":'
                + json.dumps(dec_l[i])
                + ',"pd":'
                + repr(pd_l[i])
                + ',"score":'
                + repr(score_l[i])
                + "}",  # fmt: skip
                explanation="[" + ",".join(parts) + "]",
                decision=dec_l[i],
                caller_id=caller_id,
                ts=ts,
            )
        )
    return records
