"""Feature discovery: catalog entries, text and HTML pages, the `features` and `schedule` commands."""

from pathlib import Path

import pytest

from creditops.cli import main
from creditops.data.synthetic import generate_world
from creditops.features.build import build_feature_tables
from creditops.features.catalog import catalog_entries, describe, models_by_feature, write_catalog
from creditops.features.registry import FEATURES, model_feature_names
from creditops.features.versioning import feature_hashes


def test_entries_join_definition_statistics_drift_and_models() -> None:
    tables = build_feature_tables(generate_world(80, seed=2))
    models = models_by_feature([("credit-pd v1", ["income", "num_dependents"]), ("credit-pd v2", ["income"])])
    entries = {e.name: e for e in catalog_entries(tables, {"income": True, "num_dependents": False}, models)}
    assert list(entries) == model_feature_names()
    income = entries["income"]
    assert income.reason == "Income insufficient for amount of credit requested" and income.direction == -1
    assert income.function == "creditops.features.identity.income"
    assert income.content_hash == feature_hashes(["income"])["income"]
    assert income.statistics["count"] == len(tables["identity"])
    assert income.statistics["mean"] == pytest.approx(tables["identity"]["income"].mean())
    assert (income.drift, entries["num_dependents"].drift, entries["credit_score"].drift) == (
        "drifted",
        "stable",
        "not checked",
    )
    assert income.models == ["credit-pd v1", "credit-pd v2"] and entries["credit_score"].models == []
    assert "used by        credit-pd v1, credit-pd v2" in describe(income)
    assert "used by        no model" in describe(entries["credit_score"])


def test_unreadable_model_registry_says_unknown_and_no_statistics_without_tables() -> None:
    entry = catalog_entries()[0]
    assert entry.models is None and entry.statistics == {}
    text = describe(entry)
    assert "used by        unknown" in text and "statistics     not computed" in text


def test_html_catalog_has_a_page_per_feature(tmp_path: Path) -> None:
    paths = write_catalog(catalog_entries(), tmp_path / "catalog")
    assert len(paths) == len(FEATURES) + 1
    page = (tmp_path / "catalog" / "debt_to_income.html").read_text()
    for text in ("Total debt / annual income.", "Debt is high relative to income", "credit-risk-data", "+1"):
        assert text in page
    assert "debt_to_income.html" in (tmp_path / "catalog" / "index.html").read_text()


def test_cli_list_describe_catalog_schedule(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["features", "list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in model_feature_names())
    assert main(["features", "describe", "no_such_feature"]) == 2
    assert "unknown feature 'no_such_feature'" in capsys.readouterr().out
    assert main(["features", "describe", "credit_score"]) == 0
    assert "Bureau credit score (300-850)." in capsys.readouterr().out
    assert main(["features", "catalog", "--out", str(tmp_path / "cat")]) == 0
    assert (tmp_path / "cat" / "credit_score.html").exists()
    assert main(["schedule", "--once"]) == 0
    out = capsys.readouterr().out
    assert "daily: '0 2 * * *'" in out and "retrain: '0 3 1 * *'" in out
