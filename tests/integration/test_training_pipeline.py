"""The training pipeline end to end on the KFP local runner, with MLflow on real Postgres.

One run on the demo's data (the 20,000-applicant world) at the DEFAULT gates, with fewer trials than the
demo's 100 so it fits in CI, feeds several assertions: the model registers (alias ``challenger``, never
``champion``) as an MLflow pyfunc model, with lineage, its baselines and a finished parent run; the model
card; then the same model evaluated under a strict gate config must be refused registration, with the
failed gate named.
"""

from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.tracking import MlflowClient
from pipeline_helpers import regate_and_register

from creditops.config import Settings, load_config
from creditops.governance.registry import tracking_uri_for
from pipelines.training import COMPILED

# The demo's data and gates; only the number of trials is smaller than the demo's 100.
DEMO_RUN = {"training": {"n_trials": 15}}


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> tuple[Settings, dict[str, Any]]:
    from pipelines.local import run_training

    workdir = tmp_path_factory.mktemp("pipeline")
    overrides = {**DEMO_RUN, "workdir": str(workdir), "mlflow": {"tracking_uri": pg_url}}
    settings = load_config(None, overrides).resolved()
    lines: list[str] = []
    summary = run_training(settings, emit=lines.append)
    summary["progress"] = lines
    return settings, summary


def test_every_step_ran_and_reported_progress(pipeline_run: tuple[Settings, dict[str, Any]]) -> None:
    _, summary = pipeline_run
    finished = [line for line in summary["progress"] if "✔" in line]
    steps = yaml.safe_load(COMPILED.read_text())["root"]["dag"]["tasks"]  # every step of the pipeline
    for step in steps:
        assert any(step in line for line in finished), f"{step} did not report success"


def test_passing_model_is_registered_as_challenger_with_lineage(
    pipeline_run: tuple[Settings, dict[str, Any]],
) -> None:
    settings, summary = pipeline_run
    assert summary["gates_passed"], summary["gate_summary"]
    version = summary["registered_version"]
    client = MlflowClient(tracking_uri=tracking_uri_for(settings.mlflow.tracking_uri))
    model = client.get_registered_model(settings.mlflow.model_name)
    assert {k: str(v) for k, v in model.aliases.items()} == {
        "challenger": str(version)
    }  # champion is moved only by promotion
    mv = client.get_model_version(settings.mlflow.model_name, version)
    assert summary["data_version"] in mv.tags["lineage"]
    assert "credit_scoring_v1" in mv.tags["lineage"]
    assert summary["metrics"]["cv_auc_mean"] > 0.8
    assert summary["metrics"]["n_trees"] >= 50  # never the 5-tree model of the seed's demo
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED" and run.info.end_time > run.info.start_time
    assert run.data.tags["mlflow.source.name"].startswith("pipelines/training.py")
    cards = {a.path for a in client.list_artifacts(summary["run_id"], "model_card")}
    assert cards == {"model_card/model_card.md", "model_card/model_card.html"}


def test_the_tuned_model_is_compared_with_both_baselines(
    pipeline_run: tuple[Settings, dict[str, Any]],
) -> None:
    _, summary = pipeline_run
    compared = summary["comparison"]
    assert list(compared) == ["tuned_xgboost", "logistic_regression", "xgboost_default"]
    for row in compared.values():
        assert {"auc", "gini", "ks", "brier", "cv_auc_mean", "cv_auc_sd"} <= set(row)
    tuned = compared["tuned_xgboost"]
    assert tuned["auc"] >= max(compared[b]["auc"] for b in ("logistic_regression", "xgboost_default")) - 0.01
    # the calibrated PD keeps the raw score's ranking
    assert abs(summary["metrics"]["test_auc_calibrated"] - summary["metrics"]["test_auc"]) <= 0.002
    markdown = Path(summary["model_card_markdown"]).read_text()
    assert "## Baselines" in markdown and "logistic_regression" in markdown


def test_challenger_scores_a_frame_through_mlflow_pyfunc(
    pipeline_run: tuple[Settings, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import numpy as np
    import pandas as pd

    settings, summary = pipeline_run
    uri = tracking_uri_for(settings.mlflow.tracking_uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    model = mlflow.pyfunc.load_model(f"models:/{settings.mlflow.model_name}@challenger")
    test = pd.read_parquet(Path(summary["model_card_html"]).parents[1] / "build-training-set" / "test")
    features = model.metadata.get_input_schema().input_names()
    scored = model.predict(test[features].head(500))
    assert len(scored) == 500 and set(scored["decision"]) <= {"approve", "review", "decline"}
    assert scored["pd"].nunique() > 490  # distinct applicants get distinct PDs (no 5-tree grid, no ties)
    assert np.all((scored["pd"] > 0) & (scored["pd"] < 1))


def test_model_card_has_required_sections(pipeline_run: tuple[Settings, dict[str, Any]]) -> None:
    _, summary = pipeline_run
    markdown = Path(summary["model_card_markdown"]).read_text()
    html = Path(summary["model_card_html"]).read_text()
    for section in ("Overview", "Training data", "Performance", "Fairness", "Limitations", "Ethical"):
        assert section.lower() in markdown.lower()
    assert html.count("data:image/png;base64,") >= 5


def test_strict_gates_refuse_registration_and_name_the_gate(
    pipeline_run: tuple[Settings, dict[str, Any]], tmp_path: Path
) -> None:
    settings, summary = pipeline_run
    _, result = regate_and_register(settings, summary, tmp_path, min_auc=0.99)
    assert result.registered_version is None
    assert "auc" in result.gate_summary and "0.99" in result.gate_summary
    client = MlflowClient(tracking_uri=tracking_uri_for(settings.mlflow.tracking_uri))
    versions = client.search_model_versions(f"name='{settings.mlflow.model_name}'")
    assert len(versions) == 1  # only the passing run's version exists
