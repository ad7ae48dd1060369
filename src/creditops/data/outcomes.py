"""Realised outcomes of served applicants: synthetic emitter, validated ingestion, join to decisions.

Outcomes arrive months after the decision. An outcome row is ``applicant_id`` (or ``prediction_id``),
``outcome_date`` (when the outcome became known: the default date, or the end of the performance window for
a good account), ``defaulted`` (0/1) and optionally ``delinquency_date`` (first 30+ days past due, for
vintage curves).

:func:`synthetic_outcomes` emits them for served decisions, with a configurable delay and an injected concept
drift: the true log-odds of default mix the served PD's log-odds with an independent risk factor the model
cannot see (``concept_drift`` = weight of the unseen factor: 0 keeps the model right, 1 makes it useless), and
``rate_shift`` moves the default rate (a calibration drift).

:func:`ingest_outcomes` validates a file (bad rows are quarantined with a reason, never dropped) and merges
the good ones into the outcome store; :func:`join_outcomes` attaches matured outcomes to audited decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from creditops.errors import DataError

OUTCOME_COLUMNS = ("applicant_id", "prediction_id", "outcome_date", "defaulted", "delinquency_date")


def synthetic_outcomes(
    decisions: pd.DataFrame,
    *,
    seed: int = 0,
    horizon_days: int = 365,
    delay_days: int = 30,
    concept_drift: float = 0.0,
    rate_shift: float = 0.0,
    drift_from: Any = None,
    as_of: Any = None,
) -> pd.DataFrame:
    """Outcomes for served decisions (one per decision), as a lender's servicing system would report them.

    Args:
        decisions: Served decisions with ``ts`` (decision time), ``pd`` and ``applicant_id`` and/or
            ``prediction_id``.
        seed: Random seed.
        horizon_days: Performance window: defaults happen within it, good accounts are known at its end.
        delay_days: Reporting delay added to every outcome date (the servicing feed lags).
        concept_drift: Weight in [0, 1] of a risk factor the model does not see in the true log-odds.
        rate_shift: Added to the true log-odds (positive = more defaults than predicted).
        drift_from: Drift applies only to decisions at or after this time (None = all).
        as_of: Only outcomes known by then are returned (None = all, i.e. fully matured).

    Raises:
        DataError: required columns are missing or ``concept_drift`` is outside [0, 1].
    """
    missing = [c for c in ("ts", "pd") if c not in decisions.columns]
    if missing or not ({"applicant_id", "prediction_id"} & set(decisions.columns)):
        raise DataError(f"decisions need ts, pd and applicant_id or prediction_id (missing {missing})")
    if not 0.0 <= concept_drift <= 1.0:
        raise DataError(f"concept_drift must be in [0, 1], got {concept_drift}")
    rng = np.random.default_rng(seed)
    n = len(decisions)
    ts = pd.to_datetime(decisions["ts"], utc=True).reset_index(drop=True)
    p = np.clip(decisions["pd"].to_numpy(dtype=float), 1e-6, 1 - 1e-6)
    logit = np.log(p / (1 - p))
    drifted = np.ones(n, dtype=bool) if drift_from is None else (ts >= _utc(drift_from)).to_numpy()
    w = np.where(drifted, concept_drift, 0.0)
    # An unseen factor with the same spread as the model's log-odds: mixing keeps the default rate roughly
    # where it was while destroying the ranking the model learned.
    hidden = rng.normal(logit.mean(), logit.std() if n > 1 else 1.0, n)
    true_logit = np.sqrt(1 - w**2) * (logit - logit.mean()) + logit.mean() + w * (hidden - logit.mean())
    true_logit = true_logit + np.where(drifted, rate_shift, 0.0)
    defaulted = rng.random(n) < 1 / (1 + np.exp(-true_logit))
    default_day = rng.integers(60, max(horizon_days, 61), n)
    days = np.where(defaulted, default_day, horizon_days) + delay_days
    outcome_date = ts + pd.to_timedelta(days, unit="D")
    delinquency = ts + pd.to_timedelta(np.maximum(default_day - 60, 1), unit="D")
    out = pd.DataFrame(
        {
            "outcome_date": outcome_date,
            "defaulted": defaulted.astype(np.int8),
            "delinquency_date": delinquency.where(defaulted, pd.NaT),
        }
    )
    for key in ("applicant_id", "prediction_id"):
        if key in decisions.columns:
            out.insert(0, key, decisions[key].astype(str).to_numpy())
    if as_of is not None:
        out = out[out["outcome_date"] <= _utc(as_of)].reset_index(drop=True)
    return out


def _utc(ts: Any) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


@dataclass
class OutcomeIngest:
    """What :func:`ingest_outcomes` did (rows in = accepted + quarantined)."""

    rows_in: int
    rows_accepted: int
    rows_quarantined: int
    store_path: str
    quarantine_path: str | None
    store_rows: int


def read_outcome_file(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet outcome file as strings/objects (validation converts).

    Raises:
        DataError: the file is missing or of an unknown type.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"outcome file {path} does not exist")
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    raise DataError(f"outcome file {path}: use .csv or .parquet")


def validate_outcomes(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split outcome rows into valid ones (typed) and quarantined ones (with the reason, the first problem).

    Raises:
        DataError: no id column (``applicant_id`` or ``prediction_id``), or ``outcome_date`` / ``defaulted``
            missing: the whole file is unusable, named in one line.
    """
    keys = [k for k in ("applicant_id", "prediction_id") if k in raw.columns]
    missing = [c for c in ("outcome_date", "defaulted") if c not in raw.columns]
    if not keys or missing:
        need = missing + ([] if keys else ["applicant_id or prediction_id"])
        raise DataError(f"outcome file lacks column(s): {', '.join(need)}")
    unknown = sorted(set(raw.columns) - set(OUTCOME_COLUMNS))
    if unknown:
        raise DataError(f"outcome file has unknown column(s): {', '.join(unknown)}")
    frame = raw.reset_index(drop=True).copy()
    reason = pd.Series("", index=frame.index, dtype=object)

    def flag(mask: pd.Series, text: str) -> None:
        reason[mask & (reason == "")] = text

    key_text = frame[keys].astype("string").fillna("").apply(lambda c: c.str.strip())
    flag((key_text == "").all(axis=1), f"{'/'.join(keys)}: empty")
    dates = pd.to_datetime(frame["outcome_date"], utc=True, errors="coerce", format="mixed")
    flag(dates.isna(), "outcome_date: not a date")
    flag_text = frame["defaulted"].astype("string").str.strip().str.lower()
    value = flag_text.map({"0": 0, "1": 1, "0.0": 0, "1.0": 1, "true": 1, "false": 0})
    flag(value.isna(), "defaulted: must be 0 or 1")
    if "delinquency_date" in frame.columns:
        raw_d = frame["delinquency_date"].astype("string").fillna("").str.strip()
        delinquency = pd.to_datetime(
            raw_d.where(raw_d != "", None), utc=True, errors="coerce", format="mixed"
        )
        flag(
            (raw_d != "") & (raw_d.str.lower() != "nat") & delinquency.isna(), "delinquency_date: not a date"
        )
    else:
        delinquency = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    bad = reason != ""
    good = pd.DataFrame({k: key_text.loc[~bad, k].astype(str) for k in keys})
    good["outcome_date"] = dates[~bad]
    good["defaulted"] = value[~bad].astype(np.int8)
    good["delinquency_date"] = delinquency[~bad]
    quarantined = raw.reset_index(drop=True).loc[bad].astype(str).assign(reason=reason[bad])
    return good.reset_index(drop=True), quarantined.reset_index(drop=True)


def ingest_outcomes(path: str | Path, store_dir: str | Path) -> OutcomeIngest:
    """Validate an outcome file and merge its good rows into ``<store_dir>/outcomes.parquet``.

    A later report of the same key replaces the earlier one (a correction). Bad rows are written to
    ``<store_dir>/quarantine/<file>.parquet`` with the reason.
    """
    raw = read_outcome_file(path)
    good, bad = validate_outcomes(raw)
    store_dir = Path(store_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    store = store_dir / "outcomes.parquet"
    merged = good
    if store.is_file():
        merged = pd.concat([pd.read_parquet(store), good], ignore_index=True)
    keys = [k for k in ("prediction_id", "applicant_id") if k in merged.columns]
    for k in keys:
        merged[k] = merged[k].astype("string")
    merged = merged.drop_duplicates(subset=keys, keep="last").reset_index(drop=True)
    tmp = store.with_name(".outcomes.parquet.tmp")
    merged.to_parquet(tmp, index=False)
    tmp.replace(store)
    qpath = None
    if len(bad):
        qdir = store_dir / "quarantine"
        qdir.mkdir(exist_ok=True)
        qpath = qdir / f"{Path(path).stem}.parquet"
        bad.to_parquet(qpath, index=False)
    return OutcomeIngest(
        len(raw), len(good), len(bad), str(store), str(qpath) if qpath else None, len(merged)
    )


def load_outcome_store(store_dir: str | Path) -> pd.DataFrame:
    """The ingested outcomes (empty frame when none yet)."""
    store = Path(store_dir) / "outcomes.parquet"
    if not store.is_file():
        return pd.DataFrame(columns=["applicant_id", "outcome_date", "defaulted", "delinquency_date"])
    return pd.read_parquet(store)


def join_outcomes(
    prediction_id: np.ndarray,
    applicant_id: np.ndarray,
    ts: np.ndarray,
    outcomes: pd.DataFrame,
    as_of: Any = None,
) -> pd.DataFrame:
    """Attach to each decision its outcome known by ``as_of``: by prediction id, else by applicant id.

    An applicant outcome belongs to that applicant's latest decision before the outcome date (a re-application
    after the default does not inherit it).

    Returns:
        One row per decision (input order): ``defaulted`` (NaN = not matured / unknown), ``outcome_date``,
        ``delinquency_date``.
    """
    n = len(prediction_id)
    result = pd.DataFrame(
        {
            "defaulted": np.full(n, np.nan),
            "outcome_date": pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]"),
            "delinquency_date": pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]"),
        }
    )
    if outcomes is None or outcomes.empty:
        return result
    out = outcomes.copy()
    out["outcome_date"] = pd.to_datetime(out["outcome_date"], utc=True)
    if "delinquency_date" not in out.columns:
        out["delinquency_date"] = pd.NaT
    out["delinquency_date"] = pd.to_datetime(out["delinquency_date"], utc=True)
    if as_of is not None:
        out = out[out["outcome_date"] <= _utc(as_of)]
    cols = ["defaulted", "outcome_date", "delinquency_date"]
    dec = pd.DataFrame(
        {
            "pid": pd.Series(prediction_id, dtype="string"),
            "aid": pd.Series(applicant_id, dtype="string"),
            "ts": pd.to_datetime(pd.Series(ts), utc=True),
            "row": np.arange(n),
        }
    )
    if "prediction_id" in out.columns:
        by_pid = out.dropna(subset=["prediction_id"]).astype({"prediction_id": "string"})
        m = dec.merge(by_pid[["prediction_id", *cols]], left_on="pid", right_on="prediction_id", how="inner")
        _assign(result, m["row"].to_numpy(), m, cols)
    if "applicant_id" in out.columns:
        by_aid = out.dropna(subset=["applicant_id"]).astype({"applicant_id": "string"})
        by_aid = by_aid[by_aid["applicant_id"] != ""]
        d = dec[(dec["aid"].fillna("") != "") & result["defaulted"].isna().to_numpy()]
        if len(d) and len(by_aid):
            left = by_aid[["applicant_id", *cols]].sort_values("outcome_date")
            right = d.sort_values("ts")
            m = pd.merge_asof(
                left, right, left_on="outcome_date", right_on="ts", left_by="applicant_id", right_by="aid",
                direction="backward",
            ).dropna(subset=["row"])  # fmt: skip
            # several outcomes on one decision: the latest report wins
            m = m.sort_values("outcome_date").drop_duplicates(subset=["row"], keep="last")
            _assign(result, m["row"].astype(int).to_numpy(), m, cols)
    result["defaulted"] = result["defaulted"].astype(float)
    return result


def _assign(result: pd.DataFrame, rows: np.ndarray, matched: pd.DataFrame, cols: list[str]) -> None:
    """Copy matched outcome columns into ``result`` at ``rows``, keeping each column's dtype."""
    y = result["defaulted"].to_numpy(dtype=float, copy=True)
    y[rows] = matched["defaulted"].to_numpy(dtype=float)
    result["defaulted"] = y
    for c in cols[1:]:
        ns = result[c].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").copy()
        ns[rows] = pd.to_datetime(matched[c], utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
        result[c] = pd.DatetimeIndex(ns).tz_localize("UTC")
