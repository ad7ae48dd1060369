"""The model card describes the dataset the model was trained on; it says when fairness was not assessed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from governance_helpers import PROTECTED, TARGET, make_bundle

from creditops.artifact import Bundle, load_bundle
from creditops.config import GatesConfig
from creditops.data.ingest import describe_source
from creditops.data.real import spec_path
from creditops.data.spec import DatasetSpec
from creditops.governance import model_card
from creditops.governance.gates import evaluate_gates


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Bundle, pd.DataFrame]:
    bundle_dir, test = make_bundle(Path(tmp_path_factory.mktemp("card")) / "bundle", n=1500)
    return load_bundle(bundle_dir), test


def test_card_names_the_spec_dataset_its_target_and_purpose(model, tmp_path: Path) -> None:
    bundle, test = model
    text = Path(spec_path("german_credit")).read_text()
    # an opted-in feature (only the spec is read here, so the column need not exist)
    feature = "  - {name: telephone_flag, type: numeric, justification: Compliance memo CR-12}\n"
    text = text.replace("features:\n", "features:\n" + feature, 1)
    text = text.replace(
        "{foreign_worker: national origin}", "{foreign_worker: national origin, telephone_flag: x}"
    )
    path = tmp_path / "german.yaml"
    path.write_text(text)
    dataset = DatasetSpec.from_yaml(path).card()
    report = evaluate_gates(bundle, test, GatesConfig(), TARGET, PROTECTED)
    markdown, html = model_card.render(bundle, report, test_df=test, dataset=dataset)
    assert "Dataset: **german_credit**. Statlog German Credit data (UCI)" in markdown
    assert "Target: `creditability`, positive value 'bad' (1 = `creditability` equals 'bad')" in markdown
    assert (
        "Intended use: Estimate the probability that a consumer-credit applicant is a bad credit risk"
        in markdown
    )
    assert "`sex` (from `personal_status_and_sex`), `age_band` (from `age_in_years`)" in markdown
    assert (
        "Feature `telephone_flag` is used despite standing for a prohibited basis. "
        "Justification: Compliance memo CR-12"
    ) in markdown
    # not the synthetic world's text
    assert "default within 12 months" not in markdown and "default within 12 months" not in html
    assert "german_credit" in html


def test_shipped_and_synthetic_descriptions() -> None:
    hmda = describe_source("hmda")
    assert hmda["name"] == "hmda" and hmda["target"] == "reject" and hmda["positive_value"] == 1
    assert "denied" in str(hmda["purpose"]) and hmda["protected_lineage"]["sex"] == ["sex", "male"]
    synthetic = describe_source("synthetic")
    assert synthetic["protected_lineage"] == {
        "sex": ["sex"],
        "age_band": ["age_band", "age"],
        "race": ["race"],
    }
    assert "within 12 months" in str(synthetic["target_meaning"])


def test_card_without_protected_attributes_says_fairness_was_not_assessed(model) -> None:
    bundle, test = model
    assessed = evaluate_gates(bundle, test, GatesConfig(), TARGET, PROTECTED)
    markdown, _ = model_card.render(bundle, assessed, test_df=test)
    assert "measured on outcomes, per protected attribute, and gated" in markdown
    assert "Not assessed" not in markdown

    report = evaluate_gates(bundle, test, GatesConfig(), TARGET, [])
    assert not report.fairness
    dataset = {
        "name": "mine",
        "target": "y",
        "positive_value": 1,
        "protected_lineage": {},
        "justifications": {},
    }
    markdown, html = model_card.render(bundle, report, test_df=test, dataset=dataset)
    fairness = markdown.split("## Fairness", 1)[1].split("\n## ", 1)[0]
    assert "**Not assessed.** No protected attribute was assessed" in fairness
    assert "measured on outcomes" not in markdown and "and gated" not in markdown
    assert "fairness was neither measured nor gated" in markdown
    assert (
        "Protected attributes: none declared by the dataset spec, so fairness was not assessed." in markdown
    )
    assert "<strong>Not assessed.</strong>" in html
