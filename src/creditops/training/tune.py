"""Hyperparameter search: Optuna TPE (seeded) with pruning, maximising AUC-ROC on held-out data.

The objective is the validation AUC on large data; on small data (fewer than ``cv_below_rows`` rows of train +
valid) a single small validation split is noise, so each trial is scored by k-fold cross-validation on
train + valid instead (``xgboost.cv``, folds trained in lockstep). Either way a trial stops once its held-out
AUC has not improved for ``early_stopping_rounds`` rounds, but never before ``min_trees`` trees, and it is
scored at the best round at or after that floor: the model that will be refit with ``n_trees`` trees is the
model that was scored. (A run without the floor once registered a 5-tree model whose coarse PD grid gave
different applicants the same PD.)

Small data also gets a more strongly regularised search space (:data:`SMALL_DATA_SPACE`: shallower trees, a
lower learning rate, heavier L2 and child-weight penalties). Monotone constraints from the feature contract
apply in every trial, so the search explores the constrained model that will be refit.

A :class:`PruningCallback` reports the held-out AUC to the trial every ``report_every`` rounds so the pruner
(median or hyperband) can stop hopeless trials early. Every trial is logged as a nested MLflow run (tag
``mlflow.parentRunId``) under one parent run, through ``MlflowClient`` (explicit tracking URI, no global
state, no deprecated ``MLflowCallback``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import mlflow
import numpy as np
import optuna
import pandas as pd
import xgboost as xgb
from mlflow.entities import Metric, Param, RunStatus
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from mlflow.utils.time import get_current_time_millis

from creditops.training._common import DEFAULT_PROTECTED, booster_params, check_inputs, dmatrix
from creditops.training.split import Split

log = logging.getLogger(__name__)

#: No tuned model has fewer trees than this (early stopping and trial scoring both respect it).
MIN_TREES = 50
#: Below this many rows of train + valid, trials are scored by cross-validation on the small-data space.
CV_BELOW_ROWS = 10_000

Objective = Literal["auto", "valid", "cv"]


@dataclass(frozen=True)
class SearchSpace:
    """Ranges of the search (xgboost parameter names); ``(low, high)``, log scale where noted."""

    name: str
    max_depth: tuple[int, int]
    learning_rate: tuple[float, float]
    n_estimators: tuple[int, int]
    min_child_weight: tuple[float, float]
    subsample: tuple[float, float]
    colsample_bytree: tuple[float, float]
    reg_lambda: tuple[float, float]
    reg_alpha: tuple[float, float]
    gamma: tuple[float, float]


#: The seed's space: max_depth 3-10, learning_rate 0.01-0.3, n_estimators 100-1000, min_child_weight 1-10.
SEED_SPACE = SearchSpace(
    name="seed",
    max_depth=(3, 10),
    learning_rate=(0.01, 0.3),
    n_estimators=(100, 1000),
    min_child_weight=(1.0, 10.0),
    subsample=(0.5, 1.0),
    colsample_bytree=(0.5, 1.0),
    reg_lambda=(1e-3, 10.0),
    reg_alpha=(1e-3, 10.0),
    gamma=(0.0, 5.0),
)

#: A few thousand rows: a deep, fast-learning booster memorises them, so regularise harder.
SMALL_DATA_SPACE = SearchSpace(
    name="small_data",
    max_depth=(2, 5),
    learning_rate=(0.01, 0.1),
    n_estimators=(100, 1000),
    min_child_weight=(1.0, 20.0),
    subsample=(0.5, 0.9),
    colsample_bytree=(0.3, 0.9),
    reg_lambda=(1.0, 100.0),
    reg_alpha=(1e-3, 10.0),
    gamma=(0.0, 5.0),
)


def search_space(n_rows: int, cv_below_rows: int = CV_BELOW_ROWS) -> SearchSpace:
    """The space for ``n_rows`` rows of train + valid: :data:`SMALL_DATA_SPACE` below the limit."""
    return SMALL_DATA_SPACE if n_rows < cv_below_rows else SEED_SPACE


@dataclass(frozen=True)
class TuneResult:
    """Outcome of a search.

    Attributes:
        best_params: tuned hyperparameters (xgboost names): ``n_estimators`` (the trial's round cap) and
            ``n_trees`` (the number of trees the best trial was scored at, at least :data:`MIN_TREES`; the
            refit trains exactly this many).
        best_value: best held-out AUC-ROC (validation AUC, or mean CV AUC for the ``cv`` objective).
        n_trials: trials run.
        n_pruned: trials stopped by the pruner.
        best_iteration: round of the best trial's score (0-based, ``n_trees - 1``).
        parent_run_id: MLflow parent run holding one nested run per trial (None when tracking is off).
        objective: ``valid`` or ``cv``.
        space: name of the search space (``seed`` or ``small_data``).
    """

    best_params: dict[str, Any]
    best_value: float
    n_trials: int
    n_pruned: int
    best_iteration: int = 0
    parent_run_id: str | None = None
    trials: list[dict[str, Any]] = field(default_factory=list, repr=False)
    objective: str = "valid"
    space: str = "seed"


def suggest_params(trial: optuna.Trial, space: SearchSpace = SEED_SPACE) -> dict[str, Any]:
    """One point of ``space`` (xgboost parameter names)."""
    s = space
    return {
        "max_depth": trial.suggest_int("max_depth", *s.max_depth),
        "learning_rate": trial.suggest_float("learning_rate", *s.learning_rate, log=True),
        "n_estimators": trial.suggest_int("n_estimators", *s.n_estimators, step=50),
        "min_child_weight": trial.suggest_float("min_child_weight", *s.min_child_weight),
        "subsample": trial.suggest_float("subsample", *s.subsample),
        "colsample_bytree": trial.suggest_float("colsample_bytree", *s.colsample_bytree),
        "reg_lambda": trial.suggest_float("reg_lambda", *s.reg_lambda, log=True),
        "reg_alpha": trial.suggest_float("reg_alpha", *s.reg_alpha, log=True),
        "gamma": trial.suggest_float("gamma", *s.gamma),
    }


def _last(values: Sequence[Any]) -> float:
    """The latest value of an xgboost eval log entry (``xgboost.cv`` logs ``(mean, std)`` pairs)."""
    value = values[-1]
    return float(value[0] if isinstance(value, tuple) else value)


class FloorEarlyStopping(xgb.callback.TrainingCallback):
    """Early stopping that never ends below ``min_trees`` trees and picks its best round at or after it.

    Stops once the held-out metric has not improved for ``patience`` rounds past the floor; ``best_iteration``
    and ``best_score`` refer to the best round among rounds ``min_trees - 1`` and later.
    """

    def __init__(self, min_trees: int, patience: int, data_name: str = "valid", metric: str = "auc"):
        self.min_trees, self.patience = max(1, int(min_trees)), max(1, int(patience))
        self.data_name, self.metric = data_name, metric
        self.history: list[float] = []

    @property
    def best_iteration(self) -> int:
        """0-based round of the best score at or after the floor (the last round if it was not reached)."""
        start = self.min_trees - 1
        if len(self.history) <= start:
            return len(self.history) - 1
        return start + int(np.argmax(self.history[start:]))

    @property
    def best_score(self) -> float:
        """The held-out metric at :attr:`best_iteration`."""
        return float(self.history[self.best_iteration]) if self.history else float("nan")

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        """Record the round's score; True (stop) when ``patience`` rounds past the floor brought nothing."""
        self.history.append(_last(evals_log[self.data_name][self.metric]))
        # xgboost.cv trims its history to the booster's best_iteration whenever any callback stops it.
        model.set_attr(best_iteration=str(max(0, self.best_iteration)))
        if epoch + 1 < self.min_trees:
            return False
        return epoch - self.best_iteration >= self.patience


class PruningCallback(xgb.callback.TrainingCallback):
    """Report held-out AUC to an Optuna trial every ``every`` rounds; stop training when it should prune."""

    def __init__(self, trial: optuna.Trial, every: int = 10, data_name: str = "valid", metric: str = "auc"):
        self.trial, self.every, self.data_name, self.metric = trial, every, data_name, metric
        self.pruned = False
        self.last_value: float | None = None

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        """Return True (stop) once the pruner says so."""
        if (epoch + 1) % self.every:
            return False
        value = _last(evals_log[self.data_name][self.metric])
        self.last_value = value
        self.trial.report(value, step=epoch + 1)
        if self.trial.should_prune():
            self.pruned = True
            return True
        return False


def make_pruner(kind: Literal["median", "hyperband"], report_every: int) -> optuna.pruners.BasePruner:
    """Median (vs the median of earlier trials at the same round) or Hyperband (successive halving)."""
    if kind == "median":
        # Warm-up past the tree floor: a trial is not judged before it may stop.
        return optuna.pruners.MedianPruner(
            n_startup_trials=5, n_warmup_steps=max(2 * report_every, MIN_TREES)
        )
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=report_every, max_resource=1000, reduction_factor=3
        )
    raise ValueError(f"unknown pruner {kind!r}; expected 'median' or 'hyperband'")


def resolve_objective(objective: Objective, n_rows: int, cv_below_rows: int = CV_BELOW_ROWS) -> str:
    """``auto`` becomes ``cv`` below ``cv_below_rows`` rows of train + valid, else ``valid``."""
    if objective == "auto":
        return "cv" if n_rows < cv_below_rows else "valid"
    if objective not in ("valid", "cv"):
        raise ValueError(f"unknown objective {objective!r}; expected 'auto', 'valid' or 'cv'")
    return objective


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
    early_stopping_rounds: int = 30,
    report_every: int = 10,
    nthread: int | None = None,
    protected: Sequence[str] = DEFAULT_PROTECTED,
    objective: Objective = "auto",
    cv_folds: int = 5,
    cv_below_rows: int = CV_BELOW_ROWS,
    min_trees: int = MIN_TREES,
    space: SearchSpace | None = None,
) -> TuneResult:
    """Search hyperparameters on ``split.train`` (+ ``split.valid`` for the ``cv`` objective).

    Args:
        split: train/valid/test frames (test is not touched).
        features: ordered model inputs.
        target: 0/1 label column.
        n_trials: number of Optuna trials.
        seed: seeds the TPE sampler, the CV folds and xgboost.
        pruner: ``median`` or ``hyperband``.
        mlflow_parent_run_id: log trials under this existing run; ``None`` creates a parent run ``tune``.
        directions: monotone constraints (feature -> -1/0/1), so trials search the constrained model that
            will be refit.
        tracking_uri: MLflow tracking URI (``None`` = MLflow's current default).
        experiment: experiment for a newly created parent run.
        track: set False to skip MLflow entirely (benchmarks).
        early_stopping_rounds: rounds without held-out improvement (past ``min_trees``) before a trial stops.
        report_every: rounds between pruning reports.
        nthread: xgboost threads (default: min(2, cores)).
        protected: attributes refused as inputs.
        objective: ``valid`` (validation AUC), ``cv`` (mean k-fold AUC on train + valid) or ``auto``
            (``cv`` below ``cv_below_rows`` rows).
        cv_folds: folds of the ``cv`` objective.
        cv_below_rows: the small-data limit for ``auto`` and for the default search space.
        min_trees: the floor on the number of trees.
        space: the search space (default: :func:`search_space` of the data size).

    Returns:
        TuneResult with the best parameters (including ``n_estimators`` and ``n_trees``) and counts.
    """
    for part in (split.train, split.valid):
        check_inputs(part, features, target, protected)
    n_rows = len(split.train) + len(split.valid)
    mode = resolve_objective(objective, n_rows, cv_below_rows)
    space = space or search_space(n_rows, cv_below_rows)
    if mode == "cv":
        dall = dmatrix(pd.concat([split.train, split.valid]), features, target)
    else:
        dtrain = dmatrix(split.train, features, target)
        dvalid = dmatrix(split.valid, features, target)
    tracker = (
        _Tracker(tracking_uri, experiment, mlflow_parent_run_id, seed, n_trials, pruner) if track else None
    )
    if tracker:
        tracker.client.log_batch(
            tracker.parent_run_id,
            params=[
                Param("tune.objective", mode),
                Param("tune.space", space.name),
                Param("tune.min_trees", str(min_trees)),
            ],
        )
    records: list[dict[str, Any]] = []

    def run_trial(trial: optuna.Trial) -> float:
        params = suggest_params(trial, space)
        bparams = booster_params(params, features, directions, seed, nthread)
        data_name = "test" if mode == "cv" else "valid"
        stop = FloorEarlyStopping(min_trees, early_stopping_rounds, data_name=data_name)
        prune = PruningCallback(trial, every=report_every, data_name=data_name)
        child = tracker.start_trial(trial.number) if tracker else None
        try:
            if mode == "cv":
                xgb.cv(
                    bparams,
                    dall,
                    num_boost_round=params["n_estimators"],
                    nfold=cv_folds,
                    stratified=True,
                    seed=seed,
                    callbacks=[stop, prune],
                    as_pandas=False,
                    verbose_eval=False,
                )
            else:
                xgb.train(
                    bparams,
                    dtrain,
                    num_boost_round=params["n_estimators"],
                    evals=[(dvalid, "valid")],
                    callbacks=[stop, prune],
                    verbose_eval=False,
                )
        except Exception:
            if tracker and child:
                tracker.end_trial(child, RunStatus.FAILED)
            raise
        best_iteration = stop.best_iteration
        value = prune.last_value if prune.pruned else stop.best_score
        trial.set_user_attr("best_iteration", best_iteration)
        record = {"number": trial.number, **params, "valid_auc": value, "best_iteration": best_iteration}
        records.append({**record, "pruned": prune.pruned})
        if tracker and child:
            tracker.log_trial(child, params, value, best_iteration, prune.pruned)
        if prune.pruned:
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
        study.optimize(run_trial, n_trials=n_trials)
    finally:
        optuna.logging.set_verbosity(level)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    n_pruned = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,)))
    if not complete:
        raise RuntimeError("every trial was pruned; raise n_trials or use a less aggressive pruner")
    best = study.best_trial
    best_iteration = int(best.user_attrs.get("best_iteration", 0))
    result = TuneResult(
        best_params={**best.params, "n_trees": best_iteration + 1},
        best_value=float(best.value),
        n_trials=len(study.trials),
        n_pruned=n_pruned,
        best_iteration=best_iteration,
        parent_run_id=tracker.parent_run_id if tracker else None,
        trials=records,
        objective=mode,
        space=space.name,
    )
    if tracker:
        tracker.finish(result)
    log.info(
        "tuned %d trials (%d pruned, %s objective): best AUC %.4f at %d trees",
        result.n_trials,
        n_pruned,
        mode,
        result.best_value,
        best_iteration + 1,
    )
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
