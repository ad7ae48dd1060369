"""Validation with quarantine: every row is either accepted or quarantined with the rules it broke.

Rules (vectorised boolean masks, no per-row Python):

* ``schema`` — a required column is missing (every row of that table is quarantined).
* ``type`` — a value cannot be parsed as its column's type (e.g. ``"n/a"`` in a numeric column, a
  fractional number in an integer column, an unparseable timestamp); the raw value is kept in ``raw``.
* ``null`` — a missing value in a non-nullable column.
* ``range`` — a number outside its valid range (including ±inf).
* ``category`` — a string outside its allowed categories.
* ``duplicate_key`` — the row key appears more than once; every copy is quarantined (which copy is right
  is unknowable).
* ``future_timestamp`` — a timestamp after ``now`` (an explicit argument; for a world, its ``as_of``).
* ``orphan`` — a bureau or transaction row whose ``applicant_id`` is not among the *accepted* applications.

A row that breaks several rules is quarantined once, with all its rules (comma-separated, in the order
above) and details. The quarantine frame has columns ``table, row_key, rule, detail, raw`` (the input row
as JSON, values as read) and ``row_number`` (position in the input table). For every table
``rows_in == accepted + quarantined`` is checked before a result is returned.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from creditops.data.schema import WORLD_SCHEMAS, ColumnRule, TableSchema
from creditops.data.spec import DatasetSpec
from creditops.data.synthetic import CreditWorld

RULES: tuple[str, ...] = (
    "schema",
    "type",
    "null",
    "range",
    "category",
    "duplicate_key",
    "future_timestamp",
    "orphan",
)
QUARANTINE_COLUMNS: tuple[str, ...] = ("table", "row_key", "rule", "detail", "raw", "row_number")
# True == 1 and False == 0 as dict keys, so these also accept 1/0 and 1.0/0.0.
_BOOL_VALUES: dict[object, bool] = {True: True, False: False}
_BOOL_VALUES.update({v: True for v in ("true", "True", "TRUE", "1")})
_BOOL_VALUES.update({v: False for v in ("false", "False", "FALSE", "0")})


@dataclass(frozen=True)
class ValidationResult:
    """Outcome of validating one or more tables.

    Attributes:
        accepted: Table name → accepted rows (types coerced to the schema, index reset if rows were removed).
        quarantine: One row per quarantined input row: ``table, row_key, rule, detail, raw, row_number``.
        report_markdown: Human-readable data-quality report.
        counts: Table name → ``{"rows_in", "accepted", "quarantined", "rules": {rule: rows}}``.
    """

    accepted: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    report_markdown: str
    counts: dict[str, dict[str, Any]]

    @property
    def ok(self) -> bool:
        """Whether no row was quarantined."""
        return self.quarantine.empty

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``quarantine.parquet`` and ``data_quality.md`` into ``out_dir``; return their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"quarantine": out / "quarantine.parquet", "report": out / "data_quality.md"}
        self.quarantine.to_parquet(paths["quarantine"], index=False)
        paths["report"].write_text(self.report_markdown, encoding="utf-8")
        return paths


@dataclass
class _Problems:
    """Per-rule masks and per-row details collected for one table."""

    n: int
    masks: dict[str, np.ndarray]
    details: list[tuple[str, np.ndarray, pd.Series]]

    def add(self, rule: str, mask: np.ndarray | pd.Series, detail: str | Callable[[np.ndarray], Any]) -> None:
        """Record rows breaking ``rule``; ``detail`` is text or a function of the (few) offending rows."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        self.masks[rule] = self.masks.get(rule, np.zeros(self.n, bool)) | mask
        rows = np.flatnonzero(mask)
        text = (
            [detail] * rows.size if isinstance(detail, str) else list(np.asarray(detail(rows), dtype=object))
        )
        self.details.append((rule, rows, pd.Series(text, index=rows, dtype=object)))


def _values(s: pd.Series, suffix: str) -> Callable[[np.ndarray], Any]:
    """Lazy detail text ``"<column>: <value><suffix>"`` for the offending rows only."""
    return lambda rows: f"{s.name}: " + s.iloc[rows].astype(str).to_numpy(dtype=object) + suffix


def _is_numeric_dtype(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _coerce(s: pd.Series, rule: ColumnRule, probs: _Problems) -> pd.Series:
    """Return ``s`` parsed as ``rule.kind``; unparseable non-missing values break ``type``."""
    present = s.notna().to_numpy()
    if rule.kind in ("int", "float"):
        out = s if _is_numeric_dtype(s) else pd.to_numeric(s, errors="coerce")
        if not _is_numeric_dtype(out):
            out = out.astype("float64")
        values = out.to_numpy(dtype="float64", na_value=np.nan)
        bad = present & np.isnan(values)
        probs.add("type", bad, _values(s, " is not a number"))
        if rule.kind == "int" and not pd.api.types.is_integer_dtype(out):
            frac = np.isfinite(values) & (values != np.round(values))
            probs.add("type", frac, _values(s, " is not an integer"))
        if rule.kind == "int":  # every integer column is int64 downstream (state, stores, model matrix)
            if out.dtype.kind == "u":
                wide = present & (out.to_numpy() > np.iinfo(np.int64).max)
            elif pd.api.types.is_integer_dtype(out):
                wide = np.zeros(len(s), dtype=bool)
            else:
                wide = np.isfinite(values) & ((values >= 2.0**63) | (values < -(2.0**63)))
            probs.add("type", wide, _values(s, " is beyond a 64-bit integer"))
        return out
    if rule.kind == "timestamp":
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            return s if str(s.dtype.tz) == "UTC" else s.dt.tz_convert("UTC")
        if pd.api.types.is_datetime64_dtype(s):
            return s.dt.tz_localize("UTC")
        out = pd.to_datetime(s, utc=True, errors="coerce", format="mixed")
        probs.add("type", present & out.isna().to_numpy(), _values(s, " is not a timestamp"))
        return out
    if rule.kind == "bool":
        if pd.api.types.is_bool_dtype(s):
            return s
        out = s.map(_BOOL_VALUES)
        probs.add("type", present & out.isna().to_numpy(), _values(s, " is not a boolean"))
        return out
    return s


def _check_column(
    s: pd.Series, rule: ColumnRule, probs: _Problems, now: pd.Timestamp | None, ts: bool
) -> pd.Series:
    name = rule.name
    out = _coerce(s, rule, probs)
    missing = s.isna().to_numpy()
    if not rule.nullable:
        probs.add("null", missing, f"{name}: missing value")
    if rule.kind in ("int", "float") and (rule.min is not None or rule.max is not None):
        values = out.to_numpy(dtype="float64", na_value=np.nan)
        lo = -np.inf if rule.min is None else rule.min
        hi = np.inf if rule.max is None else rule.max
        with np.errstate(invalid="ignore"):
            below = values < lo if rule.min_inclusive else values <= lo
            outside = below | (values > hi) | np.isinf(values)
        bound = f"{'[' if rule.min_inclusive else '('}{rule.min}, {rule.max}]"
        probs.add("range", outside, _values(out.rename(name), f" outside {bound}"))
    if rule.kind == "str" and rule.categories is not None:
        unknown = ~missing & ~s.isin(rule.categories).to_numpy()
        probs.add("category", unknown, _values(s, " is not one of " + "|".join(rule.categories)))
    if ts and now is not None:
        future = (out > now).to_numpy(dtype=bool, na_value=False)
        probs.add("future_timestamp", future, _values(out.rename(name), f" is after now ({now.isoformat()})"))
    return out


def _final_dtype(values: pd.Series, kind: str) -> pd.Series:
    """Give accepted, coerced values their logical dtype (int64 / bool) when no value is missing."""
    if values.isna().any():
        return values
    if kind == "int" and not pd.api.types.is_integer_dtype(values):
        return values.astype("int64")
    if kind == "bool" and not pd.api.types.is_bool_dtype(values):
        return values.astype(bool)
    return values


def _row_keys(df: pd.DataFrame, key: tuple[str, ...], rows: np.ndarray) -> pd.Series:
    parts = [k + "=" + df[k].iloc[rows].astype(str).to_numpy() for k in key if k in df.columns]
    if not parts:
        return pd.Series([f"row={r}" for r in rows])
    out = pd.Series(parts[0])
    for p in parts[1:]:
        out = out + "|" + p
    return out


def _empty_quarantine() -> pd.DataFrame:
    # typed empty arrays, not Series + astype: a stream validates many small batches, most of them clean
    columns = {c: np.empty(0, dtype=object) for c in QUARANTINE_COLUMNS}
    columns["row_number"] = np.empty(0, dtype=np.int64)
    return pd.DataFrame(columns)


def _validate(
    df: pd.DataFrame,
    schema: TableSchema,
    now: pd.Timestamp | None,
    parent_ids: pd.Series | np.ndarray | None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    n = len(df)
    probs = _Problems(n=n, masks={}, details=[])
    coerced: dict[str, pd.Series] = {}
    for rule in schema.columns:
        if rule.name not in df.columns:
            probs.add("schema", np.ones(n, bool), f"missing column {rule.name}")
            continue
        out = _check_column(df[rule.name], rule, probs, now, rule.name in schema.timestamp_columns)
        if out is not df[rule.name]:
            coerced[rule.name] = out
    key = [k for k in schema.key if k in df.columns]
    if key and n:
        dup = df.duplicated(subset=key, keep=False).to_numpy() & df[key].notna().all(axis=1).to_numpy()
        probs.add(
            "duplicate_key",
            dup,
            lambda rows: "key " + _row_keys(df, tuple(key), rows) + " appears twice or more",
        )
    if parent_ids is not None and "applicant_id" in df.columns:
        ids = coerced.get("applicant_id", df["applicant_id"])
        orphan = ids.notna().to_numpy() & ~ids.isin(parent_ids).to_numpy()
        probs.add("orphan", orphan, _values(ids.rename("applicant_id"), " not in accepted applications"))

    bad = np.zeros(n, bool)
    for mask in probs.masks.values():
        bad |= mask
    n_bad = int(bad.sum())
    if n_bad == 0 and not coerced:
        accepted = df
    else:
        accepted = df.loc[~bad].copy() if n_bad else df.copy()
        kinds = {r.name: r.kind for r in schema.columns}
        for name, values in coerced.items():
            accepted[name] = _final_dtype(values.loc[~bad] if n_bad else values, kinds[name])
        if n_bad:
            accepted = accepted.reset_index(drop=True)

    quarantine = _empty_quarantine()
    if n_bad:
        long = pd.concat(
            [
                pd.DataFrame({"row": rows, "rule": rule, "detail": text.to_numpy()})
                for rule, rows, text in probs.details
            ],
            ignore_index=True,
        )
        long["order"] = long["rule"].map({r: i for i, r in enumerate(RULES)})
        long = long.sort_values(["row", "order"], kind="stable").drop_duplicates(["row", "rule", "detail"])
        grouped = long.groupby("row", sort=True)
        rules = grouped["rule"].agg(lambda r: ",".join(dict.fromkeys(r)))
        details = grouped["detail"].agg("; ".join)
        rows = rules.index.to_numpy()
        raw = df.iloc[rows].to_json(orient="records", lines=True, date_format="iso", default_handler=str)
        quarantine = pd.DataFrame(
            {
                "table": schema.name,
                "row_key": _row_keys(df, schema.key, rows).to_numpy(),
                "rule": rules.to_numpy(),
                "detail": details.to_numpy(),
                "raw": raw.rstrip("\n").split("\n"),
                "row_number": rows.astype("int64"),
            }
        )
    counts = {
        "rows_in": n,
        "accepted": len(accepted),
        "quarantined": len(quarantine),
        "rules": {r: int(probs.masks[r].sum()) for r in RULES if r in probs.masks},
    }
    if counts["rows_in"] != counts["accepted"] + counts["quarantined"]:
        raise RuntimeError(f"validation lost rows in table {schema.name}: {counts}")
    return accepted, quarantine, counts


def _report(
    counts: Mapping[str, Mapping[str, Any]], quarantine: pd.DataFrame, now: pd.Timestamp | None
) -> str:
    lines = ["# Data-quality report", ""]
    if now is not None:
        lines += [f"Validated as of `{now.isoformat()}`.", ""]
    lines += ["| table | rows in | accepted | quarantined |", "|---|---:|---:|---:|"]
    for table, c in counts.items():
        lines.append(f"| {table} | {c['rows_in']:,} | {c['accepted']:,} | {c['quarantined']:,} |")
    lines += ["", "## Rows per rule broken", ""]
    if quarantine.empty:
        return "\n".join([*lines, "No row broke a rule: nothing quarantined.", ""])
    lines += ["| table | rule | rows |", "|---|---|---:|"]
    for table, c in counts.items():
        lines += [f"| {table} | {rule} | {rows:,} |" for rule, rows in c["rules"].items()]
    lines += ["", "## Examples (up to 3 per table and rule)", "", "| table | row key | rules | detail |"]
    lines.append("|---|---|---|---|")
    for table, c in counts.items():
        q = quarantine[quarantine["table"] == table]
        for rule in c["rules"]:
            hits = q[q["rule"].str.split(",").apply(lambda rs, rule=rule: rule in rs)].head(3)
            for row in hits.itertuples():
                detail = str(row.detail).replace("|", "\\|")[:200]
                key = str(row.row_key).replace("|", "\\|")
                lines.append(f"| {table} | `{key}` | {row.rule} | {detail} |")
    return "\n".join(lines) + "\n"


def _finish(
    results: dict[str, tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]], now: pd.Timestamp | None
) -> ValidationResult:
    frames = [q for _, q, _ in results.values() if not q.empty]
    quarantine = pd.concat(frames, ignore_index=True) if frames else _empty_quarantine()
    counts = {name: c for name, (_, _, c) in results.items()}
    return ValidationResult(
        accepted={name: a for name, (a, _, _) in results.items()},
        quarantine=quarantine,
        report_markdown=_report(counts, quarantine, now),
        counts=counts,
    )


def _utc(now: pd.Timestamp | str | None) -> pd.Timestamp | None:
    if now is None:
        return None
    ts = pd.Timestamp(now)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def validate_world(world: CreditWorld, now: pd.Timestamp | str | None = None) -> ValidationResult:
    """Validate the three raw tables of a credit world against :data:`creditops.data.schema.WORLD_SCHEMAS`.

    Applications are validated first; bureau and transaction rows must reference an *accepted* application
    (so rows of a quarantined applicant are quarantined too, as ``orphan``).

    Args:
        world: The world to check.
        now: Timestamps after this are ``future_timestamp``; defaults to ``world.as_of``.

    Returns:
        Accepted tables, one quarantine frame, the report and per-table counts.
    """
    ts_now = _utc(now) if now is not None else _utc(world.as_of)
    results = {"applications": _validate(world.applications, WORLD_SCHEMAS["applications"], ts_now, None)}
    parent_ids = results["applications"][0]["applicant_id"]
    for name in ("bureau", "transactions"):
        results[name] = _validate(getattr(world, name), WORLD_SCHEMAS[name], ts_now, parent_ids)
    return _finish(results, ts_now)


def schema_from_spec(spec: DatasetSpec) -> TableSchema:
    """Validation rules implied by a dataset spec (id unique and present, target present, feature types)."""
    # ids may be numbers or text ("L-0001"); what matters is that each row has one and no two share it
    columns = [ColumnRule(spec.id_column, "any")]
    if spec.timestamp_column:
        columns.append(ColumnRule(spec.timestamp_column, "timestamp"))
    columns.append(ColumnRule(spec.target, "any"))
    for f in spec.features:
        lo, hi = f.valid_range or (None, None)
        if f.type == "numeric":
            columns.append(ColumnRule(f.name, "float", nullable=True, min=lo, max=hi))
        else:
            cats = tuple(f.categories) if f.categories is not None else None
            columns.append(ColumnRule(f.name, "str", nullable=True, categories=cats))
    columns += [
        ColumnRule(p, "any", nullable=True) for p in spec.protected if p not in {c.name for c in columns}
    ]
    return TableSchema(
        name=spec.name,
        key=(spec.id_column,),
        columns=tuple(columns),
        timestamp_columns=(spec.timestamp_column,) if spec.timestamp_column else (),
    )


def validate_table(
    df: pd.DataFrame, spec: DatasetSpec | TableSchema, now: pd.Timestamp | str | None = None
) -> ValidationResult:
    """Validate one table against a dataset spec (or an explicit :class:`TableSchema`).

    Args:
        df: The table as loaded.
        spec: Its dataset spec, or a table schema such as ``WORLD_SCHEMAS["applications"]``.
        now: Timestamps after this break ``future_timestamp``; ``None`` skips that rule.

    Returns:
        The accepted rows under the table's name, the quarantine frame, report and counts.
    """
    schema = schema_from_spec(spec) if isinstance(spec, DatasetSpec) else spec
    ts_now = _utc(now)
    return _finish({schema.name: _validate(df, schema, ts_now, None)}, ts_now)


# --- records that are clean: the same rules, no frame -----------------------------------------------------
# A stream validates ~50 records a batch; building a frame and running validate_table costs ~6 ms of fixed
# pandas overhead there, though almost every batch is clean. ``clean_records`` applies the same ColumnRules
# to plain records and answers only "every record passes": a value of another Python type than the rule's
# plain one (a number as text, a bool as 0/1, a timestamp with another offset), which validate_table may
# still accept, is not judged here; the caller then runs validate_table, whose verdict and reasons stand.

_UTC_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|\+00:00)")
_INT64 = (-(2**63), 2**63)


def _plain_values(rule: ColumnRule, values: list) -> np.ndarray | None:
    """``values`` as validate_table would accept them (same dtype), or None if any might break a rule."""
    kind = rule.kind
    if kind == "int":
        if not all(type(v) is int and _INT64[0] <= v < _INT64[1] for v in values):
            return None
        out = np.asarray(values, dtype=np.int64)
    elif kind == "float":
        if not all(
            (type(v) is int and _INT64[0] <= v < _INT64[1]) or (type(v) is float and math.isfinite(v))
            for v in values
        ):
            return None
        out = np.asarray(values)  # int64 when every value is an int, as a frame of these records infers
    elif kind == "bool":
        return np.asarray(values, dtype=bool) if all(type(v) is bool for v in values) else None
    elif kind == "str":
        if not all(type(v) is str for v in values):
            return None
        if rule.categories is not None and not set(values).issubset(rule.categories):
            return None
        return np.asarray(values, dtype=object)
    elif kind == "timestamp":
        # years a nanosecond timestamp holds whole (to_datetime makes the others NaT: a ``type`` break)
        if not all(type(v) is str and _UTC_ISO.fullmatch(v) and "1678" <= v[:4] <= "2261" for v in values):
            return None
        try:  # numpy reads the ISO text without its UTC suffix to the nanosecond, as to_datetime does
            naive = np.array([v[:-1] if v[-1] == "Z" else v[:-6] for v in values], dtype="datetime64[ns]")
        except ValueError:  # e.g. month 13
            return None
        return naive
    else:  # "any": a frame infers its dtype from whatever the values are; validate_table decides
        return None
    if rule.min is not None or rule.max is not None:
        floats = out.astype(np.float64)
        lo = -np.inf if rule.min is None else rule.min
        hi = np.inf if rule.max is None else rule.max
        below = floats < lo if rule.min_inclusive else floats <= lo
        if (below | (floats > hi)).any():
            return None
    return out


def clean_records(
    records: Sequence[Mapping[str, Any]],
    schema: TableSchema,
    now: pd.Timestamp | str | None = None,
    extra: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame | None:
    """The accepted frame of ``validate_table(frame of records, schema, now)`` when it accepts every record.

    None when a record breaks a rule of ``schema`` (its columns' type, null, range, category and
    ``future_timestamp`` rules, the rules validate_table applies to one table; ``schema`` must have no key,
    whose duplicates are not checked here) or holds a value of another type than the rule's plain one (see
    above): then validate_table decides. ``extra`` columns (one value per record) are appended to the frame
    (one frame built, not a column set afterwards: the stream's batches are small).
    """
    if schema.key:
        raise ValueError(f"clean_records checks column rules only; {schema.name} has a key")
    ts_now = _utc(now)
    columns: dict[str, Any] = {}
    for rule in schema.columns:
        values = _plain_values(rule, [r.get(rule.name) for r in records])
        if values is None:
            return None
        if rule.kind == "timestamp":
            if ts_now is not None and rule.name in schema.timestamp_columns and len(values):
                if (values.view(np.int64) > ts_now.value).any():
                    return None
            values = pd.DatetimeIndex(values).tz_localize("UTC")
        columns[rule.name] = values
    return pd.DataFrame({**columns, **(extra or {})})
