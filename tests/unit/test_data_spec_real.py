"""Dataset specs (bring your own data) and the shipped real datasets."""

from __future__ import annotations

import pandas as pd
import pytest

from creditops.data.real import load_german_credit, load_hmda, spec_path
from creditops.data.spec import DatasetSpec, load_dataset
from creditops.data.validation import validate_table
from creditops.errors import DataError

SPEC_YAML = """
name: loans
path: {path}
format: {fmt}
id_column: loan_id
timestamp_column: applied_at
target: bad
positive_value: 1
protected: [sex]
features:
  - {{name: income, type: numeric, direction: -1}}
  - {{name: grade, type: categorical}}
"""


def write_spec(tmp_path, path: str, fmt: str = "csv", text: str = SPEC_YAML):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(text.format(path=path, fmt=fmt))
    return spec_file


def sample() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "loan_id": [1, 2],
            "applied_at": ["2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z"],
            "bad": [0, 1],
            "sex": ["f", "m"],
            "income": [1.0, 2.0],
            "grade": ["A", "B"],
        }
    )


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_load_dataset_reads_csv_and_parquet_relative_to_the_spec(tmp_path, fmt: str) -> None:
    data = tmp_path / f"loans.{fmt}"
    sample().to_csv(data, index=False) if fmt == "csv" else sample().to_parquet(data, index=False)
    spec = DatasetSpec.from_yaml(write_spec(tmp_path, data.name, fmt))
    df = load_dataset(spec)
    assert len(df) == 2 and spec.feature_directions() == {"income": -1, "grade": 0}
    assert spec.encode_target(df).tolist() == [0, 1]
    assert validate_table(df, spec, now="2026-01-01").ok


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing_file", "file not found"),
        ("empty_file", "file is empty"),
        ("corrupt_parquet", "cannot read as parquet"),
        ("missing_column", "absent: grade"),
    ],
)
def test_bad_data_files_raise_data_error_naming_file_and_problem(tmp_path, setup: str, message: str) -> None:
    fmt = "parquet" if setup == "corrupt_parquet" else "csv"
    data = tmp_path / f"loans.{fmt}"
    if setup == "empty_file":
        data.write_text("")
    elif setup == "corrupt_parquet":
        data.write_bytes(b"PAR1 this is not really parquet")
    elif setup == "missing_column":
        sample().drop(columns="grade").to_csv(data, index=False)
    spec = DatasetSpec.from_yaml(write_spec(tmp_path, data.name, fmt))
    with pytest.raises(DataError, match=message) as err:
        load_dataset(spec)
    assert str(data) in str(err.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SPEC_YAML + "colour: blue\n", "colour: Extra inputs are not permitted"),
        (SPEC_YAML.replace("format: {fmt}", "format: xlsx"), "format"),
        (SPEC_YAML.replace("direction: -1", "direction: 2"), "direction"),
        ("name: [unclosed", "cannot read dataset spec"),
        ("- just\n- a list\n", "must be a YAML mapping"),
    ],
)
def test_invalid_specs_raise_data_error(tmp_path, text: str, message: str) -> None:
    with pytest.raises(DataError, match=message) as err:
        DatasetSpec.from_yaml(write_spec(tmp_path, "x.csv", text=text))
    assert "spec.yaml" in str(err.value)


def test_missing_spec_file_and_missing_package(tmp_path) -> None:
    with pytest.raises(DataError, match="dataset spec not found"):
        DatasetSpec.from_yaml(tmp_path / "nope.yaml")
    spec = DatasetSpec(
        name="x",
        path="package:no_such_pkg_xyz/a.csv",
        id_column="id",
        target="y",
        positive_value=1,
        features=[],
    )
    with pytest.raises(DataError, match="not installed"):
        load_dataset(spec)


def test_german_credit() -> None:
    df, spec = load_german_credit()
    assert len(df) == 1000 and df["applicant_id"].is_unique
    assert spec.encode_target(df).mean() == pytest.approx(0.3)
    assert set(df["sex"]) == {"male", "female"} and df["age_band"].notna().all()
    assert not set(spec.protected) & set(spec.feature_names)
    assert validate_table(df, spec).ok


def test_hmda() -> None:
    df, spec = load_hmda()
    assert len(df) == 1989 and spec.target == "reject"
    assert spec.encode_target(df).mean() == pytest.approx(0.1227, abs=1e-3)
    assert df["race"].value_counts().to_dict() == {"white": 1681, "black": 197, "hispanic": 111}
    assert df["sex"].isna().sum() == 15
    assert {"race", "sex"} == set(spec.protected) and "male" not in spec.feature_names
    result = validate_table(df, spec)
    # the shipped file has a miscoded gdlin (666): validation quarantines it instead of dropping it silently
    assert result.counts["hmda"]["quarantined"] >= 1 and "gdlin" in result.quarantine["detail"].str.cat()
    assert result.counts["hmda"]["accepted"] + result.counts["hmda"]["quarantined"] == 1989


def test_shipped_specs_exist() -> None:
    assert spec_path("german_credit").endswith("german_credit.yaml")
    with pytest.raises(ValueError, match="unknown dataset"):
        spec_path("mnist")
