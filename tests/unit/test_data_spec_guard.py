"""Protected attributes are protected together with their declared lineage and ECOA / Reg B bases.

Each refusal is one line naming the feature and what it stands for, raised when the spec is loaded (before
any data is read or any pipeline step runs); the built-in world and the shipped specs pass the same guard.
"""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditops.data import real
from creditops.data.ingest import check_builtin_lineage, ingest, load_source
from creditops.data.spec import PROHIBITED_BASIS, DatasetSpec, prohibited_basis
from creditops.data.synthetic import PROTECTED_LINEAGE, generate_world
from creditops.errors import DataError
from creditops.features import registry
from creditops.features.build import compute_group, identity_table

BASE = """\
name: loans
path: loans.csv
id_column: loan_id
target: bad
positive_value: 1
protected: [sex, age_band]
derived:
  - {name: age_band, kind: age_band, source: Age}
  - name: sex
    kind: map
    source: personal_status
    mapping: {"male single": male, "female married": female}
"""


def spec_with(tmp_path: Path, features: str, extra: str = "") -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(BASE + extra + "features:\n" + textwrap.indent(textwrap.dedent(features), "  "))
    return path


def refusal(tmp_path: Path, features: str, extra: str = "") -> str:
    with pytest.raises(DataError) as err:
        DatasetSpec.from_yaml(spec_with(tmp_path, features, extra))
    message = str(err.value)
    assert "\n" not in message
    return message


def test_source_of_a_protected_attribute_is_refused_naming_both(tmp_path: Path) -> None:
    # the case: a spec listing `Age` while age_band (derived from Age) is protected
    message = refusal(tmp_path, "- {name: Age, type: numeric}\n- {name: income, type: numeric}\n")
    assert "feature 'Age' stands for protected attribute 'age_band' (age_band is derived from Age)" in message
    assert "remove it from features" in message


def test_lineage_not_the_name_decides(tmp_path: Path) -> None:
    # renamed to a neutral code, the column that `sex` is derived from is still refused
    renamed = BASE.replace("personal_status", "ps_code")
    path = tmp_path / "spec.yaml"
    path.write_text(renamed + "features:\n  - {name: ps_code, type: categorical}\n")
    assert prohibited_basis("ps_code") is None
    with pytest.raises(DataError, match="feature 'ps_code' stands for protected attribute 'sex'"):
        DatasetSpec.from_yaml(path)


def test_a_feature_derived_from_a_protected_source_is_refused(tmp_path: Path) -> None:
    extra = "  - {name: life_stage, kind: map, source: personal_status, mapping: {x: y}}\n"
    path = tmp_path / "spec.yaml"
    path.write_text(BASE + extra + "features:\n  - {name: life_stage, type: categorical}\n")
    with pytest.raises(
        DataError, match="'life_stage' stands for protected attribute 'sex'.*through 'personal"
    ):
        DatasetSpec.from_yaml(path)


def test_the_protected_attribute_itself_is_refused(tmp_path: Path) -> None:
    assert "feature 'sex' is protected attribute 'sex'" in refusal(
        tmp_path, "- {name: sex, type: categorical}\n"
    )


@pytest.mark.parametrize(
    ("column", "basis"),
    [
        ("married", "marital status"),
        ("Marital_Status", "marital status"),
        ("race", "race"),
        ("applicant_gender_code", "sex"),
        ("religion", "religion"),
        ("national_origin", "national origin"),
        ("receives_public_assistance", "receipt of public assistance"),
        ("colour", "color"),
    ],
)
def test_prohibited_basis_columns_are_refused_without_being_protected(tmp_path: Path, column, basis) -> None:
    message = refusal(tmp_path, f"- {{name: {column}, type: numeric}}\n")
    assert f"feature {column!r} stands for {basis}, a prohibited basis under ECOA / Reg B" in message
    assert "justification" in message


def test_ordinary_names_are_not_mistaken_for_a_basis() -> None:
    for column in ("mortgage_amount", "account_age_months", "average_balance", "dependents", "message_count"):
        assert prohibited_basis(column) is None, column


def test_a_spec_extends_the_list(tmp_path: Path) -> None:
    features = "- {name: foreign_worker_flag, type: numeric}\n"
    message = refusal(tmp_path, features, "prohibited_columns: {foreign_worker_flag: national origin}\n")
    assert "'foreign_worker_flag' stands for national origin" in message
    message = refusal(tmp_path, "- {name: zip3, type: categorical}\n", "prohibited_columns: [zip3]\n")
    assert "'zip3' stands for a prohibited basis declared in this spec" in message


def test_opt_in_with_justification_is_recorded(tmp_path: Path) -> None:
    why = "Approved by compliance 2026-11: joint applications are priced on combined income"
    spec = DatasetSpec.from_yaml(
        spec_with(tmp_path, f'- {{name: married, type: numeric, justification: "{why}"}}\n')
    )
    assert spec.justifications() == {"married": why}
    assert spec.card()["justifications"] == {"married": why}


def test_age_cannot_be_opted_in(tmp_path: Path) -> None:
    # Reg B allows age only if applicants aged 62+ never get a negative factor: creditops does not
    # enforce that, so no justification lets age (or its source) in
    for name in ("Age", "applicant_age", "date_of_birth"):
        message = refusal(tmp_path, f"- {{name: {name}, type: numeric, justification: we need it}}\n")
        assert f"feature {name!r} stands for" in message and "age cannot be a model input" in message
        assert "62+" in message


def test_a_justification_with_nothing_to_justify_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, "- {name: income, type: numeric, justification: just in case}\n")
    assert "feature 'income' has a justification but stands for no protected attribute" in message


def test_guard_runs_at_ingest_before_any_data_is_read(tmp_path: Path) -> None:
    # the data file does not even exist: the spec guard fires first, nothing is written
    path = spec_with(tmp_path, "- {name: Age, type: numeric}\n")
    with pytest.raises(DataError, match="stands for protected attribute 'age_band'"):
        ingest("spec", tmp_path / "snapshots", spec_path=path)
    assert not (tmp_path / "snapshots").exists()


@pytest.mark.parametrize("name", real.REAL_DATASETS)
def test_shipped_specs_train_without_any_protected_source_or_basis(name: str) -> None:
    df, spec = load_source(name)
    lineage = {c for cols in spec.protected_lineage().values() for c in cols}
    assert lineage  # both declare protected attributes with sources
    for feature in spec.feature_names:
        assert feature not in lineage and prohibited_basis(feature, spec.prohibited_columns) is None
    if name == "hmda":
        assert "married" not in spec.feature_names and "married" in df.columns
    else:
        assert {"age_in_years", "personal_status_and_sex", "foreign_worker"} <= set(df.columns)


def test_shipped_spec_with_married_added_back_is_refused(tmp_path: Path) -> None:
    text = Path(real.spec_path("hmda")).read_text()
    text = text.replace("features:\n", "features:\n  - {name: married, type: numeric}\n")
    path = tmp_path / "hmda.yaml"
    path.write_text(text)
    with pytest.raises(DataError, match="feature 'married' stands for marital status"):
        DatasetSpec.from_yaml(path)


def test_builtin_world_has_no_protected_input_and_its_declared_lineage_is_true() -> None:
    check_builtin_lineage()
    names = registry.model_feature_names()
    assert len(names) == 45 and "age" not in names
    raw = {c for cols in PROTECTED_LINEAGE.values() for c in cols} | set(PROTECTED_LINEAGE)
    for feature, sources in registry.feature_sources().items():
        assert not set(sources) & raw, feature
    # the declaration is checked against the code: identity features compute without any protected column
    world = generate_world(200, seed=3)
    apps = world.applications.drop(columns=sorted(raw & set(world.applications.columns)))
    assert set(compute_group("identity", apps).columns) == set(registry.IDENTITY_SOURCES)
    for name, sources in registry.IDENTITY_SOURCES.items():
        body = inspect.getsource(getattr(__import__("creditops.features.identity", fromlist=["_"]), name))
        assert all(f'"{s}"' in body for s in sources), name
    assert set(identity_table(apps).columns) >= set(registry.IDENTITY_SOURCES)
    for col in ("sex", "race", "age", "age_band"):
        assert col not in world.bureau.columns and col not in world.transactions.columns


def test_builtin_guard_fails_when_a_feature_reads_age(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.IDENTITY_SOURCES, "num_dependents", ("num_dependents", "age"))
    with pytest.raises(DataError, match="built-in feature 'num_dependents' reads 'age'.*'age_band'"):
        check_builtin_lineage()


def test_prohibited_basis_list_covers_every_ecoa_basis_with_a_column() -> None:
    bases = set(PROHIBITED_BASIS.values())
    assert bases == {
        "race",
        "color",
        "religion",
        "national origin",
        "sex",
        "marital status",
        "age",
        "receipt of public assistance",
    }


def test_empty_protected_is_allowed_but_warned(tmp_path: Path) -> None:
    n = 2_000
    rng = np.random.default_rng(0)
    pd.DataFrame(
        {"loan_id": np.arange(n), "bad": rng.integers(0, 2, n), "income": rng.normal(size=n)}
    ).to_parquet(tmp_path / "big.parquet")
    (tmp_path / "big.yaml").write_text(
        "name: big\npath: big.parquet\nformat: parquet\nid_column: loan_id\ntarget: bad\npositive_value: 1\n"
        "protected: []\nfeatures: [{name: income, type: numeric}]\n"
    )
    warnings: list[str] = []
    df, _ = load_source("spec", tmp_path / "big.yaml", warn=warnings.append)
    assert len(df) == n and len(warnings) == 1 and "protected: []" in warnings[0]


def test_shipped_specs_give_their_own_reason_texts() -> None:
    from creditops.features.spec import spec_contract

    df, spec = load_source("german_credit")
    contract = spec_contract(df, spec)
    account = contract.category_reasons["status_of_existing_checking_account"]
    assert account["... < 0 DM"] == "Checking account is overdrawn"
    column = contract.encodings["status_of_existing_checking_account"]["... < 0 DM"]
    assert contract.reasons[column] == "Checking account is overdrawn"
    assert contract.reasons["duration_in_month"] == "Loan term is long"
    df, spec = load_source("hmda")
    contract = spec_contract(df, spec)
    assert contract.reasons["obrat"] == "Total debt payments are high relative to income"
    assert set(contract.reasons) == set(contract.features)
