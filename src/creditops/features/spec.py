"""Features of a dataset described by a :class:`~creditops.data.spec.DatasetSpec` (bring your own data).

Numeric columns are model inputs as they are (``int`` when whole numbers without gaps, else float). A
categorical column becomes one 0/1 column per category, named ``<column>__<category slug>``: categories are
the spec's ``categories`` when declared, otherwise the sorted distinct values seen at training time,
recorded in the contract's ``encodings`` so the same encoding is applied later. A value outside the known
categories (or missing) encodes as all zeros, the usual "unknown" of one-hot encoding.

Adverse-action reasons come from the spec (``reason`` of a numeric feature, ``category_reasons`` of a
categorical); without one, a numeric feature's reason names it and its declared adverse side
(:func:`fallback_reason`), a category's names the feature and the category held. The contract carries them
as ``reasons`` (per model column) and ``category_reasons`` (source column -> category -> text).

Every row is stamped with the spec's ``timestamp_column`` (UTC). A dataset without one is undated: all rows
get :data:`UNDATED_AS_OF`, a constant as-of chosen so the same data always gives the same feature table;
the training entities carry the same stamp, so Feast's point-in-time join returns each row's own values.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd

from creditops.data.spec import DatasetSpec
from creditops.features.contract import FeatureContract
from creditops.features.registry import TIMESTAMP

#: Event time of every row of a dataset whose spec has no ``timestamp_column`` (its as-of).
UNDATED_AS_OF = pd.Timestamp("2000-01-01T00:00:00Z")
#: Longest feature column name (Postgres truncates identifiers beyond 63 bytes).
MAX_NAME = 60
_SLUG = re.compile(r"[^0-9a-z]+")


def category_label(value: object) -> str:
    """The category a raw value stands for (``1``, ``1.0`` and ``"1"`` are the same category)."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _short(name: str) -> str:
    if len(name) <= MAX_NAME:
        return name
    return f"{name[: MAX_NAME - 9]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def _one_hot_names(column: str, categories: list[str], taken: set[str]) -> dict[str, str]:
    """Category -> unique, Feast- and SQL-safe column name ``<column>__<slug>``."""
    names: dict[str, str] = {}
    for category in categories:
        slug = _SLUG.sub("_", category.lower()).strip("_") or "blank"
        base = name = _short(f"{column}__{slug}")
        n = 2
        while name in taken:
            name, n = _short(f"{base}_{n}"), n + 1
        taken.add(name)
        names[category] = name
    return names


def _labels(series: pd.Series) -> pd.Series:
    """Category labels of a column (missing stays missing)."""
    uniques = series.dropna().unique()
    return series.map({v: category_label(v) for v in uniques})


def _numeric_dtype(series: pd.Series) -> str:
    """``int`` for a whole-number column without gaps (counts, 0/1 flags), else ``float``.

    Recorded so that the gates treat counts and flags as such (noise is rounded back to whole numbers) and
    Feast stores them as Int64.
    """
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_integer_dtype(series):
        return "float"
    return "int" if series.notna().all() else "float"


def _sentence(name: str) -> str:
    """A column name as the start of a sentence: ``debt_ratio`` -> ``Debt ratio``, ``DTI`` stays ``DTI``."""
    label = name.replace("_", " ").strip()
    return label[:1].upper() + label[1:]


def fallback_reason(name: str, direction: int) -> str:
    """The adverse-action reason of a numeric feature whose spec gives none: the feature, and no more.

    With a declared direction the text says which side is adverse (``Debt ratio is high``); without one it
    names the feature only, because the data alone does not say why a value raised the PD.
    """
    label = _sentence(name)
    return {1: f"{label} is high", -1: f"{label} is low"}.get(int(direction), f"{label} (value given)")


def spec_contract(df: pd.DataFrame, spec: DatasetSpec) -> FeatureContract:
    """The contract of a spec dataset: service ``<name>_v1``, one view ``<name>_fv``, the encoding.

    Args:
        df: The (validated) dataset; only read for the categories of categorical features that do not
            declare ``categories``.
        spec: Its dataset spec.
    """
    taken = {spec.id_column, TIMESTAMP, spec.target, *spec.protected}
    taken |= {f.name for f in spec.features if f.type == "numeric"}
    features: list[str] = []
    dtypes: dict[str, str] = {}
    directions: dict[str, int] = {}
    reasons: dict[str, str] = {}
    category_reasons: dict[str, dict[str, str]] = {}
    encodings: dict[str, dict[str, str]] = {}
    ranges: dict[str, tuple[float | None, float | None]] = {}
    for feature in spec.features:
        if feature.type == "numeric":
            features.append(feature.name)
            dtypes[feature.name] = _numeric_dtype(df[feature.name])
            directions[feature.name] = int(feature.direction)
            reasons[feature.name] = feature.reason or fallback_reason(feature.name, feature.direction)
            if feature.valid_range is not None and tuple(feature.valid_range) != (None, None):
                ranges[feature.name] = tuple(feature.valid_range)
            continue
        declared = feature.categories
        categories = (
            [category_label(c) for c in declared]
            if declared is not None
            else sorted(_labels(df[feature.name]).dropna().unique().tolist())
        )
        encodings[feature.name] = _one_hot_names(feature.name, list(dict.fromkeys(categories)), taken)
        category_reasons[feature.name] = {}
        for category, column in encodings[feature.name].items():
            features.append(column)
            dtypes[column] = "int"
            directions[column] = 0  # a spec direction orders values; categories have no order
            text = feature.category_reasons.get(category) or f"{_sentence(feature.name)}: {category}"
            reasons[column] = category_reasons[feature.name][category] = text
    id_dtype = "int" if df.empty or pd.api.types.is_integer_dtype(df[spec.id_column]) else "str"
    return FeatureContract(
        kind="spec",
        name=spec.name,
        service=f"{spec.name}_v1",
        entity=f"{spec.name}_record",
        join_key=spec.id_column,
        join_key_dtype=id_dtype,
        tables=[spec.name],
        features=features,
        dtypes=dtypes,
        directions=directions,
        reasons=reasons,
        category_reasons=category_reasons,
        target=spec.target,
        protected=list(spec.protected),
        encodings=encodings,
        valid_ranges=ranges,
    )


def event_timestamps(df: pd.DataFrame, spec: DatasetSpec) -> pd.Series:
    """Each row's event time (UTC): the spec's timestamp column, else :data:`UNDATED_AS_OF`."""
    if spec.timestamp_column:
        ts = pd.to_datetime(df[spec.timestamp_column], utc=True)
    else:
        ts = pd.Series(UNDATED_AS_OF, index=df.index)
    return ts.astype("datetime64[ns, UTC]").reset_index(drop=True)


def spec_feature_table(
    df: pd.DataFrame, spec: DatasetSpec, contract: FeatureContract | None = None
) -> pd.DataFrame:
    """The feature table of a spec dataset: id column, ``event_timestamp``, then the contract's features.

    Args:
        df: The (validated) dataset.
        spec: Its dataset spec.
        contract: The encoding to apply (e.g. the one recorded at training); default
            :func:`spec_contract` of ``df``.

    Returns:
        One row per input row, in input order; numeric features float64, one-hot columns int64.
    """
    contract = contract or spec_contract(df, spec)
    columns: dict[str, pd.Series | np.ndarray] = {
        contract.join_key: df[spec.id_column].reset_index(drop=True),
        contract.timestamp: event_timestamps(df, spec),
    }
    onehot: dict[str, np.ndarray] = {}
    for source, mapping in contract.encodings.items():
        labels = _labels(df[source]).to_numpy()
        for category, column in mapping.items():
            onehot[column] = (labels == category).astype("int64")
    for name in contract.features:
        columns[name] = onehot[name] if name in onehot else _numeric(df[name], contract.dtypes[name])
    return pd.DataFrame(columns)


def _numeric(series: pd.Series, dtype: str) -> np.ndarray:
    values = pd.to_numeric(series).astype("float64").to_numpy()
    whole = dtype == "int" and not np.isnan(values).any() and np.equal(np.mod(values, 1), 0).all()
    return values.astype("int64") if whole else values  # a gap or fraction at scoring time stays float


def spec_entity_frame(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Training entities: id, ``event_timestamp``, target as 0/1, protected attributes (never inputs)."""
    frame = pd.DataFrame(
        {
            spec.id_column: df[spec.id_column].reset_index(drop=True),
            TIMESTAMP: event_timestamps(df, spec),
            spec.target: spec.encode_target(df).reset_index(drop=True),
        }
    )
    for column in spec.protected:
        frame[column] = df[column].reset_index(drop=True)
    return frame
