"""Every mistake a new user made writing a dataset spec stops at ingest with one line naming field and fix.

Each test starts from a realistic, valid loan file and spec, makes exactly one mistake, and checks the
message (the whole line where it is short enough to read) and that no snapshot was written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditops.data.ingest import ingest, validate_snapshot
from creditops.data.snapshot import read_snapshot
from creditops.data.spec import DatasetSpec
from creditops.errors import DataError

N = 600

SPEC = """\
name: loans
description: Personal loans of a made-up lender.
purpose: Estimate the probability that a loan goes bad.
path: {path}
id_column: loan_id
target: status
positive_value: {positive}
protected: {protected}
derived:
  - {{name: age_band, kind: age_band, source: age}}
features:
{features}
"""
FEATURES = """\
  - {name: income, type: numeric, direction: -1, reason: Income is low}
  - {name: grade, type: categorical, category_reasons: {E: Credit grade is E}}
"""


def loans(n: int = N, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "loan_id": [f"L-{i:05d}" for i in range(n)],  # text ids are fine
            "income": rng.lognormal(10.5, 0.5, n).round(0),
            "grade": rng.choice(list("ABCDE"), n),
            "zip": [f"{z:05d}" for z in rng.integers(1000, 99999, n)],
            "age": rng.integers(18, 90, n),
            "sex": rng.choice(["female", "male"], n),
            "status": rng.choice(["good", "bad"], n, p=[0.8, 0.2]),
        }
    )


def write(
    tmp_path: Path,
    df: pd.DataFrame | None = None,
    *,
    path: str = "loans.csv",
    positive: str = "bad",
    protected: str = "[sex, age_band]",
    features: str = FEATURES,
) -> Path:
    (loans() if df is None else df).to_csv(tmp_path / "loans.csv", index=False)
    spec = tmp_path / "loans.yaml"
    spec.write_text(SPEC.format(path=path, positive=positive, protected=protected, features=features))
    return spec


def stops(tmp_path: Path, spec: Path) -> str:
    """The one-line message ingest stops with; nothing may have been written."""
    with pytest.raises(DataError) as err:
        ingest("spec", tmp_path / "snapshots", spec_path=spec)
    assert not (tmp_path / "snapshots").exists()
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(str(spec))
    return message[len(str(spec)) + 2 :]


def test_the_valid_spec_ingests(tmp_path: Path) -> None:
    warnings: list[str] = []
    info = ingest("spec", tmp_path / "snapshots", spec_path=write(tmp_path), warn=warnings.append)
    assert info.row_counts == {"loans": N} and warnings == []


def test_positive_value_in_the_wrong_case(tmp_path: Path) -> None:
    counts = loans()["status"].value_counts()
    assert stops(tmp_path, write(tmp_path, positive="Bad")) == (
        f"positive_value 'Bad' never occurs in target 'status', which holds 'good' ({counts['good']}), "
        f"'bad' ({counts['bad']}); values are case-sensitive: positive_value: bad"
    )


def test_positive_value_yes_read_as_a_boolean(tmp_path: Path) -> None:
    df = loans().assign(status=lambda d: d["status"].map({"bad": "yes", "good": "no"}))
    message = stops(tmp_path, write(tmp_path, df, positive="yes"))
    assert message.startswith("positive_value True never occurs in target 'status', which holds 'no' (")
    assert message.endswith(
        "YAML reads an unquoted yes/no/true/false/on/off as the boolean True: quote the value as the column "
        'writes it, e.g. positive_value: "yes"'
    )
    # the fix the message gives works
    ingest("spec", tmp_path / "snapshots", spec_path=write(tmp_path, df, positive='"yes"'))


def test_positive_value_quoted_number(tmp_path: Path) -> None:
    df = loans().assign(status=lambda d: (d["status"] == "bad").astype(int))
    message = stops(tmp_path, write(tmp_path, df, positive='"1"'))
    assert message.endswith("the column holds 1 as a number: write it without quotes")


def test_numeric_column_holding_strings(tmp_path: Path) -> None:
    message = stops(tmp_path, write(tmp_path, features="  - {name: grade, type: numeric}\n"))
    assert message.startswith(
        f"feature 'grade' is declared numeric but {N} of {N} values are not numbers (e.g. "
    )
    assert message.endswith("); declare `type: categorical` or clean the column")
    examples = list(dict.fromkeys(loans()["grade"]))[:3]  # the first three distinct values, in file order
    assert f"(e.g. {', '.join(repr(g) for g in examples)})" in message


def test_a_few_unparseable_numbers_are_quarantined_not_fatal(tmp_path: Path) -> None:
    df = loans()
    df["income"] = df["income"].astype(object)
    df.loc[[5, 17], "income"] = ["unknown", "12,000"]  # ("n/a" would read as missing)
    info = ingest("spec", tmp_path / "snapshots", spec_path=write(tmp_path, df))
    tables, info = read_snapshot(info.path)
    result = validate_snapshot(tables, info)
    assert result.counts["loans"]["quarantined"] == 2 and result.counts["loans"]["rules"] == {"type": 2}


def test_categorical_with_thousands_of_levels(tmp_path: Path) -> None:
    df = loans(3000)
    levels = df["zip"].nunique()
    assert levels > 2000
    features = FEATURES + "  - {name: zip, type: categorical}\n"
    assert stops(tmp_path, write(tmp_path, df, features=features)) == (
        f"feature 'zip' is categorical with {levels:,} distinct values (limit max_categories: 100): one-hot "
        "encoding would add a column per value; declare it numeric if it is a number, group rare values, "
        "or drop it"
    )


def test_target_with_one_class_only(tmp_path: Path) -> None:
    df = loans().assign(status="bad")
    assert stops(tmp_path, write(tmp_path, df)) == (
        f"target 'status' holds one class only ('bad' ({N})): a model needs both outcomes; "
        "check `target` and the file"
    )


def test_target_with_too_few_positives(tmp_path: Path) -> None:
    df = loans().assign(status="good")
    df.loc[:11, "status"] = "bad"
    assert stops(tmp_path, write(tmp_path, df)) == (
        f"target 'status' has 12 positive ('bad') and {N - 12} other rows: at least 50 of each are needed to "
        "train, validate and test; use more data or check positive_value"
    )


def test_id_column_with_duplicates_and_nulls_is_quarantined(tmp_path: Path) -> None:
    df = loans()
    df.loc[10, "loan_id"] = df.loc[11, "loan_id"]
    df.loc[20, "loan_id"] = None
    warnings: list[str] = []
    info = ingest("spec", tmp_path / "snapshots", spec_path=write(tmp_path, df), warn=warnings.append)
    assert warnings == [
        f"{tmp_path / 'loans.yaml'}: id_column 'loan_id' has 2 rows with a repeated id and 1 without one; "
        "validation will quarantine them (rows in = accepted + quarantined)"
    ]
    tables, info = read_snapshot(info.path)
    result = validate_snapshot(tables, info)
    counts = result.counts["loans"]
    assert counts["rows_in"] == N == counts["accepted"] + counts["quarantined"]
    assert counts["quarantined"] == 3 and counts["rules"] == {"null": 1, "duplicate_key": 2}
    assert sorted(result.quarantine["row_number"]) == [10, 11, 20]


def test_path_that_does_not_exist_names_the_resolved_file(tmp_path: Path) -> None:
    spec = write(tmp_path, path="data/loans.csv")
    with pytest.raises(DataError) as err:
        ingest("spec", tmp_path / "snapshots", spec_path=spec)
    assert str(err.value) == (
        f"{tmp_path / 'data' / 'loans.csv'}: file not found; `path` must name an existing csv file "
        "(a relative path is read from the spec file's folder)"
    )


def test_feature_listed_twice(tmp_path: Path) -> None:
    features = FEATURES + "  - {name: income, type: numeric}\n"
    assert stops(tmp_path, write(tmp_path, features=features)) == (
        "features: 'income' is listed twice; list each feature once"
    )


def test_column_name_with_a_typo_gets_a_suggestion(tmp_path: Path) -> None:
    spec = write(tmp_path, features="  - {name: Income, type: numeric}\n")
    with pytest.raises(DataError, match=r"are absent: Income \(did you mean 'Income' -> 'income'\?\)"):
        ingest("spec", tmp_path / "snapshots", spec_path=spec)


def test_category_reason_for_a_category_the_data_lacks(tmp_path: Path) -> None:
    features = "  - {name: grade, type: categorical, category_reasons: {F: Grade F}}\n"
    message = stops(tmp_path, write(tmp_path, features=features))
    assert message.startswith(
        "feature 'grade': category_reasons names 'F', which is not one of its categories ("
    )
    assert message.endswith("); spell it as the data does")


def test_continuous_protected_attribute_is_refused_with_the_banding_fix(tmp_path: Path) -> None:
    groups = loans()["age"].nunique()
    assert stops(tmp_path, write(tmp_path, protected="[sex, age]")) == (
        f"protected attribute 'age' has {groups} distinct values; fairness would compare one group per "
        "value: band it (derived: [{name: age_band, kind: age_band, source: age}] for ages) and list the "
        "band in protected"
    )
    # the fix: the banded attribute (what the valid spec declares) has five groups
    ingest("spec", tmp_path / "snapshots", spec_path=write(tmp_path, protected="[sex, age_band]"))


def test_empty_protected_is_allowed_with_a_warning(tmp_path: Path) -> None:
    warnings: list[str] = []
    ingest("spec", tmp_path / "snapshots", spec_path=write(tmp_path, protected="[]"), warn=warnings.append)
    assert warnings == [
        "dataset spec 'loans': protected: [] declares no protected attribute, so fairness will not be "
        "assessed (the model card will say so); list e.g. sex or age_band if the data has them"
    ]


def test_spec_reasons_reach_the_contract(tmp_path: Path) -> None:
    from creditops.features.spec import spec_contract

    spec = DatasetSpec.from_yaml(write(tmp_path))
    df = loans()
    contract = spec_contract(df, spec)
    assert contract.reasons["income"] == "Income is low"
    assert contract.reasons["grade__e"] == "Credit grade is E" == contract.category_reasons["grade"]["E"]
    # fallbacks: generic but honest (the feature and category, no invented cause)
    assert contract.reasons["grade__a"] == "Grade: A" == contract.category_reasons["grade"]["A"]
    bare = spec.model_copy(update={"features": [spec.features[0].model_copy(update={"reason": None})]})
    assert spec_contract(df, bare).reasons["income"] == "Income is low"  # direction -1: low is adverse
    flat = bare.model_copy(
        update={"features": [bare.features[0].model_copy(update={"direction": 0, "name": "income"})]}
    )
    assert spec_contract(df, flat).reasons["income"] == "Income (value given)"


def test_a_geographic_code_feature_is_warned_about(tmp_path: Path) -> None:
    warnings: list[str] = []
    features = FEATURES + "  - {name: zip, type: numeric}\n"
    ingest("spec", tmp_path / "snapshots", spec_path=write(tmp_path, features=features), warn=warnings.append)
    assert warnings == [
        "dataset spec 'loans': feature 'zip' looks like a geographic code, a well-known proxy for race and "
        "national origin: check it with your fair-lending review or remove it"
    ]


def test_fallback_reasons_keep_the_column_name_readable() -> None:
    from creditops.features.spec import fallback_reason

    assert fallback_reason("DTI", 1) == "DTI is high"
    assert fallback_reason("months_since_default", -1) == "Months since default is low"
    assert fallback_reason("channel", 0) == "Channel (value given)"
