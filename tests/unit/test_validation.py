"""Validation with quarantine: each rule, the accounting invariant, and a corrupted world end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from creditops.data.ingest import corrupt_world
from creditops.data.schema import WORLD_SCHEMAS, ColumnRule, TableSchema
from creditops.data.spec import DatasetSpec, FeatureSpec
from creditops.data.synthetic import CreditWorld, generate_world
from creditops.data.validation import QUARANTINE_COLUMNS, validate_table, validate_world

NOW = pd.Timestamp("2026-01-01", tz="UTC")
SCHEMA = TableSchema(
    name="t",
    key=("id",),
    columns=(
        ColumnRule("id", "int", min=0),
        ColumnRule("ts", "timestamp"),
        ColumnRule("x", "float", min=0, max=10),
        ColumnRule("n", "int", nullable=True),
        ColumnRule("c", "str", categories=("a", "b")),
        ColumnRule("flag", "bool"),
    ),
    timestamp_columns=("ts",),
)


def frame(**overrides: list) -> pd.DataFrame:
    base = {
        "id": [1, 2, 3],
        "ts": pd.to_datetime(["2025-01-01", "2025-02-01", "2025-03-01"], utc=True),
        "x": [1.0, 2.0, 3.0],
        "n": [1, 2, 3],
        "c": ["a", "b", "a"],
        "flag": [True, False, True],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def assert_accounting(result, tables: dict[str, pd.DataFrame]) -> None:
    for name, df in tables.items():
        c = result.counts[name]
        assert c["rows_in"] == len(df) == c["accepted"] + c["quarantined"]
        assert len(result.accepted[name]) == c["accepted"]
        assert (result.quarantine["table"] == name).sum() == c["quarantined"]


def test_clean_table_is_accepted_whole() -> None:
    df = frame()
    result = validate_table(df, SCHEMA, now=NOW)
    assert result.ok and result.quarantine.empty
    assert list(result.quarantine.columns) == list(QUARANTINE_COLUMNS)
    pd.testing.assert_frame_equal(result.accepted["t"], df)
    assert "nothing quarantined" in result.report_markdown


@pytest.mark.parametrize(
    ("overrides", "bad_row", "rule", "detail"),
    [
        ({"x": ["1.5", "oops", "3"]}, 1, "type", "x: oops is not a number"),
        ({"n": [1, 2.5, 3]}, 1, "type", "n: 2.5 is not an integer"),
        ({"ts": ["2025-01-01", "not a date", "2025-03-01"]}, 1, "type", "is not a timestamp"),
        ({"flag": [True, "maybe", False]}, 1, "type", "flag: maybe is not a boolean"),
        ({"x": [1.0, None, 3.0]}, 1, "null", "x: missing value"),
        ({"x": [1.0, 2.0, 11.0]}, 2, "range", "outside [0, 10]"),
        ({"x": [1.0, -0.5, 3.0]}, 1, "range", "outside"),
        ({"x": [1.0, np.inf, 3.0]}, 1, "range", "inf"),
        ({"c": ["a", "z", "a"]}, 1, "category", "c: z is not one of a|b"),
        ({"id": [1, 2, 2]}, 2, "duplicate_key", "id=2"),
        (
            {"ts": pd.to_datetime(["2025-01-01", "2027-01-01", "2025-03-01"], utc=True)},
            1,
            "future_timestamp",
            "is after now",
        ),
    ],
)
def test_each_rule_quarantines_the_bad_row(overrides: dict, bad_row: int, rule: str, detail: str) -> None:
    df = frame(**overrides)
    result = validate_table(df, SCHEMA, now=NOW)
    q = result.quarantine
    assert bad_row in set(q["row_number"])
    hit = q[q["row_number"] == bad_row].iloc[0]
    assert rule in hit["rule"].split(",")
    assert detail in hit["detail"]
    assert hit["table"] == "t" and hit["row_key"].startswith("id=")
    assert json.loads(hit["raw"])["id"] == df["id"].iloc[bad_row]
    assert_accounting(result, {"t": df})


def test_duplicates_quarantine_every_copy() -> None:
    result = validate_table(frame(id=[7, 7, 8]), SCHEMA, now=NOW)
    assert sorted(result.quarantine["row_number"]) == [0, 1]
    assert result.accepted["t"]["id"].tolist() == [8]


def test_wrong_type_keeps_raw_value_and_accepted_rows_are_coerced() -> None:
    df = frame(x=["1.5", "n/a", "3"], flag=["true", "false", "1"])
    result = validate_table(df, SCHEMA, now=NOW)
    assert json.loads(result.quarantine.iloc[0]["raw"])["x"] == "n/a"
    accepted = result.accepted["t"]
    assert accepted["x"].tolist() == [1.5, 3.0] and accepted["x"].dtype == np.float64
    assert accepted["flag"].tolist() == [True, True] and accepted["flag"].dtype == bool


def test_row_breaking_several_rules_is_quarantined_once_with_all_rules() -> None:
    df = frame(x=[1.0, 99.0, 3.0], c=["a", "zz", "a"], id=[1, 3, 3])
    q = validate_table(df, SCHEMA, now=NOW).quarantine
    assert q["row_number"].tolist() == [1, 2]
    assert q.iloc[0]["rule"] == "range,category,duplicate_key"
    assert q.iloc[0]["detail"].count(";") == 2


def test_missing_column_quarantines_every_row_as_schema() -> None:
    df = frame().drop(columns="c")
    result = validate_table(df, SCHEMA, now=NOW)
    assert result.counts["t"]["quarantined"] == 3
    assert (result.quarantine["rule"] == "schema").all()
    assert "missing column c" in result.quarantine.iloc[0]["detail"]


def test_future_rule_is_skipped_without_now() -> None:
    df = frame(ts=pd.to_datetime(["2030-01-01"] * 3, utc=True))
    assert validate_table(df, SCHEMA).ok
    assert validate_table(df, SCHEMA, now=NOW).counts["t"]["quarantined"] == 3


def test_validate_table_with_a_dataset_spec() -> None:
    spec = DatasetSpec(
        name="loans",
        path="loans.csv",
        id_column="loan_id",
        target="bad",
        positive_value=1,
        features=[
            FeatureSpec(name="income", type="numeric", valid_range=(0, None)),
            FeatureSpec(name="grade", type="categorical", categories=["A", "B"]),
        ],
    )
    df = pd.DataFrame(
        {
            "loan_id": [1, 2, 3, 3],
            "bad": [0, 1, None, 0],
            "income": [10, -1, 5, 6],
            "grade": ["A", "B", "C", "A"],
        }
    )
    result = validate_table(df, spec)
    q = result.quarantine.set_index("row_number")["rule"].to_dict()
    assert q == {1: "range", 2: "null,category,duplicate_key", 3: "duplicate_key"}
    assert result.accepted["loans"]["loan_id"].tolist() == [1]
    assert_accounting(result, {"loans": df})


def test_clean_world_passes_and_is_not_copied() -> None:
    world = generate_world(300, seed=1)
    result = validate_world(world)
    assert result.ok
    for name, df in world.tables().items():
        assert result.accepted[name] is df


def test_corrupted_world_every_injected_row_lands_in_quarantine_and_nothing_is_lost() -> None:
    world, injected = corrupt_world(generate_world(400, seed=3), seed=11)
    result = validate_world(world)
    assert_accounting(result, world.tables())
    q = result.quarantine
    for row in injected.itertuples():
        hit = q[(q["table"] == row.table) & (q["row_number"] == row.row_number)]
        assert len(hit) == 1, row
        assert row.rule in hit.iloc[0]["rule"].split(","), (row, hit.iloc[0]["rule"])
        assert hit.iloc[0]["detail"] and json.loads(hit.iloc[0]["raw"])
    # Everything else quarantined is an orphan of a quarantined applicant: nothing silent, nothing spurious.
    bad_apps = set(q.loc[q["table"] == "applications", "raw"].map(lambda r: json.loads(r)["applicant_id"]))
    listed = set(zip(injected["table"], injected["row_number"], strict=True))
    for table in ("bureau", "transactions"):
        extra = q[(q["table"] == table) & ~q.apply(lambda r: (r["table"], r["row_number"]) in listed, axis=1)]
        assert (extra["rule"] == "orphan").all()
        ids = extra["raw"].map(lambda r: json.loads(r)["applicant_id"])
        assert set(ids) <= bad_apps
    assert not (result.accepted["applications"]["applicant_id"].duplicated()).any()
    assert result.accepted["applications"]["income"].dtype == np.float64
    assert result.accepted["transactions"]["is_late"].dtype == bool
    report = result.report_markdown
    for rule in ("null", "type", "range", "category", "duplicate_key", "future_timestamp", "orphan"):
        assert f"| {rule} |" in report


def test_validate_world_uses_explicit_now() -> None:
    world = generate_world(50, seed=1)
    early = world.applications["application_ts"].min()
    result = validate_world(world, now=early)
    assert result.counts["applications"]["quarantined"] == len(world.applications) - 1
    assert_accounting(result, world.tables())


def test_write_persists_quarantine_and_report(tmp_path) -> None:
    world, _ = corrupt_world(generate_world(100, seed=2), seed=1)
    paths = validate_world(world).write(tmp_path)
    assert len(pd.read_parquet(paths["quarantine"])) > 0
    assert paths["report"].read_text().startswith("# Data-quality report")


def test_world_schemas_cover_every_table() -> None:
    assert set(WORLD_SCHEMAS) == set(CreditWorld.__dataclass_fields__) - {"as_of"}
