"""Features of spec-described datasets: encoding, unknown categories, ordering, the contract; a user CSV."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditops.data.ingest import ingest, validate_snapshot
from creditops.data.snapshot import read_snapshot
from creditops.data.spec import DatasetSpec
from creditops.features.build import build_snapshot_features
from creditops.features.contract import FeatureContract, builtin_contract
from creditops.features.registry import FEATURE_SERVICE, feature_directions, model_feature_names
from creditops.features.spec import UNDATED_AS_OF, spec_contract, spec_entity_frame, spec_feature_table

SPEC = DatasetSpec(
    name="loans",
    path="unused.csv",
    id_column="loan_id",
    target="status",
    positive_value="bad",
    protected=["sex"],
    features=[
        {"name": "purpose", "type": "categorical"},
        {"name": "income", "type": "numeric", "direction": -1},
        {"name": "housing", "type": "categorical", "categories": ["rent", "own", "for free"]},
        {"name": "grade", "type": "categorical"},
    ],
)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "loan_id": [10, 11, 12, 13],
            "purpose": ["car", "home", "car", None],
            "income": [1.0, 2.5, np.nan, 4],
            "housing": ["own", "rent", "own", "for free"],
            "grade": [1.0, 2.0, 1.0, 3.0],
            "status": ["bad", "good", "good", "bad"],
            "sex": ["f", "m", "f", "m"],
        }
    )


def test_columns_follow_the_spec_order_with_one_hot_blocks() -> None:
    table = spec_feature_table(_frame(), SPEC)
    assert list(table.columns) == [
        "loan_id",
        "event_timestamp",
        "purpose__car",
        "purpose__home",
        "income",
        "housing__rent",  # declared categories keep the declared order
        "housing__own",
        "housing__for_free",
        "grade__1",  # numeric codes name their category without a trailing ".0"
        "grade__2",
        "grade__3",
    ]
    assert table["purpose__car"].tolist() == [1, 0, 1, 0]
    assert table["purpose__home"].tolist() == [0, 1, 0, 0]  # a missing value encodes as all zeros
    assert table["housing__for_free"].tolist() == [0, 0, 0, 1]
    assert table["income"].dtype == "float64" and np.isnan(table["income"][2])
    assert (table["event_timestamp"] == UNDATED_AS_OF).all()
    assert str(table["event_timestamp"].dtype) == "datetime64[ns, UTC]"


def test_recorded_encoding_maps_unknown_categories_to_zeros() -> None:
    contract = spec_contract(_frame(), SPEC)
    later = _frame().assign(purpose=["boat", "car", "home", "car"], grade=["2", 7, 1, 3.0])
    table = spec_feature_table(later, SPEC, contract)
    assert list(table.columns[2:]) == contract.features  # same columns, whatever the new data holds
    assert table.loc[0, ["purpose__car", "purpose__home"]].tolist() == [0, 0]
    assert table["grade__1"].tolist() == [0, 0, 1, 0]
    assert table["grade__2"].tolist() == [1, 0, 0, 0]
    assert table.loc[1, ["grade__1", "grade__2", "grade__3"]].tolist() == [0, 0, 0]


def test_contract_of_a_spec() -> None:
    contract = spec_contract(_frame(), SPEC)
    assert (contract.service, contract.entity, contract.tables, contract.views) == (
        "loans_v1",
        "loans_record",
        ["loans"],
        ["loans_fv"],
    )
    assert contract.join_key == "loan_id" and contract.join_key_dtype == "int"
    assert contract.target == "status" and contract.protected == ["sex"]
    assert "sex" not in contract.features and "status" not in contract.features
    assert contract.directions["income"] == -1 and contract.directions["purpose__car"] == 0
    assert contract.dtypes["income"] == "float" and contract.dtypes["housing__own"] == "int"
    assert contract.encodings["housing"] == {
        "rent": "housing__rent",
        "own": "housing__own",
        "for free": "housing__for_free",
    }
    assert contract.reasons["housing__for_free"] == "Housing: for free"
    assert FeatureContract.model_validate(contract.model_dump(mode="json")) == contract


def test_one_hot_names_are_unique_and_short() -> None:
    features = [{"name": "x" * 55, "type": "categorical"}, {"name": "c", "type": "categorical"}]
    spec = DatasetSpec.model_validate({**SPEC.model_dump(), "features": features})
    df = pd.DataFrame(
        {
            "loan_id": [1, 2, 3, 4],
            "x" * 55: ["alpha", "beta", "alpha", "beta"],
            "c": ["a b", "a-b", "A B", "?"],
            "status": ["bad"] * 4,
            "sex": ["f"] * 4,
        }
    )
    contract = spec_contract(df, spec)
    assert len(set(contract.features)) == len(contract.features) == 6
    assert max(len(f) for f in contract.features) <= 60
    assert set(contract.encodings["c"].values()) == {"c__a_b", "c__a_b_2", "c__a_b_3", "c__blank"}
    assert spec_feature_table(df, spec, contract)[list(contract.encodings["c"].values())].sum().sum() == 4


def test_entities_carry_target_as_0_1_and_protected_attributes() -> None:
    entities = spec_entity_frame(_frame(), SPEC)
    assert list(entities.columns) == ["loan_id", "event_timestamp", "status", "sex"]
    assert entities["status"].tolist() == [1, 0, 0, 1]


def test_builtin_contract_is_the_feature_registry() -> None:
    contract = builtin_contract()
    assert contract.service == FEATURE_SERVICE
    assert contract.features == model_feature_names()
    assert contract.directions == feature_directions()
    assert contract.views == ["identity_fv", "bureau_fv", "behavioural_fv", "derived_fv"]
    assert contract.entity_columns == [
        "applicant_id",
        "event_timestamp",
        "defaulted",
        "sex",
        "age_band",
        "race",
    ]


def test_contract_refuses_protected_attributes_as_features() -> None:
    raw = builtin_contract().model_dump()
    raw["features"] = [*raw["features"], "sex"]
    raw["dtypes"]["sex"], raw["directions"]["sex"] = "int", 0
    with pytest.raises(ValueError, match="never be model inputs"):
        FeatureContract.model_validate(raw)


def test_user_csv_from_spec_to_contract(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 200  # ingest refuses fewer than MIN_CLASS_ROWS of either outcome
    pd.DataFrame(
        {
            "id": np.arange(100, 100 + n),
            "applied": pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "amount": rng.uniform(1_000, 9_000, n).round(2),
            "channel": rng.choice(["web", "branch", "phone"], n),
            "gender": rng.choice(["female", "male"], n),
            "outcome": rng.choice(["paid", "default"], n),
        }
    ).assign(amount=lambda d: d["amount"].where(d.index != 3, -5.0)).to_csv(
        tmp_path / "loans.csv", index=False
    )
    (tmp_path / "loans.yaml").write_text(
        "name: my_loans\n"
        "path: loans.csv\n"
        "id_column: id\n"
        "timestamp_column: applied\n"
        "target: outcome\n"
        "positive_value: default\n"
        "protected: [gender]\n"
        "features:\n"
        "  - {name: amount, type: numeric, direction: 1, valid_range: [0, null]}\n"
        "  - {name: channel, type: categorical}\n"
    )
    info = ingest("spec", tmp_path / "snapshots", spec_path=tmp_path / "loans.yaml")
    tables, info = read_snapshot(info.path)
    result = validate_snapshot(tables, info)
    assert len(result.accepted["my_loans"]) == n - 1  # the negative amount is quarantined
    built = build_snapshot_features(result.accepted, info.source)
    contract = built.contract
    assert (
        contract.service == "my_loans_v1" and contract.join_key == "id" and contract.join_key_dtype == "int"
    )
    assert contract.features == ["amount", "channel__branch", "channel__phone", "channel__web"]
    table = built.tables["my_loans"]
    assert list(table.columns) == ["id", "event_timestamp", *contract.features]
    assert table[["channel__branch", "channel__phone", "channel__web"]].sum(axis=1).eq(1).all()
    assert table["event_timestamp"].min() == pd.Timestamp("2024-01-01", tz="UTC")
    assert built.as_of == pd.Timestamp("2024-07-18", tz="UTC")
    assert list(built.entities.columns) == contract.entity_columns
    assert set(built.entities["outcome"]) <= {0, 1} and "gender" not in contract.features


def test_whole_number_columns_stay_integers_unless_they_have_gaps() -> None:
    spec = DatasetSpec.model_validate(
        {
            **SPEC.model_dump(),
            "features": [{"name": "n", "type": "numeric"}, {"name": "x", "type": "numeric"}],
        }
    )
    df = pd.DataFrame(
        {"loan_id": [1, 2], "n": [0, 3], "x": [1.5, 2.0], "status": ["bad"] * 2, "sex": ["f"] * 2}
    )
    contract = spec_contract(df, spec)
    assert contract.dtypes == {"n": "int", "x": "float"}
    assert spec_feature_table(df, spec, contract)["n"].dtype == "int64"
    gap = spec_feature_table(df.assign(n=[np.nan, 2.0]), spec, contract)  # scoring data with a gap
    assert gap["n"].dtype == "float64" and np.isnan(gap["n"][0])
    assert spec_contract(df.assign(n=pd.array([1, None], dtype="Int64")), spec).dtypes["n"] == "float"
