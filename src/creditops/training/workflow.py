"""The training steps as the pipeline runs them: tune, fit + bundle, register. Each is one call per component.

These functions tie the pure pieces (``tune``, ``fit_model``, ``save_bundle``, ``register``) to one MLflow
parent run per pipeline run, so lineage reads data version -> feature service -> run -> model version.
Features, directions, reasons, target and protected attributes come from the run's
:class:`~creditops.features.contract.FeatureContract` (default: the synthetic world's ``credit_scoring_v1``),
so a dataset-spec run trains on its own FeatureService through the same calls.
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
from creditops.features.contract import FeatureContract, builtin_contract
from creditops.governance.gates import GateReport
from creditops.governance.registry import register, tracking_uri_for
from creditops.monitoring.reference import write_bundle_reference
from creditops.training._common import DEFAULT_PROTECTED
from creditops.training.fit import fit_model
from creditops.training.split import Split
from creditops.training.tune import TuneResult, tune

REFERENCE_ROWS = 5_000


def start_parent_run(settings: Settings, data_version: str, feature_service: str) -> str:
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
        tags={"lineage.data_version": data_version, "lineage.feature_service": feature_service},
    )
    return run.info.run_id


def tune_in_new_run(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    settings: Settings,
    data_version: str,
    contract: FeatureContract | None = None,
) -> tuple[TuneResult, str]:
    """Tune on train/valid inside a new parent run; every trial is a nested run under it."""
    contract = contract or builtin_contract()
    run_id = start_parent_run(settings, data_version, contract.service)
    result = tune(
        Split(train, valid, valid.iloc[:0]),
        contract.features,
        contract.target,
        n_trials=settings.training.n_trials,
        seed=settings.training.seed,
        pruner=settings.training.pruner,
        mlflow_parent_run_id=run_id,
        directions=contract.directions,
        tracking_uri=tracking_uri_for(settings.mlflow.tracking_uri),
        protected=_refused_inputs(contract),
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
    contract: FeatureContract | None = None,
) -> Manifest:
    """Refit with the tuned parameters, write the bundle (with its drift reference sample), log to the run."""
    contract = contract or builtin_contract()
    features = contract.features
    fitted = fit_model(
        Split(train, valid, None),
        features,
        contract.directions,
        contract.target,
        params,
        scoring=settings.scoring,
        cv_folds=settings.training.cv_folds,
        seed=settings.training.seed,
        distributed=settings.training.distributed,
        dask_workers=settings.training.dask_workers,
        protected=_refused_inputs(contract),
    )
    manifest = fitted.to_manifest(
        settings.mlflow.model_name,
        contract.service,
        reasons=contract.reasons,
        data_version=data_version,
        dtypes=contract.dtypes,
        valid_ranges=contract.valid_ranges,
    )
    reference = train[features].sample(min(REFERENCE_ROWS, len(train)), random_state=settings.training.seed)
    save_bundle(bundle_dir, fitted.booster, manifest, reference.reset_index(drop=True))
    write_bundle_reference(bundle_dir, train[features], valid, contract.target)  # monitoring reference
    client = MlflowClient(tracking_uri=tracking_uri_for(settings.mlflow.tracking_uri))
    for name, value in manifest.metrics.items():
        client.log_metric(run_id, f"train.{name}", float(value))
    client.log_param(run_id, "best_params", json.dumps(params, sort_keys=True)[:6000])
    return manifest


def _refused_inputs(contract: FeatureContract) -> list[str]:
    """Columns refused as model inputs: the contract's protected attributes and the usual suspects."""
    return list(dict.fromkeys([*contract.protected, *DEFAULT_PROTECTED]))


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
