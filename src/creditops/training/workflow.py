"""The training steps as the pipeline runs them: tune, fit + bundle, register. Each is one call per component.

These functions tie the pure pieces (``tune``, ``fit_model``, ``save_bundle``, ``register``) to one MLflow
parent run per pipeline run, so lineage reads data version -> feature service -> run -> model version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.tracking import MlflowClient
from pydantic import BaseModel

from creditops.artifact import Manifest, save_bundle
from creditops.config import Settings
from creditops.features.registry import FEATURE_SERVICE, FEATURES, feature_directions, model_feature_names
from creditops.governance.gates import GateReport
from creditops.governance.registry import register, tracking_uri_for
from creditops.training.fit import fit_model
from creditops.training.split import Split
from creditops.training.tune import TuneResult, tune

TARGET = "defaulted"
REFERENCE_ROWS = 5_000


def start_parent_run(settings: Settings, data_version: str) -> str:
    """Create the pipeline run's MLflow parent run (tagged with its lineage) and return its id."""
    uri = tracking_uri_for(settings.mlflow.tracking_uri)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(
            settings.mlflow.experiment, artifact_location=settings.mlflow.artifact_location
        )
    )
    run = client.create_run(
        experiment_id,
        run_name=f"training-{data_version}",
        tags={"lineage.data_version": data_version, "lineage.feature_service": FEATURE_SERVICE},
    )
    return run.info.run_id


def tune_in_new_run(
    train: pd.DataFrame, valid: pd.DataFrame, settings: Settings, data_version: str
) -> tuple[TuneResult, str]:
    """Tune on train/valid inside a new parent run; every trial is a nested run under it."""
    run_id = start_parent_run(settings, data_version)
    result = tune(
        Split(train, valid, valid.iloc[:0]),
        model_feature_names(),
        TARGET,
        n_trials=settings.training.n_trials,
        seed=settings.training.seed,
        pruner=settings.training.pruner,
        mlflow_parent_run_id=run_id,
        directions=feature_directions(),
        tracking_uri=tracking_uri_for(settings.mlflow.tracking_uri),
    )
    return result, run_id


def train_bundle(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    params: dict[str, Any],
    settings: Settings,
    data_version: str,
    run_id: str,
    bundle_dir: str | Path,
) -> Manifest:
    """Refit with the tuned parameters, write the bundle (with its drift reference sample), log to the run."""
    features = model_feature_names()
    protected = [c for c in ("sex", "age_band", "race") if c in train.columns]
    fitted = fit_model(
        Split(train, valid, None),
        features,
        feature_directions(),
        TARGET,
        params,
        scoring=settings.scoring,
        cv_folds=settings.training.cv_folds,
        seed=settings.training.seed,
        distributed=settings.training.distributed,
        dask_workers=settings.training.dask_workers,
        protected=protected,
    )
    manifest = fitted.to_manifest(
        settings.mlflow.model_name,
        FEATURE_SERVICE,
        reasons={f.name: f.reason for f in FEATURES},
        data_version=data_version,
        dtypes={f.name: f.dtype for f in FEATURES},
    )
    reference = train[features].sample(min(REFERENCE_ROWS, len(train)), random_state=settings.training.seed)
    save_bundle(bundle_dir, fitted.booster, manifest, reference.reset_index(drop=True))
    client = MlflowClient(tracking_uri=tracking_uri_for(settings.mlflow.tracking_uri))
    for name, value in manifest.metrics.items():
        client.log_metric(run_id, f"train.{name}", float(value))
    client.log_param(run_id, "best_params", json.dumps(params, sort_keys=True)[:6000])
    return manifest


class RunSummary(BaseModel):
    """What one training pipeline run produced (the CLI prints it; the demo serves the version)."""

    model_name: str
    data_version: str | None
    run_id: str
    best_params: dict[str, Any]
    metrics: dict[str, float]
    gates: list[dict[str, Any]]
    gates_passed: bool
    gate_summary: str
    registered_version: str | None
    model_card_html: str
    model_card_markdown: str
    entities_path: str | None = None


def register_if_passed(
    settings: Settings,
    run_id: str,
    bundle_dir: str | Path,
    gate_report_path: str | Path,
    card_paths: dict[str, str],
    entities_path: str | None = None,
) -> RunSummary:
    """Register the bundle with alias ``challenger`` when every gate passed; otherwise register nothing."""
    from creditops.artifact import read_manifest

    manifest = read_manifest(bundle_dir)
    report = GateReport.from_dict(json.loads(Path(gate_report_path).read_text()))
    version = None
    if report.passed:
        version = register(
            bundle_dir,
            report,
            tracking_uri_for(settings.mlflow.tracking_uri),
            settings.mlflow.model_name,
            run_id=run_id,
            lineage={"data_version": manifest.data_version, "feature_service": manifest.feature_service},
            model_card_paths=[card_paths["markdown"], card_paths["html"]],
            experiment=settings.mlflow.experiment,
            artifact_location=settings.mlflow.artifact_location,
        )
    gate_metrics = {k: v for k, v in report.metrics.items() if v == v}
    return RunSummary(
        model_name=settings.mlflow.model_name,
        data_version=manifest.data_version,
        run_id=run_id,
        best_params={k: v for k, v in manifest.params.items()},
        metrics={**manifest.metrics, **{f"test.{k}": v for k, v in gate_metrics.items()}},
        gates=[
            {**g, "value": g["value"] if g["value"] is not None else float("nan")}
            for g in report.to_dict()["gates"]
        ],
        gates_passed=report.passed,
        gate_summary=report.summary(),
        registered_version=version,
        model_card_html=card_paths["html"],
        model_card_markdown=card_paths["markdown"],
        entities_path=entities_path,
    )
