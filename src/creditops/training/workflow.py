"""The training steps as the pipeline runs them: tune, fit + bundle, register. Each is one call per component.

These functions tie the pure pieces (``tune``, ``fit_model``, ``save_bundle``, ``register``) to one MLflow
parent run per pipeline run, so lineage reads data version -> feature service -> run -> model version.
Features, directions, reasons, target and protected attributes come from the run's
:class:`~creditops.features.contract.FeatureContract` (default: the synthetic world's ``credit_scoring_v1``),
so a dataset-spec run trains on its own FeatureService through the same calls.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE, MLFLOW_USER
from mlflow.utils.time import get_current_time_millis
from pydantic import BaseModel

from creditops.artifact import Manifest, save_bundle
from creditops.config import Settings
from creditops.features.contract import FeatureContract, builtin_contract
from creditops.features.versioning import pin_manifest
from creditops.governance.gates import GateReport
from creditops.governance.registry import register, tracking_uri_for
from creditops.monitoring.reference import write_bundle_reference
from creditops.training._common import DEFAULT_PROTECTED
from creditops.training.baselines import evaluate_baselines
from creditops.training.fit import FittedModel, fit_model
from creditops.training.split import Split
from creditops.training.tune import TuneResult, tune

REFERENCE_ROWS = 5_000
#: ``mlflow.source.name`` of a pipeline run's parent MLflow run (the UI's "Source" column).
PIPELINE_SOURCE = "pipelines/training.py (creditops-training)"
TUNED = "tuned_xgboost"


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
        tags={
            "lineage.data_version": data_version,
            "lineage.feature_service": feature_service,
            MLFLOW_SOURCE_NAME: PIPELINE_SOURCE,
            MLFLOW_SOURCE_TYPE: "JOB",
            MLFLOW_USER: _user(),
        },
    )
    return run.info.run_id


def _user() -> str:
    import getpass
    import os

    return os.environ.get("CREDITOPS_ACTOR") or getpass.getuser()


def end_parent_run(settings: Settings, run_id: str, status: str = "FINISHED") -> None:
    """Terminate the pipeline's parent run (``FINISHED`` or ``FAILED``), so the UI shows its duration."""
    client = MlflowClient(tracking_uri=tracking_uri_for(settings.mlflow.tracking_uri))
    client.set_terminated(run_id, status=status, end_time=get_current_time_millis())


@contextlib.contextmanager
def failing_run(settings: Settings, run_id: str | None) -> Iterator[None]:
    """Mark the parent run ``FAILED`` when the step inside raises (the error propagates unchanged)."""
    try:
        yield
    except BaseException:
        if run_id:
            with contextlib.suppress(Exception):  # the step's own error matters more than this bookkeeping
                end_parent_run(settings, run_id, "FAILED")
        raise


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
    cfg = settings.training
    with failing_run(settings, run_id):
        result = tune(
            Split(train, valid, valid.iloc[:0]),
            contract.features,
            contract.target,
            n_trials=cfg.n_trials,
            seed=cfg.seed,
            pruner=cfg.pruner,
            mlflow_parent_run_id=run_id,
            directions=contract.directions,
            tracking_uri=tracking_uri_for(settings.mlflow.tracking_uri),
            protected=_refused_inputs(contract),
            objective=cfg.objective,
            cv_folds=cfg.cv_folds,
            cv_below_rows=cfg.small_data_rows,
            min_trees=cfg.min_trees,
            early_stopping_rounds=cfg.early_stopping_rounds,
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
    *,
    test: pd.DataFrame | None = None,
    evidence_path: str | Path | None = None,
) -> Manifest:
    """Refit with the tuned parameters, write the bundle (with its drift reference sample), log to the run.

    With ``test``, the two baselines (:mod:`creditops.training.baselines`) are fitted on the same train split
    and every model is scored on ``test``; the gates' evidence (per-fold CV AUCs, raw-score test AUC,
    baseline metrics, and the tuned model's own row of the comparison) is written to ``evidence_path`` as
    JSON in :meth:`GateEvidence.to_dict` form for the gate step.
    """
    contract = contract or builtin_contract()
    features = contract.features
    with failing_run(settings, run_id):
        fitted = fit_model(
            Split(train, valid, test),
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
            min_trees=settings.training.min_trees,
        )
        manifest = fitted.to_manifest(
            settings.mlflow.model_name,
            contract.service,
            reasons=contract.reasons,
            data_version=data_version,
            dtypes=contract.dtypes,
            valid_ranges=contract.valid_ranges,
        )
        if contract.kind == "builtin":  # pin the definitions' hashes (spec features have no registry entry)
            manifest = pin_manifest(manifest)
        reference = train[features].sample(
            min(REFERENCE_ROWS, len(train)), random_state=settings.training.seed
        )
        save_bundle(bundle_dir, fitted.booster, manifest, reference.reset_index(drop=True), contract=contract)
        write_bundle_reference(bundle_dir, train[features], valid, contract.target)  # monitoring reference
        client = MlflowClient(tracking_uri=tracking_uri_for(settings.mlflow.tracking_uri))
        now = get_current_time_millis()
        logged = [Metric(f"train.{k}", float(v), now, 0) for k, v in manifest.metrics.items()]
        if test is not None and len(test):
            evidence = gate_evidence(fitted, Split(train, valid, test), settings)
            for model, row in {TUNED: evidence["tuned"], **evidence["baselines"]}.items():
                logged += [Metric(f"compare.{model}.{k}", float(v), now, 0) for k, v in row.items() if v == v]
            if evidence_path is not None:
                Path(evidence_path).write_text(json.dumps(evidence, indent=2))
        client.log_batch(run_id, metrics=logged)
        client.log_param(run_id, "best_params", json.dumps(params, sort_keys=True)[:6000])
    return manifest


def gate_evidence(fitted: FittedModel, split: Split, settings: Settings) -> dict[str, Any]:
    """The gates' evidence for ``fitted`` on ``split`` (GateEvidence JSON form, plus the tuned model's row).

    Keys: ``cv_auc`` (per-fold AUCs of the final model's CV), ``raw_test_auc`` (uncalibrated score on test),
    ``baselines`` (name -> test metrics and CV mean / sd) and ``tuned`` (the same metrics for the tuned
    model's calibrated PD, for the side-by-side table of the summary and the model card).
    """
    from creditops.training.baselines import score_metrics

    target = fitted.target
    y_test = split.test[target].to_numpy()
    tuned = score_metrics(y_test, fitted.predict_pd(split.test))
    tuned |= {
        "cv_auc_mean": fitted.cv.mean,
        "cv_auc_sd": fitted.cv.std,
        "n_trees": float(fitted.best_iteration + 1),
    }
    baselines = evaluate_baselines(
        split, fitted.features, target, cv_folds=settings.training.cv_folds, seed=settings.training.seed
    )
    return {
        "cv_auc": [float(a) for a in fitted.cv.aucs],
        "raw_test_auc": float(fitted.metrics.get("test_auc", float("nan"))),
        "baselines": baselines,
        "tuned": tuned,
    }


def read_evidence(path: str | Path | None) -> dict[str, Any]:
    """The evidence JSON written by :func:`train_bundle` (empty when there is none)."""
    if path is None or not Path(path).is_file() or not Path(path).read_text().strip():
        return {}
    return json.loads(Path(path).read_text())


def comparison(evidence: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Model name -> metrics: the tuned model first, then the baselines (empty without evidence)."""
    if not evidence.get("tuned"):
        return {}
    return {TUNED: evidence["tuned"], **evidence.get("baselines", {})}


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
    comparison: dict[str, dict[str, float | None]] = {}


def register_if_passed(
    settings: Settings,
    run_id: str,
    bundle_dir: str | Path,
    gate_report_path: str | Path,
    card_paths: dict[str, str],
    entities_path: str | None = None,
    evidence_path: str | Path | None = None,
) -> RunSummary:
    """Register the bundle with alias ``challenger`` when every gate passed; otherwise register nothing.

    Either way the pipeline's parent run ends ``FINISHED`` (``FAILED`` if registering raised); a refused model
    is a finished run whose tag ``gates_passed`` is ``false``.
    """
    from creditops.artifact import read_manifest

    with failing_run(settings, run_id):
        manifest = read_manifest(bundle_dir)
        report = GateReport.from_dict(json.loads(Path(gate_report_path).read_text()))
        client = MlflowClient(tracking_uri=tracking_uri_for(settings.mlflow.tracking_uri))
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
        else:
            client.set_tag(run_id, "gates_passed", "false")
            client.set_tag(run_id, "gates_failed", ", ".join(g.name for g in report.failed))
        end_parent_run(settings, run_id, "FINISHED")
    gate_metrics = {k: v for k, v in report.metrics.items() if v == v}
    compared = comparison(read_evidence(evidence_path))
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
        comparison={m: {k: (v if v == v else None) for k, v in row.items()} for m, row in compared.items()},
    )


def comparison_text(compared: dict[str, dict[str, float]]) -> str:
    """The side-by-side table of the tuned model and the baselines, as plain text lines."""
    if not compared:
        return ""
    cols = ("auc", "gini", "ks", "brier")
    lines = ["", "model vs baselines (test; CV AUC mean +- sd on train + valid):"]
    lines.append(f"  {'model':<20}" + "".join(f"{c:>8}" for c in cols) + "   cv auc")
    for name, row in compared.items():
        cells = "".join(f"{row.get(c, float('nan')):>8.4f}" for c in cols)
        cv = f"{row.get('cv_auc_mean', float('nan')):.4f} +- {row.get('cv_auc_sd', float('nan')):.4f}"
        lines.append(f"  {name:<20}{cells}   {cv}")
    return "\n".join(lines)
