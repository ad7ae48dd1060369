"""Bring your own data: a YAML dataset spec and the loader that reads CSV or Parquet through it.

A :class:`DatasetSpec` names the file, its id / timestamp / target columns, the protected attributes and the
model features (numeric or categorical, with an optional monotone ``direction``). ``path`` is either a file
path (relative paths are resolved against the spec file's folder) or a packaged resource
``package:<package>/<path inside the package>`` (how the two shipped real datasets are found without
copying them). ``derived`` columns (value maps, age bands, one-hot indicators folded into one label) let
a spec create protected attributes such as ``sex`` from the raw columns a file has.

Example::

    name: my_loans
    path: data/loans.csv
    format: csv
    id_column: loan_id
    target: defaulted
    positive_value: 1
    protected: [sex]
    features:
      - {name: income, type: numeric, direction: -1}
      - {name: purpose, type: categorical}
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from creditops.data.schema import age_band
from creditops.errors import DataError

PACKAGE_PREFIX = "package:"


class FeatureSpec(BaseModel):
    """One model input column of a dataset.

    Attributes:
        name: Column name.
        type: ``numeric`` (coerced to float) or ``categorical``.
        direction: Monotone constraint: +1 higher value = higher risk, -1 lower risk, 0 none.
        valid_range: Optional ``[min, max]`` (either may be null) checked by validation.
        categories: Optional allowed values of a categorical feature checked by validation.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    type: Literal["numeric", "categorical"]
    direction: Literal[-1, 0, 1] = 0
    valid_range: tuple[float | None, float | None] | None = None
    categories: list[str] | None = None


class DerivedColumn(BaseModel):
    """A column computed from raw columns when the dataset is loaded.

    Attributes:
        name: Name of the new column.
        kind: ``map`` (value lookup on ``source``), ``age_band`` (ages → ``18-25 … 65+``) or ``indicators``
            (``mapping`` of 0/1 column → label; the first column equal to 1 gives the label, else
            ``default``).
        source: The raw column (``map``, ``age_band``); unused for ``indicators``.
        mapping: Value → label (``map``) or indicator column → label (``indicators``).
        default: Label when no mapping applies (``None`` leaves the value missing).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["map", "age_band", "indicators"]
    source: str | None = None
    mapping: dict[str | int | float, str] = Field(default_factory=dict)
    default: str | None = None


class DatasetSpec(BaseModel):
    """Everything creditops needs to know about a tabular credit dataset (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    path: str
    format: Literal["csv", "parquet"] = "csv"
    id_column: str
    timestamp_column: str | None = None
    target: str
    positive_value: str | int | float | bool
    protected: list[str] = Field(default_factory=list)
    features: list[FeatureSpec]
    derived: list[DerivedColumn] = Field(default_factory=list)
    description: str | None = None

    @classmethod
    def from_yaml(cls, path: str | Path) -> DatasetSpec:
        """Read and validate a spec file; a relative ``path`` inside it is resolved against the file's folder.

        Raises:
            DataError: If the file is missing, is not YAML, or does not describe a valid spec.
        """
        spec_path = Path(path)
        try:
            raw = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"{spec_path}: dataset spec not found") from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise DataError(f"{spec_path}: cannot read dataset spec: {exc}") from None
        if not isinstance(raw, dict):
            raise DataError(f"{spec_path}: dataset spec must be a YAML mapping, got {type(raw).__name__}")
        try:
            spec = cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors()
            )
            raise DataError(f"{spec_path}: invalid dataset spec: {problems}") from None
        if not spec.path.startswith(PACKAGE_PREFIX) and not Path(spec.path).is_absolute():
            spec = spec.model_copy(update={"path": str((spec_path.parent / spec.path).resolve())})
        return spec

    @property
    def feature_names(self) -> list[str]:
        """Model feature names, in spec order."""
        return [f.name for f in self.features]

    def feature_directions(self) -> dict[str, int]:
        """Monotone direction per feature (+1 higher = riskier, -1 safer, 0 none)."""
        return {f.name: int(f.direction) for f in self.features}

    def required_columns(self) -> list[str]:
        """Every column the spec names (id, timestamp, target, protected, features), without repeats."""
        names = [self.id_column, self.timestamp_column, self.target, *self.protected, *self.feature_names]
        return list(dict.fromkeys(n for n in names if n))

    def resolve_path(self) -> Path:
        """The data file on disk (a ``package:`` path is looked up in the installed package, not imported).

        Raises:
            DataError: If a ``package:`` path names a package that is not installed.
        """
        if not self.path.startswith(PACKAGE_PREFIX):
            return Path(self.path)
        package, _, inner = self.path[len(PACKAGE_PREFIX) :].partition("/")
        found = importlib.util.find_spec(package) if package else None
        if found is None or not found.submodule_search_locations:
            raise DataError(f"{self.path}: package {package!r} is not installed (dataset {self.name!r})")
        return Path(next(iter(found.submodule_search_locations))) / inner

    def encode_target(self, df: pd.DataFrame) -> pd.Series:
        """The target as int8 0/1, 1 where the column equals ``positive_value``."""
        return (df[self.target] == self.positive_value).astype(np.int8).rename(self.target)


def _read(path: Path, fmt: str, label: str) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{label}: file not found")
    try:
        if fmt == "csv":
            return pd.read_csv(path, low_memory=False)
        return pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{label}: file is empty") from None
    except Exception as exc:  # pandas/pyarrow raise many types for corrupt input; all mean the same here
        raise DataError(f"{label}: cannot read as {fmt}: {type(exc).__name__}: {exc}") from None


def _derive(df: pd.DataFrame, col: DerivedColumn, label: str) -> pd.Series:
    needed = list(col.mapping) if col.kind == "indicators" else [col.source]
    missing = [str(c) for c in needed if c not in df.columns]
    if missing:
        raise DataError(f"{label}: derived column {col.name!r} needs missing column(s) {', '.join(missing)}")
    if col.kind == "age_band":
        return pd.Series(
            age_band(pd.to_numeric(df[col.source], errors="coerce")), index=df.index, dtype="object"
        )
    if col.kind == "map":
        out = df[col.source].map(col.mapping)
    else:
        out = pd.Series(np.nan, index=df.index, dtype="object")
        for column, value in reversed(list(col.mapping.items())):
            out = out.mask(df[column] == 1, value)
    return out if col.default is None else out.fillna(col.default)


def load_dataset(spec: DatasetSpec) -> pd.DataFrame:
    """Read the spec's file, add derived columns and the id column if absent, and check every named column.

    When the file has no ``id_column`` one is added (int64 row number from 0). Values are returned as read;
    :func:`creditops.data.validation.validate_table` coerces and checks them.

    Args:
        spec: The dataset spec.

    Returns:
        The dataset with every column the spec names.

    Raises:
        DataError: If the file is missing, empty, unreadable or corrupt, or a named column is absent;
            the message names the file and the problem.
    """
    path = spec.resolve_path()
    label = str(path) if not spec.path.startswith(PACKAGE_PREFIX) else f"{spec.path} ({path})"
    df = _read(path, spec.format, label)
    for col in spec.derived:
        df[col.name] = _derive(df, col, label)
    if spec.id_column not in df.columns:
        df.insert(0, spec.id_column, np.arange(len(df), dtype=np.int64))
    missing = [c for c in spec.required_columns() if c not in df.columns]
    if missing:
        raise DataError(
            f"{label}: column(s) named in dataset spec {spec.name!r} are absent: {', '.join(missing)}"
        )
    return df
