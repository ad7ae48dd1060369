"""Hyperparameter search: Optuna TPE (seeded) with pruning, maximising validation AUC-ROC.

Each trial trains with ``xgboost.train`` for up to ``n_estimators`` rounds with early stopping on the
validation split; a :class:`PruningCallback` reports the validation AUC to the trial every ``report_every``
rounds so the pruner (median or hyperband) can stop hopeless trials early. Every trial is logged as a nested
MLflow run (tag ``mlflow.parentRunId``) under one parent run, through ``MlflowClient`` (explicit tracking
URI, no global state, no deprecated ``MLflowCallback``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import mlflow
import optuna
import xgboost as xgb
from mlflow.entities import Metric, Param, RunStatus
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from mlflow.utils.time import get_current_time_millis

from creditops.training._common import DEFAULT_PROTECTED, booster_params, check_inputs, dmatrix
from creditops.training.split import Split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneResult:
    """Outcome of a search.

    Attributes:
        best_params: tuned hyperparameters (xgboost names) including ``n_estimators`` (the round cap).
        best_value: best validation AUC-ROC.
        n_trials: trials run.
        n_pruned: trials stopped by the pruner.
        best_iteration: early-stopping round of the best trial (0-based).
        parent_run_id: MLflow parent run holding one nested run per trial (None when tracking is off).
    """

    best_params: dict[str, Any]
    best_value: float
    n_trials: int
    n_pruned: int
    best_iteration: int = 0
    parent_run_id: str | None = None
    trials: list[dict[str, Any]] = field(default_factory=list, repr=False)


def suggest_params(trial: optuna.Trial) -> dict[str, Any]:
    """The search space (xgboost parameter names)."""
    return {
        "max_depth": trial.suggest_int("max_depth", 3, 10),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "n_estimators": trial.suggest_int("n_estimators", 100, 1000, step=50),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 10.0),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
        "reg_alpha": trial.suggest_float("reg_alpha", 1e-3, 10.0, log=True),
        "gamma": trial.suggest_float("gamma", 0.0, 5.0),
    }


class PruningCallback(xgb.callback.TrainingCallback):
    """Report validation AUC to an Optuna trial every ``every`` rounds; stop training when it should prune."""

    def __init__(self, trial: optuna.Trial, every: int = 10, data_name: str = "valid", metric: str = "auc"):
        self.trial, self.every, self.data_name, self.metric = trial, every, data_name, metric
        self.pruned = False
        self.last_value: float | None = None

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        """Return True (stop) once the pruner says so."""
        if (epoch + 1) % self.every:
            return False
        value = float(evals_log[self.data_name][self.metric][-1])
        self.last_value = value
        self.trial.report(value, step=epoch + 1)
        if self.trial.should_prune():
            self.pruned = True
            return True
        return False


def make_pruner(kind: Literal["median", "hyperband"], report_every: int) -> optuna.pruners.BasePruner:
    """Median (vs the median of earlier trials at the same round) or Hyperband (successive halving)."""
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2 * report_every)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=report_every, max_resource=1000, reduction_factor=3
        )
    raise ValueError(f"unknown pruner {kind!r}; expected 'median' or 'hyperband'")


def tune(
    split: Split,
    features: Sequence[str],
    target: str,
    n_trials: int,
    seed: int = 7,
    pruner: Literal["median", "hyperband"] = "median",
    mlflow_parent_run_id: str | None = None,
    *,
    directions: Mapping[str, int] | None = None,
    tracking_uri: str | None = None,
    experiment: str = "creditops",
    track: bool = True,
    early_stopping_rounds: int = 50,
    report_every: int = 10,
    nthread: int | None = None,
    protected: Sequence[str] = DEFAULT_PROTECTED,
) -> TuneResult:
    """Search hyperparameters on ``split.train``, scoring AUC-ROC on ``split.valid``.

    Args:
        split: train/valid/test frames (test is not touched).
        features: ordered model inputs.
        target: 0/1 label column.
        n_trials: number of Optuna trials.
        seed: seeds the TPE sampler and xgboost.
        pruner: ``median`` or ``hyperband``.
        mlflow_parent_run_id: log trials under this existing run; ``None`` creates a parent run ``tune``.
        directions: monotone constraints (feature -> -1/0/1), so trials search the constrained model that
            will be refit.
        tracking_uri: MLflow tracking URI (``None`` = MLflow's current default).
        experiment: experiment for a newly created parent run.
        track: set False to skip MLflow entirely (benchmarks).
        early_stopping_rounds: rounds without validation improvement before a trial stops.
        report_every: rounds between pruning reports.
        nthread: xgboost threads (default: min(2, cores)).
        protected: attributes refused as inputs.

    Returns:
        TuneResult with the best parameters (including ``n_estimators``) and counts.
    """
    for part in (split.train, split.valid):
        check_inputs(part, features, target, protected)
    dtrain = dmatrix(split.train, features, target)
    dvalid = dmatrix(split.valid, features, target)
    tracker = (
        _Tracker(tracking_uri, experiment, mlflow_parent_run_id, seed, n_trials, pruner) if track else None
    )
    records: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(trial)
        callback = PruningCallback(trial, every=report_every)
        child = tracker.start_trial(trial.number) if tracker else None
        try:
            booster = xgb.train(
                booster_params(params, features, directions, seed, nthread),
                dtrain,
                num_boost_round=params["n_estimators"],
                evals=[(dvalid, "valid")],
                early_stopping_rounds=early_stopping_rounds,
                callbacks=[callback],
                verbose_eval=False,
            )
        except Exception:
            if tracker and child:
                tracker.end_trial(child, RunStatus.FAILED)
            raise
        best_iteration = int(booster.best_iteration)
        value = callback.last_value if callback.pruned else float(booster.best_score)
        trial.set_user_attr("best_iteration", best_iteration)
        record = {"number": trial.number, **params, "valid_auc": value, "best_iteration": best_iteration}
        records.append({**record, "pruned": callback.pruned})
        if tracker and child:
            tracker.log_trial(child, params, value, best_iteration, callback.pruned)
        if callback.pruned:
            raise optuna.TrialPruned(f"pruned at round {best_iteration + 1}")
        return value

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=make_pruner(pruner, report_every),
        )
        study.optimize(objective, n_trials=n_trials)
    finally:
        optuna.logging.set_verbosity(level)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    n_pruned = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,)))
    if not complete:
        raise RuntimeError("every trial was pruned; raise n_trials or use a less aggressive pruner")
    best = study.best_trial
    result = TuneResult(
        best_params=dict(best.params),
        best_value=float(best.value),
        n_trials=len(study.trials),
        n_pruned=n_pruned,
        best_iteration=int(best.user_attrs.get("best_iteration", 0)),
        parent_run_id=tracker.parent_run_id if tracker else None,
        trials=records,
    )
    if tracker:
        tracker.finish(result)
    log.info("tuned %d trials (%d pruned): best valid AUC %.4f", result.n_trials, n_pruned, result.best_value)
    return result


class _Tracker:
    """Parent run + one nested run per trial, through an explicit MlflowClient."""

    def __init__(
        self,
        tracking_uri: str | None,
        experiment: str,
        parent_run_id: str | None,
        seed: int,
        n_trials: int,
        pruner: str,
    ):
        self.client = MlflowClient(tracking_uri=tracking_uri or mlflow.get_tracking_uri())
        self.owns_parent = parent_run_id is None
        if parent_run_id is None:
            exp = self.client.get_experiment_by_name(experiment)
            exp_id = exp.experiment_id if exp else self.client.create_experiment(experiment)
            parent = self.client.create_run(exp_id, run_name="tune")
            parent_run_id = parent.info.run_id
        else:
            exp_id = self.client.get_run(parent_run_id).info.experiment_id
        self.experiment_id, self.parent_run_id = exp_id, parent_run_id
        self.client.log_batch(
            parent_run_id,
            params=[
                Param("tune.seed", str(seed)),
                Param("tune.n_trials", str(n_trials)),
                Param("tune.pruner", pruner),
                Param("tune.sampler", "TPESampler"),
            ],
        )

    def start_trial(self, number: int) -> str:
        run = self.client.create_run(
            self.experiment_id,
            tags={MLFLOW_PARENT_RUN_ID: self.parent_run_id, MLFLOW_RUN_NAME: f"trial-{number:03d}"},
            run_name=f"trial-{number:03d}",
        )
        return run.info.run_id

    def log_trial(
        self, run_id: str, params: dict[str, Any], auc: float | None, best_iteration: int, pruned: bool
    ):
        now = get_current_time_millis()
        metrics = [Metric("best_iteration", best_iteration, now, 0), Metric("pruned", float(pruned), now, 0)]
        if auc is not None:
            metrics.append(Metric("valid_auc", auc, now, 0))
        self.client.log_batch(run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()])
        self.client.set_tag(run_id, "pruned", str(pruned).lower())
        self.end_trial(run_id, RunStatus.FINISHED)

    def end_trial(self, run_id: str, status: int) -> None:
        self.client.set_terminated(run_id, status=RunStatus.to_string(status))

    def finish(self, result: TuneResult) -> None:
        now = get_current_time_millis()
        self.client.log_batch(
            self.parent_run_id,
            metrics=[
                Metric("best_valid_auc", result.best_value, now, 0),
                Metric("n_pruned", result.n_pruned, now, 0),
                Metric("best_iteration", result.best_iteration, now, 0),
            ],
            params=[Param(f"best.{k}", str(v)) for k, v in result.best_params.items()],
        )
        if self.owns_parent:
            self.client.set_terminated(self.parent_run_id, status="FINISHED")
