"""Bring your own data: a YAML dataset spec and the loader that reads CSV or Parquet through it.

A :class:`DatasetSpec` names the file, its id / timestamp / target columns, the protected attributes and the
model features (numeric or categorical, with an optional monotone ``direction`` and adverse-action
``reason``). ``path`` is either a file path (relative paths are resolved against the spec file's folder)
or a packaged resource ``package:<package>/<path inside the package>`` (how the two shipped real datasets
are found without copying them). ``derived`` columns (value maps, age bands, one-hot indicators folded into
one label) let a spec create protected attributes such as ``sex`` from the raw columns a file has.

A protected attribute is protected together with its **lineage**: the columns it is derived from (a
derived column's ``source``, or an ``indicators`` column's 0/1 inputs). No feature may be a protected
attribute or one of its source columns, and no feature may be a column that stands for a prohibited basis
of credit discrimination under ECOA / Regulation B (:data:`PROHIBITED_BASIS`, which a spec extends with
``prohibited_columns``). A feature the prohibited-basis guard refuses may be opted in with a recorded
``justification`` (shown in the model card), except age: Reg B allows age only in a system that never
gives applicants aged 62+ a negative factor from it, which creditops does not enforce, so age is refused.

Mistakes are reported at load time as one :class:`~creditops.errors.DataError` line naming the field and
the fix: :meth:`DatasetSpec.from_yaml` checks the spec itself, :func:`check_dataset` checks it against the
data (positive value present, enough of both classes, numeric columns numeric, categoricals of sane size,
protected attributes with few groups).

Example::

    name: my_loans
    description: Consumer loans booked 2019-2023 by branch X.
    purpose: Estimate the probability that an applicant defaults within 12 months.
    path: data/loans.csv
    format: csv
    id_column: loan_id
    target: defaulted
    positive_value: 1
    protected: [sex, age_band]
    derived:
      - {name: age_band, kind: age_band, source: age}
    features:
      - {name: income, type: numeric, direction: -1, reason: Income is too low for the amount requested}
      - name: purpose
        type: categorical
        category_reasons: {business: Business loans carry higher risk}
"""

from __future__ import annotations

import difflib
import importlib.util
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from creditops.data.schema import age_band
from creditops.errors import DataError

PACKAGE_PREFIX = "package:"
#: Fewest rows of each target class that can be split into train, validation and test and still judged.
MIN_CLASS_ROWS = 50
#: A protected attribute with more groups than this is continuous (e.g. raw age): it must be banded.
MAX_PROTECTED_GROUPS = 20
#: Share of a numeric column's present values that may fail to parse before the column is called text
#: (fewer are quarantined row by row at validation, like any bad value).
MAX_NON_NUMERIC_SHARE = 0.10
AGE = "age"

#: Column names (normalised: lower case, runs of other characters as ``_``) that stand for a prohibited
#: basis under ECOA / Regulation B (12 CFR 1002.2(z)): race, color, religion, national origin, sex,
#: marital status, age, receipt of public assistance (good-faith exercise of Consumer Credit Protection Act
#: rights has no column). A spec extends the list with ``prohibited_columns``.
PROHIBITED_BASIS: dict[str, str] = {
    **dict.fromkeys(
        ("race", "race_ethnicity", "ethnicity", "ethnic_group", "white", "black", "hispanic", "hispan",
         "asian", "native_american", "applicant_race", "applicant_ethnicity", "minority"),
        "race",
    ),
    **dict.fromkeys(("color", "colour", "skin_color", "skin_colour"), "color"),
    **dict.fromkeys(("religion", "religious_affiliation", "faith"), "religion"),
    **dict.fromkeys(
        ("national_origin", "nationality", "citizenship", "country_of_birth", "birth_country",
         "foreign_worker", "immigrant", "immigration_status", "native_language"),
        "national origin",
    ),
    **dict.fromkeys(("sex", "gender", "male", "female", "applicant_sex", "is_male", "is_female"), "sex"),
    **dict.fromkeys(
        ("marital_status", "married", "marital", "is_married", "single", "divorced", "widowed",
         "personal_status", "personal_status_and_sex"),
        "marital status",
    ),
    **dict.fromkeys(
        (AGE, "age_years", "age_in_years", "applicant_age", "borrower_age", "customer_age", "client_age",
         "age_at_application", "age_band", "age_group", "dob", "date_of_birth", "birth_date", "birthdate",
         "year_of_birth", "birth_year"),
        AGE,
    ),
    **dict.fromkeys(
        ("public_assistance", "receives_public_assistance", "public_assistance_income", "welfare",
         "welfare_income", "food_stamps", "snap_benefits", "social_assistance"),
        "receipt of public assistance",
    ),
}  # fmt: skip
#: Words that mark a prohibited basis wherever they appear in a column name (``applicant_gender_code``).
_PROHIBITED_WORDS: dict[str, str] = {
    "race": "race",
    "ethnicity": "race",
    "religion": "religion",
    "nationality": "national origin",
    "citizenship": "national origin",
    "gender": "sex",
    "sex": "sex",
    "marital": "marital status",
    "married": "marital status",
    "welfare": "receipt of public assistance",
}
_NORMALISE = re.compile(r"[^0-9a-z]+")
#: Words of a geographic-code column name: not a prohibited basis, but the best-known proxy for race and
#: national origin (redlining), so a feature named like this is warned about.
_GEOGRAPHY_WORDS = frozenset({"zip", "zipcode", "postcode", "postal", "tract", "census"})


def normalise_column(name: str) -> str:
    """Lower case, every run of other characters as one ``_`` (``Age (years)`` -> ``age_years``)."""
    return _NORMALISE.sub("_", name.lower()).strip("_")


def prohibited_basis(column: str, extra: dict[str, str] | None = None) -> str | None:
    """The prohibited basis a column name stands for (``None`` if none).

    Args:
        column: The column name as written in the data.
        extra: A spec's ``prohibited_columns`` (column -> basis), checked first.
    """
    for name, basis in (extra or {}).items():
        if normalise_column(name) == normalise_column(column):
            return basis
    norm = normalise_column(column)
    if norm in PROHIBITED_BASIS:
        return PROHIBITED_BASIS[norm]
    for word in norm.split("_"):
        if word in _PROHIBITED_WORDS:
            return _PROHIBITED_WORDS[word]
    return None


def _label(value: object) -> str:
    """The text a raw value is written as (``1``, ``1.0`` and ``"1"`` read the same)."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


class FeatureSpec(BaseModel):
    """One model input column of a dataset.

    Attributes:
        name: Column name.
        type: ``numeric`` (coerced to float) or ``categorical`` (one-hot encoded).
        direction: Monotone constraint: +1 higher value = higher risk, -1 lower risk, 0 none.
        valid_range: Optional ``[min, max]`` (either may be null) checked by validation.
        categories: Optional allowed values of a categorical feature checked by validation.
        reason: Plain-language adverse-action reason when this feature raises the PD (numeric features).
        category_reasons: Category -> adverse-action reason when holding that category raises the PD.
        justification: Explicit opt-in for a column that stands for a prohibited basis (never age): why
            it may be used; recorded in the model card.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    type: Literal["numeric", "categorical"]
    direction: Literal[-1, 0, 1] = 0
    valid_range: tuple[float | None, float | None] | None = None
    categories: list[str] | None = None
    reason: str | None = None
    category_reasons: dict[str, str] = Field(default_factory=dict)
    justification: str | None = None

    @field_validator("categories", mode="before")
    @classmethod
    def _categories_as_text(cls, value: Any) -> Any:
        # YAML reads `[1, 2]` as numbers and `[yes, no]` as booleans; categories are compared as text
        return [_label(v) for v in value] if isinstance(value, list) else value

    @field_validator("category_reasons", mode="before")
    @classmethod
    def _reason_keys_as_text(cls, value: Any) -> Any:
        return {_label(k): v for k, v in value.items()} if isinstance(value, dict) else value


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

    @property
    def sources(self) -> list[str]:
        """The columns this one is computed from (its declared lineage)."""
        if self.kind == "indicators":
            return [str(c) for c in self.mapping]
        return [self.source] if self.source else []


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
    purpose: str | None = None
    prohibited_columns: dict[str, str] = Field(default_factory=dict)
    max_categories: int = Field(default=100, ge=2)

    @field_validator("prohibited_columns", mode="before")
    @classmethod
    def _list_of_columns(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {str(c): "a prohibited basis declared in this spec" for c in value}
        return value

    @classmethod
    def from_yaml(cls, path: str | Path) -> DatasetSpec:
        """Read and validate a spec file; a relative ``path`` inside it is resolved against the file's folder.

        Raises:
            DataError: If the file is missing, is not YAML, does not describe a valid spec, or the spec
                breaks a rule of :meth:`check` (one line naming the field and the fix).
        """
        spec_path = Path(path)
        try:
            raw = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"{spec_path}: dataset spec not found") from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            one_line = " ".join(str(exc).split())
            raise DataError(f"{spec_path}: cannot read dataset spec: {one_line}") from None
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
        spec.check(str(spec_path))
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

    def sources(self, column: str) -> list[str]:
        """``column`` and every column it is derived from, recursively (its declared lineage)."""
        derived = {d.name: d for d in self.derived}
        out: list[str] = []
        todo = [column]
        while todo:
            name = todo.pop()
            if name in out:
                continue
            out.append(name)
            if name in derived:
                todo += derived[name].sources
        return out

    def protected_lineage(self) -> dict[str, list[str]]:
        """Protected attribute -> the columns it stands for (itself and its sources)."""
        return {p: self.sources(p) for p in self.protected}

    def justifications(self) -> dict[str, str]:
        """Feature -> recorded justification of its opt-in (for the model card)."""
        return {f.name: f.justification for f in self.features if f.justification}

    def check(self, label: str = "dataset spec") -> None:
        """Refuse a spec whose features cannot be trained on as declared, before any data is read.

        Rules: each feature listed once; no feature is the id, timestamp or target column; no feature is a
        protected attribute or a column one is derived from; no feature stands for a prohibited basis
        (:func:`prohibited_basis`) unless it carries a ``justification`` (never for age); a
        ``justification`` on a feature that needs none is refused too (it would be a false record).

        Raises:
            DataError: One line naming the feature, what it stands for and the fix.
        """
        seen: set[str] = set()
        for f in self.features:
            if f.name in seen:
                raise DataError(f"{label}: features: {f.name!r} is listed twice; list each feature once")
            seen.add(f.name)
        roles = {self.id_column: "id_column", self.target: "target"}
        if self.timestamp_column:
            roles[self.timestamp_column] = "timestamp_column"
        lineage = self.protected_lineage()
        for f in self.features:
            if f.name in roles:
                raise DataError(
                    f"{label}: feature {f.name!r} is the spec's {roles[f.name]}; remove it from features"
                )
            if f.name in lineage:
                raise DataError(
                    f"{label}: feature {f.name!r} is protected attribute {f.name!r}: protected attributes "
                    "are carried for fairness testing and are never model inputs; remove it from features"
                )
            stands_for = self._stands_for(f.name, lineage)
            if stands_for is None:
                if f.justification:
                    raise DataError(
                        f"{label}: feature {f.name!r} has a justification but stands for no protected "
                        "attribute or prohibited basis; remove `justification`"
                    )
                continue
            what, basis = stands_for
            if basis == AGE:
                raise DataError(
                    f"{label}: feature {f.name!r} stands for {what}: age cannot be a model input here "
                    "(Reg B allows it only if applicants aged 62+ never get a negative factor from age, "
                    "which creditops does not enforce); remove it from features"
                )
            if not f.justification:
                raise DataError(
                    f"{label}: feature {f.name!r} stands for {what}: remove it from features (or, if your "
                    "compliance review approved its use, give the feature a `justification:`)"
                )

    def _stands_for(self, feature: str, lineage: dict[str, list[str]]) -> tuple[str, str | None] | None:
        """(description, prohibited basis or None) of what ``feature`` stands for, or ``None``."""
        mine = self.sources(feature)
        for attr, columns in lineage.items():
            shared = [c for c in mine if c in columns]
            if shared:
                via = "" if shared[0] == feature else f" through {shared[0]!r}"
                bases = [prohibited_basis(c, self.prohibited_columns) for c in [attr, *columns]]
                basis = next((b for b in bases if b), None)
                what = f"protected attribute {attr!r} ({attr} is derived from {', '.join(columns[1:])})"
                if len(columns) == 1:
                    what = f"protected attribute {attr!r}"
                return what + via, basis
        for column in mine:
            basis = prohibited_basis(column, self.prohibited_columns)
            if basis:
                via = "" if column == feature else f" (derived from {column!r})"
                return f"{basis}, a prohibited basis under ECOA / Reg B{via}", basis
        return None

    def warnings(self) -> list[str]:
        """Things that are allowed but probably not what the user meant (printed, never fatal)."""
        out = []
        if not self.protected:
            out.append(
                f"dataset spec {self.name!r}: protected: [] declares no protected attribute, so fairness "
                "will not be assessed (the model card will say so); list e.g. sex or age_band if the data "
                "has them"
            )
        for f in self.features:
            if set(normalise_column(f.name).split("_")) & _GEOGRAPHY_WORDS and not f.justification:
                out.append(
                    f"dataset spec {self.name!r}: feature {f.name!r} looks like a geographic code, a "
                    "well-known proxy for race and national origin: check it with your fair-lending review "
                    "or remove it"
                )
        return out

    def card(self) -> dict[str, Any]:
        """What the model card says about this dataset (name, description, purpose, target, lineage)."""
        return {
            "name": self.name,
            "description": self.description,
            "purpose": self.purpose,
            "target": self.target,
            "positive_value": self.positive_value,
            "target_meaning": f"1 = `{self.target}` equals {self.positive_value!r}",
            "protected_lineage": self.protected_lineage(),
            "justifications": self.justifications(),
        }

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
        raise DataError(
            f"{label}: file not found; `path` must name an existing {fmt} file (a relative path is read "
            "from the spec file's folder)"
        )
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
        hints = []
        for name in missing:
            close = difflib.get_close_matches(name, [str(c) for c in df.columns], n=1, cutoff=0.6)
            close = close or [str(c) for c in df.columns if str(c).lower() == name.lower()]
            if close:
                hints.append(f"{name!r} -> {close[0]!r}?")
        hint = f" (did you mean {', '.join(hints)})" if hints else ""
        raise DataError(
            f"{label}: column(s) named in dataset spec {spec.name!r} are absent: {', '.join(missing)}{hint}"
        )
    return df


def _held(values: pd.Series, limit: int = 8) -> str:
    """``'bad' (300), 'good' (700)``: the distinct values of a column with their counts, most common first."""
    counts = values.value_counts(dropna=True)
    shown = ", ".join(f"{v!r} ({n:,})" for v, n in counts.head(limit).items())
    return shown + (f", ... ({len(counts):,} distinct)" if len(counts) > limit else "")


def _positive_hint(spec: DatasetSpec, present: pd.Series) -> str:
    """Why ``positive_value`` matches nothing, when the cause is a common one."""
    pos = spec.positive_value
    labels = {_label(v) for v in present.unique()}
    if isinstance(pos, bool):
        words = ("yes", "y", "true", "on") if pos else ("no", "n", "false", "off")
        meant = next((v for v in sorted(labels) if v.lower() in words), None)
        example = f'positive_value: "{meant}"' if meant else 'positive_value: "yes"'
        return (
            f"; YAML reads an unquoted yes/no/true/false/on/off as the boolean {pos}: quote the value "
            f"as the column writes it, e.g. {example}"
        )
    if _label(pos) in labels:
        return (
            f"; the column holds {_label(pos)} as {'text' if isinstance(pos, int | float) else 'a number'}: "
            + ("quote it" if isinstance(pos, int | float) else "write it without quotes")
        )
    folded = [v for v in labels if v.lower() == str(pos).lower()]
    if folded:
        return f"; values are case-sensitive: positive_value: {folded[0]}"
    return ""


def check_dataset(df: pd.DataFrame, spec: DatasetSpec, label: str | None = None) -> list[str]:
    """Refuse data the spec cannot train on as declared; return warnings about what validation will do.

    Checked (each a one-line :class:`DataError` naming the field and the fix): ``positive_value`` occurs in
    the target (the message lists the values the column holds); both target classes have at least
    :data:`MIN_CLASS_ROWS` rows; a ``numeric`` feature is numbers (more than
    :data:`MAX_NON_NUMERIC_SHARE` of its present values not parsing means the column is text); a
    ``categorical`` feature has at most ``max_categories`` levels; a protected attribute has at most
    :data:`MAX_PROTECTED_GROUPS` groups (a continuous one such as raw age must be banded).

    Args:
        df: The dataset as :func:`load_dataset` returns it.
        spec: Its spec.
        label: Prefix of every message (default: the spec's name).

    Returns:
        Warnings (never fatal): ids that validation will quarantine, ``protected: []``.

    Raises:
        DataError: On the first problem found.
    """
    label = label or f"dataset {spec.name!r}"
    target = df[spec.target]
    present = target.dropna()
    if present.empty:
        raise DataError(f"{label}: target {spec.target!r} has no values; name the outcome column in `target`")
    positives = int((present == spec.positive_value).sum())
    if positives == 0:
        raise DataError(
            f"{label}: positive_value {spec.positive_value!r} never occurs in target {spec.target!r}, which "
            f"holds {_held(present)}{_positive_hint(spec, present)}"
        )
    negatives = len(present) - positives
    if present.nunique() == 1:
        raise DataError(
            f"{label}: target {spec.target!r} holds one class only ({_held(present)}): a model needs both "
            "outcomes; check `target` and the file"
        )
    if min(positives, negatives) < MIN_CLASS_ROWS:
        raise DataError(
            f"{label}: target {spec.target!r} has {positives:,} positive ({spec.positive_value!r}) and "
            f"{negatives:,} other rows: at least {MIN_CLASS_ROWS} of each are needed to train, validate "
            "and test; use more data or check positive_value"
        )
    for f in spec.features:
        column = df[f.name]
        if f.type == "numeric":
            if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
                continue
            values = column.dropna()
            parsed = pd.to_numeric(values, errors="coerce")
            bad = values[parsed.isna()]
            if len(values) and len(bad) > MAX_NON_NUMERIC_SHARE * len(values):
                examples = ", ".join(repr(v) for v in bad.astype(str).unique()[:3])
                raise DataError(
                    f"{label}: feature {f.name!r} is declared numeric but {len(bad):,} of {len(values):,} "
                    f"values are not numbers (e.g. {examples}); declare `type: categorical` or clean the "
                    "column"
                )
        else:
            held = f.categories if f.categories is not None else [_label(v) for v in column.dropna().unique()]
            unknown = [c for c in f.category_reasons if c not in set(held)]
            if unknown:
                values = _held(column.map(_label, na_action="ignore"))
                raise DataError(
                    f"{label}: feature {f.name!r}: category_reasons names {unknown[0]!r}, which is not one "
                    f"of its categories ({values}); spell it as the data does"
                )
            levels = len(f.categories) if f.categories is not None else int(column.nunique(dropna=True))
            if levels > spec.max_categories:
                raise DataError(
                    f"{label}: feature {f.name!r} is categorical with {levels:,} distinct values (limit "
                    f"max_categories: {spec.max_categories}): one-hot encoding would add a column per value; "
                    "declare it numeric if it is a number, group rare values, or drop it"
                )
    for attr in spec.protected:
        groups = int(df[attr].nunique(dropna=True))
        if groups > MAX_PROTECTED_GROUPS:
            numeric = pd.api.types.is_numeric_dtype(df[attr])
            fix = (
                f"band it (derived: [{{name: {attr}_band, kind: age_band, source: {attr}}}] for ages) and "
                f"list the band in protected"
                if numeric
                else "map it to a few groups with a `derived` column of kind map"
            )
            raise DataError(
                f"{label}: protected attribute {attr!r} has {groups:,} distinct values; fairness would "
                f"compare one group per value: {fix}"
            )
    warnings = spec.warnings()
    ids = df[spec.id_column]
    dup = int((ids.duplicated(keep=False) & ids.notna()).sum())
    nulls = int(ids.isna().sum())
    if dup or nulls:
        warnings.append(
            f"{label}: id_column {spec.id_column!r} has {dup:,} rows with a repeated id and {nulls:,} "
            "without one; validation will quarantine them (rows in = accepted + quarantined)"
        )
    return warnings
