"""Served decisions read from the audit log, the monitoring source of truth (SQLite or Postgres).

The audit log holds every served decision's inputs and outputs (unlike a best-effort payload logger), so
monitoring reads it with plain SQL over its table. To read a million decisions in seconds the database
assembles one JSON line per record and streams them out (Postgres ``COPY ... TO STDOUT``), and Arrow's
multi-threaded JSON reader parses them straight into columns; no per-row Python. A chunk whose JSON does
not fit the expected shape (an unusual explanation, say) falls back to a per-row parser instead of failing.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from creditops.governance.audit import TABLE
from creditops.monitoring.window import DecisionWindow

_CHUNK_BYTES = 32 << 20


def _iso(ts: str | datetime | pd.Timestamp | None) -> str | None:
    if ts is None or isinstance(ts, str):
        return ts
    t = pd.Timestamp(ts)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _line_sql(quote: str) -> str:
    q = quote
    return (
        f"""'{{"ts":' || {q}(ts) || ',"v":' || {q}(model_version) || ',"c":' || {q}(caller_id)"""
        f""" || ',"p":' || {q}(prediction_id) || ',"d":' || {q}(decision)"""
        """ || ',"i":' || inputs || ',"o":' || output || ',"e":' || explanation || '}'"""
    )


@dataclass
class AuditDecisions:
    """Columns of the audited decisions read (all versions), sorted by time."""

    features: list[str]
    X: np.ndarray
    pd: np.ndarray
    score: np.ndarray
    decision: np.ndarray
    caller_id: np.ndarray
    reason: np.ndarray
    ts: np.ndarray
    prediction_id: np.ndarray
    applicant_id: np.ndarray
    model_version: np.ndarray

    def __len__(self) -> int:
        return int(self.pd.size)

    def versions(self) -> list[str]:
        """Model versions present."""
        return sorted(set(self.model_version.tolist()))

    def window(self, model_version: str, start: Any = None, end: Any = None) -> DecisionWindow:
        """Decisions of one version in ``[start, end)`` (None = open)."""
        mask = self.model_version == model_version
        if start is not None:
            mask &= self.ts >= np.datetime64(_naive(start), "ns")
        if end is not None:
            mask &= self.ts < np.datetime64(_naive(end), "ns")
        return DecisionWindow(
            model_version, self.features, self.X[mask], self.pd[mask], self.score[mask], self.decision[mask],
            self.caller_id[mask], self.reason[mask], self.ts[mask], self.prediction_id[mask],
            self.applicant_id[mask], _iso(start) or "", _iso(end) or "",
        )  # fmt: skip

    def reorder(self, order: np.ndarray) -> AuditDecisions:
        """The same decisions in another row order."""
        return AuditDecisions(
            self.features, self.X[order], self.pd[order], self.score[order], self.decision[order],
            self.caller_id[order], self.reason[order], self.ts[order], self.prediction_id[order],
            self.applicant_id[order], self.model_version[order],
        )  # fmt: skip

    def select(
        self,
        model_version: str,
        rows: np.ndarray,
        cols: Sequence[int],
        features: Sequence[str],
        start: Any,
        end: Any,
    ) -> DecisionWindow:
        """The given rows as a window, with the given feature columns (a version's own features)."""
        return DecisionWindow(
            model_version, list(features), self.X[np.ix_(rows, cols)], self.pd[rows], self.score[rows],
            self.decision[rows], self.caller_id[rows], self.reason[rows], self.ts[rows],
            self.prediction_id[rows], self.applicant_id[rows], _iso(start) or "", _iso(end) or "",
        )  # fmt: skip


def _naive(ts: Any) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo is not None else t


def _schema(features: Sequence[str], applicant: pa.DataType | None = None) -> pa.Schema:
    inputs = [(f, pa.float64()) for f in features if f != "applicant_id"]
    if applicant is not None:
        inputs.append(("applicant_id", applicant))
    return pa.schema(
        [
            ("ts", pa.timestamp("us", tz="UTC")),
            ("v", pa.string()),
            ("c", pa.string()),
            ("p", pa.string()),
            ("d", pa.string()),
            ("i", pa.struct(inputs)),
            ("o", pa.struct([("pd", pa.float64()), ("score", pa.float64())])),
            ("e", pa.list_(pa.struct([("feature", pa.string())]))),
        ]
    )


def _parse_slow(buf: bytes, features: Sequence[str]) -> pa.Table:
    rows = []
    names = [f for f in features if f != "applicant_id"]
    for line in buf.splitlines():
        if not line:
            continue
        r = json.loads(line)
        inputs = r.get("i") or {}
        expl = r.get("e")
        first = (
            expl[0].get("feature") if isinstance(expl, list) and expl and isinstance(expl[0], dict) else None
        )
        a = inputs.get("applicant_id") if isinstance(inputs, dict) else None
        out = r.get("o") if isinstance(r.get("o"), dict) else {}
        rows.append(
            {
                "ts": pd.Timestamp(r["ts"]), "v": r["v"], "c": r["c"], "p": r["p"], "d": r["d"],
                "i": {**{f: _num(inputs.get(f)) for f in names}, "applicant_id": _text(a)},
                "o": {"pd": _num(out.get("pd")), "score": _num(out.get("score"))},
                "e": [{"feature": first}] if first else [],
            }
        )  # fmt: skip
    return pa.Table.from_pylist(rows, schema=_schema(features, pa.string()))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _num(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _parse(buf: bytes, features: Sequence[str]) -> pa.Table:
    # An applicant id is an int in one log and a string in another, and Arrow's JSON reader needs one type
    # per column: try int, then string; anything else irregular goes to the per-row parser.
    for applicant in (pa.int64(), pa.string()):
        try:
            table = pj.read_json(
                io.BytesIO(buf),
                read_options=pj.ReadOptions(block_size=4 << 20),
                parse_options=pj.ParseOptions(
                    explicit_schema=_schema(features, applicant), unexpected_field_behavior="ignore"
                ),
            )
        except pa.ArrowInvalid:
            continue
        inputs = table.column("i").combine_chunks()
        ids = inputs.field("applicant_id").cast(pa.string())
        fields = [inputs.field(f) for f in features if f != "applicant_id"]
        names = [f for f in features if f != "applicant_id"]
        return table.set_column(
            table.schema.get_field_index("i"),
            "i",
            pa.StructArray.from_arrays([*fields, ids], names=[*names, "applicant_id"]),
        )
    return _parse_slow(buf, features)


def _lines_sqlite(path: str, sql: str, params: Sequence[Any]) -> Iterator[bytes]:
    conn = sqlite3.connect(path)
    try:
        cur = conn.execute(sql.replace("%s", "?"), tuple(params))
        while batch := cur.fetchmany(20_000):
            yield ("\n".join(r[0] for r in batch) + "\n").encode()
    finally:
        conn.close()


def _lines_postgres(url: str, sql: str, params: Sequence[Any]) -> Iterator[bytes]:
    import psycopg

    with psycopg.connect(url) as conn, conn.cursor() as cur:
        query = psycopg.ClientCursor(conn).mogrify(sql, tuple(params))
        # CSV with a quote and a delimiter that canonical JSON never contains: each value comes out verbatim.
        copy_sql = f"COPY ({query}) TO STDOUT WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
        pending = b""
        with cur.copy(copy_sql) as copy:
            parts: list[bytes] = []
            size = 0
            for block in copy:
                parts.append(bytes(block))
                size += len(block)
                if size >= _CHUNK_BYTES:
                    data = pending + b"".join(parts)
                    cut = data.rfind(b"\n") + 1
                    yield data[:cut]
                    pending, parts, size = data[cut:], [], 0
            data = pending + b"".join(parts)
            if data:
                yield data


def read_audit_decisions(
    url: str,
    features: Sequence[str],
    *,
    start: Any = None,
    end: Any = None,
    model_versions: Sequence[str] | None = None,
) -> AuditDecisions:
    """Every audited decision in ``[start, end)`` with its served inputs and outputs, oldest first.

    Args:
        url: Audit log URL (``sqlite:///path`` or ``postgresql://...``), as for ``AuditLog.open``.
        features: Input fields to read (the union of the monitored versions' features; absent = NaN).
        start: Earliest decision time (inclusive), None = from the beginning.
        end: Latest decision time (exclusive), None = up to now.
        model_versions: Only these served versions (None = all).

    Raises:
        ValueError: an unsupported URL.
    """
    if url.startswith("sqlite:///"):
        backend, quote = "sqlite", "json_quote"
    elif url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        backend, quote = "postgres", "to_json"
        url = url.replace("postgresql+psycopg://", "postgresql://")
    else:
        raise ValueError(f"unsupported audit log url {url!r} (use sqlite:///path or postgresql://...)")
    where, params = [], []
    if start is not None:
        where.append("ts >= %s")
        params.append(_iso(start))
    if end is not None:
        where.append("ts < %s")
        params.append(_iso(end))
    if model_versions:
        where.append("model_version IN (" + ", ".join(["%s"] * len(model_versions)) + ")")
        params.extend(model_versions)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    # No ORDER BY: sorting a million wide lines in the database spills to disk; the rows arrive in
    # insertion order (already time-ordered for an append-only log) and are sorted here only if needed.
    sql = f"SELECT {_line_sql(quote)} FROM {TABLE} {clause}"  # nosec B608  # constants; values bound
    lines = (
        _lines_sqlite(url[len("sqlite:///") :], sql, params)
        if backend == "sqlite"
        else _lines_postgres(url, sql, params)
    )
    # Parse one chunk while the database streams the next (Arrow's parser releases the GIL).
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(_parse, buf, features) for buf in lines if buf.strip()]
        tables = [f.result() for f in futures]
    table = pa.concat_tables(tables) if tables else _schema(features, pa.string()).empty_table()
    out = _columns(table.combine_chunks(), features)
    if out.ts.size > 1 and not bool(np.all(out.ts[1:] >= out.ts[:-1])):
        out = out.reorder(np.argsort(out.ts, kind="stable"))
    return out


def _columns(table: pa.Table, features: Sequence[str]) -> AuditDecisions:
    n = table.num_rows
    inputs = table.column("i").combine_chunks() if n else None
    X = np.empty((n, len(features)), dtype=np.float32)
    for j, f in enumerate(features):
        X[:, j] = inputs.field(f).to_numpy(zero_copy_only=False) if n else np.empty(0)
    out = table.column("o").combine_chunks() if n else None
    expl = table.column("e").combine_chunks() if n else None
    reason = np.full(n, "", dtype=object)
    if n:
        lengths = expl.value_lengths().fill_null(0).to_numpy()
        offsets = expl.offsets.to_numpy()[:-1]
        first = pc.dictionary_encode(expl.flatten().field("feature"))
        flat = (
            np.asarray(first.dictionary.to_numpy(zero_copy_only=False), dtype=object)[
                first.indices.fill_null(0).to_numpy()
            ]
            if len(first)
            else np.empty(0, dtype=object)
        )
        has = lengths > 0
        reason[has] = flat[offsets[has] - expl.offsets[0].as_py()]

    def strings(name: str) -> np.ndarray:
        # Few distinct values (decision, caller, version): decode the dictionary once, then index into it.
        encoded = pc.dictionary_encode(table.column(name).fill_null("")).combine_chunks()
        values = np.asarray(encoded.dictionary.to_numpy(zero_copy_only=False), dtype=object)
        return values[encoded.indices.to_numpy()]

    def ids(column: pa.Array) -> np.ndarray:
        return np.asarray(column.fill_null("").to_numpy(zero_copy_only=False), dtype=object)

    ts = table.column("ts").cast(pa.timestamp("ns")).to_numpy() if n else np.empty(0, "datetime64[ns]")
    return AuditDecisions(
        features=list(features),
        X=X,
        pd=out.field("pd").to_numpy(zero_copy_only=False).astype(float) if n else np.empty(0),
        score=out.field("score").to_numpy(zero_copy_only=False).astype(float) if n else np.empty(0),
        decision=strings("d"),
        caller_id=strings("c"),
        reason=reason,
        ts=ts.astype("datetime64[ns]"),
        prediction_id=ids(table.column("p").combine_chunks()) if n else np.empty(0, dtype=object),
        applicant_id=ids(inputs.field("applicant_id")) if n else np.empty(0, dtype=object),
        model_version=strings("v"),
    )


def served_versions(url: str, *, start: Any = None, end: Any = None) -> list[str]:
    """Distinct model versions with audited decisions in ``[start, end)``."""
    where, params = [], []
    if start is not None:
        where.append("ts >= %s")
        params.append(_iso(start))
    if end is not None:
        where.append("ts < %s")
        params.append(_iso(end))
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    sql = f"SELECT DISTINCT model_version FROM {TABLE} {clause}"  # nosec B608  # values bound
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url[len("sqlite:///") :])
        try:
            return sorted(r[0] for r in conn.execute(sql.replace("%s", "?"), params))
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return sorted(r[0] for r in conn.execute(sql, params))
