"""The retraining pipeline on the KFP local runner, against a registry that already has a champion.

Small on purpose (1,500 applicants, 2 trials on the validation objective, 2 CV folds, lenient thresholds so
both small models register): a training
run on another world (seed 11) is promoted to ``champion``; the retraining run on the last 12 months of
this world must register its model as ``challenger``, judge it against that champion on the same recent
hold-out, record the trigger reason on the run and the version, and leave ``champion`` where it was.
"""

from typing import Any

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from creditops.config import Settings, load_config
from creditops.governance.registry import promote, tracking_uri_for
from pipelines.retraining import COMPILED

LENIENT = {
    "min_auc": 0.5,
    "max_fpr": 1.0,
    "min_recall": 0.0,
    "max_demographic_parity_difference": 1.0,
    "max_equal_opportunity_difference": 1.0,
    "min_adverse_impact_ratio": 0.0,
    "max_perturbation_shift": 1.0,
    "baseline_tolerance": 1.0,
    "max_calibration_auc_change": 1.0,
    "champion_tolerance": 0.2,
}
REASON = "test: persistent FeatureDriftAct on utilisation"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str, dict[str, Any], list[str]]:
    from pipelines.local import run_retraining, run_training

    workdir = tmp_path_factory.mktemp("retrain")
    training = {"n_trials": 2, "objective": "valid", "cv_folds": 2}
    gates = {**LENIENT, "fairness_bootstrap_resamples": 50}
    small = {"workdir": str(workdir), "training": training, "gates": gates}
    champion_settings = load_config(None, {**small, "data": {"n_applicants": 1500, "seed": 11}}).resolved()
    first = run_training(champion_settings, emit=lambda _: None)
    assert first["registered_version"], first["gate_summary"]
    promote(champion_settings.mlflow.tracking_uri, "credit-pd", first["registered_version"], promoted_by="ci")
    settings = load_config(None, {**small, "data": {"n_applicants": 1500, "seed": 7}}).resolved()
    lines: list[str] = []
    summary = run_retraining(settings, REASON, window_months=12, emit=lines.append)
    return settings, first["registered_version"], summary, lines


def test_every_step_ran(runs: tuple[Settings, str, dict[str, Any], list[str]]) -> None:
    *_, lines = runs
    finished = [line for line in lines if "✔" in line]
    for step in yaml.safe_load(COMPILED.read_text())["root"]["dag"]["tasks"]:
        assert any(step in line for line in finished), f"{step} did not report success"


def test_challenger_is_registered_and_champion_is_unchanged(
    runs: tuple[Settings, str, dict[str, Any], list[str]],
) -> None:
    settings, champion, summary, _ = runs
    version = summary["registered_version"]
    assert version and version != champion, summary["gate_summary"]
    client = MlflowClient(tracking_uri=tracking_uri_for(settings.mlflow.tracking_uri))
    aliases = {k: str(v) for k, v in client.get_registered_model("credit-pd").aliases.items()}
    assert aliases == {"champion": champion, "challenger": version}
    assert summary["champion_version"] == champion
    assert summary["handoff"]["challenger"] == version
    assert summary["handoff"]["command"] == f"creditops rollout canary --version {version}"


def test_the_champion_gate_judged_the_registry_champion(
    runs: tuple[Settings, str, dict[str, Any], list[str]],
) -> None:
    _, champion, summary, _ = runs
    gate = next(g for g in summary["gates"] if g["name"] == "champion_not_worse")
    assert gate["status"] == "pass" and gate["threshold"] == -0.2
    assert f"v{champion}" in gate["detail"]
    assert summary["metrics"]["test.champion_version"] == float(champion)


def test_trigger_reason_is_on_the_run_and_the_version(
    runs: tuple[Settings, str, dict[str, Any], list[str]],
) -> None:
    settings, _, summary, _ = runs
    client = MlflowClient(tracking_uri=tracking_uri_for(settings.mlflow.tracking_uri))
    assert summary["trigger_reason"] == REASON
    run_tags = client.get_run(summary["run_id"]).data.tags
    version_tags = client.get_model_version("credit-pd", summary["registered_version"]).tags
    for tags in (run_tags, version_tags):
        assert tags["retraining.reason"] == REASON
        assert tags["retraining.window_months"] == "12"


def test_training_used_only_the_last_twelve_months(
    runs: tuple[Settings, str, dict[str, Any], list[str]],
) -> None:
    from pathlib import Path

    _, _, summary, _ = runs
    run_root = Path(summary["model_card_html"]).parents[1]
    window = pd.read_parquet(run_root / "select-recent-window" / "recent")
    every = pd.read_parquet(run_root / "compute-features" / "entities")
    assert 0 < len(window) < len(every)
    span = window["event_timestamp"].max() - window["event_timestamp"].min()
    assert span <= pd.Timedelta(days=366) < every["event_timestamp"].max() - every["event_timestamp"].min()
    used = sum(len(pd.read_parquet(run_root / "build-training-set" / p)) for p in ("train", "valid", "test"))
    assert used == len(window)
