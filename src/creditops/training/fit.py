"""Refit with the tuned parameters: monotone XGBoost, k-fold CV, isotonic calibration, decision thresholds.

Steps of :func:`fit_model`:

1. train on ``split.train`` with the declared monotone constraints: exactly ``params["n_trees"]`` trees
   when the tuner chose the number, else early stopping on ``split.valid``, keeping the trees up to the best
   round but never fewer than ``min_trees``;
2. stratified k-fold CV on train + valid with that number of rounds (mean and std of AUC-ROC);
3. isotonic calibration fitted on the validation predictions (x/y arrays, applied with ``np.interp``), made
   strictly increasing so the calibrated PD ranks applicants as the raw score does;
4. decision thresholds on the calibrated validation PDs (rule below); 5. test metrics.

Operating point (:func:`choose_thresholds`): the policy of :class:`~creditops.config.ScoringConfig`, a PD
cut-off pair, a target false-positive rate or a target approval rate, with a review band between the approve
and the decline threshold (approve < ``approve_below_pd`` <= review < ``decline_at_or_above_pd`` <= decline).
The data-driven policies are fitted on the calibrated validation PDs, never on the test set, which the gates
use to judge the model at that operating point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from creditops.artifact import Calibration, Manifest, ScoreScaling, Thresholds, library_versions
from creditops.config import ScoringConfig
from creditops.errors import ConfigError, DataError
from creditops.training._common import (
    DEFAULT_PROTECTED,
    booster_params,
    check_inputs,
    dmatrix,
    labels,
    predict_raw,
)
from creditops.training.split import Split

DEFAULT_ROUNDS = 500
EARLY_STOPPING_ROUNDS = 50
#: No fitted model has fewer trees (the tuner's floor; a 5-tree model gives coarse, shared PDs).
MIN_TREES = 50
#: Share of the raw score blended into the isotonic calibration so that it is strictly increasing.
CALIBRATION_TIE_BREAK = 1e-3


@dataclass(frozen=True)
class CVResult:
    """AUC-ROC per fold and its mean / standard deviation."""

    aucs: list[float]
    mean: float
    std: float


@dataclass(frozen=True)
class FittedModel:
    """A refit model and everything needed to write its bundle (see :meth:`to_manifest`)."""

    booster: xgb.Booster
    features: list[str]
    directions: dict[str, int]
    target: str
    params: dict[str, Any]
    best_iteration: int
    calibration: Calibration
    thresholds: Thresholds
    score_scaling: ScoreScaling
    cv: CVResult
    metrics: dict[str, float]
    protected: list[str] = field(default_factory=list)

    def predict_pd(self, df: pd.DataFrame) -> np.ndarray:
        """Calibrated PD for the rows of ``df``."""
        return np.interp(predict_raw(self.booster, df, self.features), self.calibration.x, self.calibration.y)

    def to_manifest(
        self,
        model_name: str,
        feature_service: str,
        reasons: Mapping[str, str] | None = None,
        data_version: str | None = None,
        dtypes: Mapping[str, str] | None = None,
        valid_ranges: Mapping[str, tuple[float | None, float | None]] | None = None,
    ) -> Manifest:
        """Manifest for :func:`creditops.artifact.save_bundle`.

        Args:
            model_name: registered model name.
            feature_service: Feast feature service the features come from (e.g. ``credit_scoring_v1``).
            reasons: adverse-action text per feature (feature registry); missing ones get a generic text.
            data_version: snapshot version of the training data.
            dtypes: feature dtypes (default float).
            valid_ranges: inclusive bounds a scored value must respect (servers reject values outside).
        """
        reasons = dict(reasons or {})
        return Manifest(
            model_name=model_name,
            feature_service=feature_service,
            features=list(self.features),
            dtypes={f: (dtypes or {}).get(f, "float") for f in self.features},
            directions={f: int(self.directions.get(f, 0)) for f in self.features},
            reasons={
                f: reasons.get(f, f"Value of {f.replace('_', ' ')} raised the estimated risk")
                for f in self.features
            },
            calibration=self.calibration,
            score_scaling=self.score_scaling,
            thresholds=self.thresholds,
            metrics=dict(self.metrics),
            params={**self.params, "best_iteration": self.best_iteration},
            data_version=data_version,
            library_versions=library_versions(),
            target=self.target,
            protected=list(self.protected),
            valid_ranges={f: tuple(r) for f, r in (valid_ranges or {}).items() if f in self.features},
        )


class Trainer(Protocol):
    """Trains one booster: locally (:class:`LocalTrainer`) or on Dask (``distributed.DaskTrainer``)."""

    def __enter__(self) -> Trainer: ...  # noqa: D105

    def __exit__(
        self, a: type[BaseException] | None, b: BaseException | None, c: TracebackType | None
    ) -> None: ...

    def train(
        self,
        params: dict[str, Any],
        train: pd.DataFrame,
        valid: pd.DataFrame | None,
        features: Sequence[str],
        target: str,
        num_boost_round: int,
        early_stopping_rounds: int | None = None,
    ) -> xgb.Booster:
        """Train and return a booster."""
        ...


class LocalTrainer:
    """Single-process ``xgboost.train``."""

    def __enter__(self) -> LocalTrainer:
        return self

    def __exit__(
        self, a: type[BaseException] | None, b: BaseException | None, c: TracebackType | None
    ) -> None:
        return None

    def train(
        self,
        params: dict[str, Any],
        train: pd.DataFrame,
        valid: pd.DataFrame | None,
        features: Sequence[str],
        target: str,
        num_boost_round: int,
        early_stopping_rounds: int | None = None,
    ) -> xgb.Booster:
        """Train on ``train``; with ``valid`` and ``early_stopping_rounds``, stop early on validation AUC."""
        dtrain = dmatrix(train, features, target)
        evals = [(dmatrix(valid, features, target), "valid")] if valid is not None else []
        return xgb.train(
            params,
            dtrain,
            num_boost_round=num_boost_round,
            evals=evals,
            early_stopping_rounds=early_stopping_rounds if evals else None,
            verbose_eval=False,
        )


def make_trainer(
    distributed: Literal["none", "dask"] = "none", dask_workers: int = 2, scheduler_address: str | None = None
) -> Trainer:
    """The trainer selected by ``TrainingConfig.distributed``."""
    if distributed == "none":
        return LocalTrainer()
    if distributed == "dask":
        from creditops.training.distributed import DaskTrainer

        return DaskTrainer(n_workers=dask_workers, scheduler_address=scheduler_address)
    raise ConfigError(f"training.distributed must be 'none' or 'dask', got {distributed!r}")


def fit_isotonic(raw: np.ndarray, y: np.ndarray, tie_break: float = CALIBRATION_TIE_BREAK) -> Calibration:
    """Isotonic regression raw probability -> observed default rate, as x/y knots, made strictly increasing.

    Plain isotonic regression is a step function: every raw score inside one block gets the same PD, so the
    calibrated PD ties applicants the model ranks apart (and loses AUC). The knots here span [0, 1] and
    blend ``tie_break`` of the identity into the isotonic fit,
    ``pd = (1 - tie_break) * iso(raw) + tie_break * raw``, which ``np.interp`` reproduces exactly between
    knots: strictly increasing in the raw score, so the ranking (and the AUC) of the raw score survives
    calibration, and the PD moves by at most ``tie_break``.
    """
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True)
    iso.fit(np.asarray(raw, dtype=np.float64), np.asarray(y, dtype=np.float64))
    knots = np.unique(np.concatenate([[0.0], np.asarray(iso.X_thresholds_, dtype=np.float64), [1.0]]))
    knots = knots[(knots >= 0.0) & (knots <= 1.0)]
    values = (1.0 - tie_break) * iso.predict(knots) + tie_break * knots
    values = np.clip(np.maximum.accumulate(values), 0.0, 1.0)
    return Calibration(x=[float(v) for v in knots], y=[float(v) for v in values])


def apply_calibration(raw: np.ndarray, calibration: Calibration) -> np.ndarray:
    """Calibrated PD (piecewise-linear interpolation between isotonic knots, clipped at the ends)."""
    return np.interp(raw, calibration.x, calibration.y)


def false_positive_rate(pd_: np.ndarray, y: np.ndarray, threshold: float) -> float:
    """Share of non-defaulters (y == 0) with PD >= threshold, i.e. declined good applicants."""
    neg = np.asarray(pd_)[np.asarray(y) == 0]
    return float(np.mean(neg >= threshold)) if len(neg) else 0.0


def lowest_threshold_at_fpr(pd_: np.ndarray, y: np.ndarray, target_fpr: float) -> float:
    """The lowest PD threshold t (among observed PDs) with FPR(t) <= target_fpr.

    When even the highest observed PD exceeds the budget (ties), the threshold is just above it.
    """
    pd_ = np.asarray(pd_, dtype=np.float64)
    neg = np.sort(pd_[np.asarray(y) == 0])
    if len(neg) == 0:
        raise DataError("cannot choose a threshold: the validation split has no non-defaulters")
    candidates = np.unique(pd_)
    fpr = (len(neg) - np.searchsorted(neg, candidates, side="left")) / len(neg)
    ok = np.flatnonzero(fpr <= target_fpr)
    if len(ok):
        return float(candidates[ok[0]])
    return float(min(1.0, np.nextafter(candidates[-1], np.inf)))


def _cut_candidates(pd_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Possible thresholds (every observed PD, and just above the highest) and the share of PDs below each."""
    ordered = np.sort(np.asarray(pd_, dtype=np.float64))
    top = min(1.0, float(np.nextafter(ordered[-1], np.inf)))
    candidates = np.unique(np.append(ordered, top))
    return candidates, np.searchsorted(ordered, candidates, side="left") / len(ordered)


def threshold_at_share_below(
    pd_: np.ndarray, share: float, *, low: float = 0.0, high: float = 1.0, avoid: float | None = None
) -> float:
    """The threshold t in [low, high] among observed PDs whose share of PDs below t is closest to ``share``.

    Ties in PD (an isotonic calibration is a step function) make some shares unreachable: the closest one
    is taken. ``avoid`` is skipped when another candidate exists, so a review band asked for is never empty
    just because two thresholds landed on the same PD step.

    Raises:
        DataError: no PDs.
    """
    if len(pd_) == 0:
        raise DataError("cannot choose a threshold: no validation predictions")
    candidates, below = _cut_candidates(pd_)
    keep = (candidates >= low) & (candidates <= high)
    if avoid is not None and np.count_nonzero(keep & (candidates != avoid)):
        keep &= candidates != avoid
    if not keep.any():
        return float(low)
    idx = np.flatnonzero(keep)
    return float(candidates[idx[np.argmin(np.abs(below[idx] - share))]])


def _share_below(pd_: np.ndarray, t: float) -> float:
    return float(np.mean(np.asarray(pd_) < t))


def choose_thresholds(pd_valid: np.ndarray, y_valid: np.ndarray, scoring: ScoringConfig) -> Thresholds:
    """Decision thresholds from the policy of :class:`~creditops.config.ScoringConfig`, on validation PDs.

    ``pd_cutoff`` takes the configured PDs. ``target_fpr`` declines at the lowest PD with validation FPR at
    most ``target_fpr`` and ``approval_rate`` approves the ``target_approval_rate`` lowest-PD share; then the
    other threshold is placed so that the review band holds ``review_share`` of the validation applicants.
    The rule text records the policy and what it achieved on validation.
    """
    pd_valid = np.asarray(pd_valid, dtype=np.float64)
    y_valid = np.asarray(y_valid)
    policy = scoring.policy
    review = scoring.review_share
    if policy == "pd_cutoff":
        approve, decline = float(scoring.approve_below_pd), float(scoring.decline_at_or_above_pd)  # type: ignore[arg-type]
        head = f"policy pd_cutoff: approve below PD {approve:.4g}, decline at or above {decline:.4g}"
    elif policy == "approval_rate":
        rate = float(scoring.target_approval_rate)  # type: ignore[arg-type]
        approve = threshold_at_share_below(pd_valid, rate)
        decline = approve
        if review > 0:
            decline = threshold_at_share_below(
                pd_valid, _share_below(pd_valid, approve) + review, low=approve, avoid=approve
            )
        head = f"policy approval_rate: approve the {rate:.0%} of validation applicants with the lowest PD"
    elif policy == "target_fpr":
        decline = lowest_threshold_at_fpr(pd_valid, y_valid, scoring.target_fpr)
        approve = decline
        if review > 0:
            approve = threshold_at_share_below(
                pd_valid, _share_below(pd_valid, decline) - review, high=decline, avoid=decline
            )
        head = f"policy target_fpr: decline at the lowest PD with validation FPR <= {scoring.target_fpr:.4g}"
    else:  # pragma: no cover - ScoringConfig resolves the policy
        raise ConfigError(f"scoring.policy must be pd_cutoff, target_fpr or approval_rate, got {policy!r}")
    if approve > decline:
        raise ConfigError(f"scoring.approve_below_pd ({approve}) exceeds decline_at_or_above_pd ({decline})")
    achieved = (
        f"on validation: approve {_share_below(pd_valid, approve):.1%}, "
        f"review {_share_below(pd_valid, decline) - _share_below(pd_valid, approve):.1%}, "
        f"decline {1 - _share_below(pd_valid, decline):.1%}, "
        f"FPR {false_positive_rate(pd_valid, y_valid, decline):.3g}"
    )
    rule = f"{head}; review band [{approve:.4g}, {decline:.4g}) asked to hold {review:.0%}; {achieved}"
    if policy == "pd_cutoff":
        rule = f"{head}; {achieved}"
    return Thresholds(approve_below_pd=float(approve), decline_at_or_above_pd=float(decline), rule=rule)


def cross_validate(
    df: pd.DataFrame,
    features: Sequence[str],
    target: str,
    params: dict[str, Any],
    num_boost_round: int,
    folds: int = 5,
    seed: int = 7,
    trainer: Trainer | None = None,
) -> CVResult:
    """Stratified k-fold AUC-ROC with fixed booster parameters and rounds."""
    trainer = trainer or LocalTrainer()
    y = labels(df, target)
    aucs = []
    for train_idx, test_idx in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(df, y):
        booster = trainer.train(params, df.iloc[train_idx], None, features, target, num_boost_round)
        held = df.iloc[test_idx]
        aucs.append(float(roc_auc_score(labels(held, target), predict_raw(booster, held, features))))
    return CVResult(aucs=aucs, mean=float(np.mean(aucs)), std=float(np.std(aucs)))


def fit_model(
    split: Split,
    features: Sequence[str],
    directions: Mapping[str, int],
    target: str,
    params: Mapping[str, Any],
    scoring: ScoringConfig | None = None,
    cv_folds: int = 5,
    seed: int = 7,
    *,
    distributed: Literal["none", "dask"] = "none",
    dask_workers: int = 2,
    scheduler_address: str | None = None,
    protected: Sequence[str] = DEFAULT_PROTECTED,
    early_stopping_rounds: int = EARLY_STOPPING_ROUNDS,
    nthread: int | None = None,
    min_trees: int = MIN_TREES,
) -> FittedModel:
    """Refit the tuned model and derive calibration, thresholds and metrics.

    Args:
        split: train / valid / test frames (an empty or None test skips the test metrics).
        features: ordered model inputs (never protected attributes).
        directions: feature -> +1 (higher value, higher PD) / -1 / 0; becomes ``monotone_constraints``.
        target: 0/1 default label.
        params: tuned hyperparameters (``TuneResult.best_params``): ``n_trees`` fixes the number of trees;
            without it ``n_estimators`` caps the rounds of early stopping.
        scoring: score scaling, fixed thresholds or the target FPR (default ``ScoringConfig()``).
        cv_folds: folds of the stratified cross-validation on train + valid.
        seed: xgboost and fold seed.
        distributed: ``none`` (single process) or ``dask`` (``TrainingConfig.distributed``).
        dask_workers: local Dask workers (``TrainingConfig.dask_workers``).
        scheduler_address: an existing Dask scheduler instead of a local cluster.
        protected: attributes refused as inputs.
        early_stopping_rounds: rounds without validation improvement before stopping (without ``n_trees``).
        nthread: xgboost threads for the single-process trainer.
        min_trees: floor on the number of trees kept after early stopping.

    Raises:
        ProtectedAttributeError: a protected attribute or the target is among ``features``.
        DataError: missing / non-numeric columns or a non-binary target.
    """
    scoring = scoring or ScoringConfig()
    features = list(features)
    has_test = split.test is not None and len(split.test) > 0
    for part in (split.train, split.valid, *([split.test] if has_test else [])):
        check_inputs(part, features, target, protected)
    bparams = booster_params(params, features, directions, seed, nthread)
    n_trees = params.get("n_trees")
    with make_trainer(distributed, dask_workers, scheduler_address) as trainer:
        if n_trees:
            full = trainer.train(bparams, split.train, None, features, target, int(n_trees))
            best_iteration = full.num_boosted_rounds() - 1
        else:
            rounds = int(params.get("n_estimators", DEFAULT_ROUNDS))
            full = trainer.train(
                bparams, split.train, split.valid, features, target, rounds, early_stopping_rounds
            )
            stopped_at = int(getattr(full, "best_iteration", rounds - 1))
            best_iteration = min(max(stopped_at, min_trees - 1), full.num_boosted_rounds() - 1)
        booster = full[: best_iteration + 1]
        booster.feature_names = features
        cv = cross_validate(
            pd.concat([split.train, split.valid]),
            features,
            target,
            bparams,
            best_iteration + 1,
            cv_folds,
            seed,
            trainer,
        )
    booster.set_param({"nthread": bparams["nthread"]})
    y_valid = labels(split.valid, target)
    raw_valid = predict_raw(booster, split.valid, features)
    calibration = fit_isotonic(raw_valid, y_valid)
    pd_valid = apply_calibration(raw_valid, calibration)
    thresholds = choose_thresholds(pd_valid, y_valid, scoring)
    metrics = {
        "valid_auc": _auc(y_valid, raw_valid),
        "valid_fpr_at_decline": false_positive_rate(pd_valid, y_valid, thresholds.decline_at_or_above_pd),
        "cv_auc_mean": cv.mean,
        "cv_auc_std": cv.std,
        "best_iteration": float(best_iteration),
        "n_trees": float(best_iteration + 1),
        "n_train": float(len(split.train)),
        "n_valid": float(len(split.valid)),
    }
    if has_test:  # the pipeline keeps test for the gates step; metrics here are informative only
        y_test = labels(split.test, target)
        raw_test = predict_raw(booster, split.test, features)
        pd_test = apply_calibration(raw_test, calibration)
        metrics |= {
            "test_auc": _auc(y_test, raw_test),
            "test_auc_calibrated": _auc(y_test, pd_test),
            "test_brier": float(brier_score_loss(y_test, pd_test)),
            "test_ks": ks_statistic(y_test, pd_test),
            "test_fpr_at_decline": false_positive_rate(pd_test, y_test, thresholds.decline_at_or_above_pd),
            "test_decline_rate": float(np.mean(pd_test >= thresholds.decline_at_or_above_pd)),
            "test_approve_rate": float(np.mean(pd_test < thresholds.approve_below_pd)),
            "n_test": float(len(split.test)),
        }
    scaling = ScoreScaling(base_score=scoring.base_score, base_odds=scoring.base_odds, pdo=scoring.pdo)
    return FittedModel(
        booster=booster,
        features=features,
        directions={f: int(directions.get(f, 0)) for f in features},
        target=target,
        params=dict(params),
        best_iteration=best_iteration,
        calibration=calibration,
        thresholds=thresholds,
        score_scaling=scaling,
        cv=cv,
        metrics=metrics,
        # Recorded: the protected attributes present in the training frame (fairness gates evaluate these).
        protected=[p for p in protected if p in split.train.columns],
    )


def ks_statistic(y: np.ndarray, score: np.ndarray) -> float:
    """Kolmogorov-Smirnov separation: max distance between the score CDFs of defaulters and non-defaulters."""
    y, score = np.asarray(y), np.asarray(score, dtype=np.float64)
    bad, good = np.sort(score[y == 1]), np.sort(score[y == 0])
    if len(bad) == 0 or len(good) == 0:
        return float("nan")
    grid = np.unique(score)
    cdf_bad = np.searchsorted(bad, grid, side="right") / len(bad)
    cdf_good = np.searchsorted(good, grid, side="right") / len(good)
    return float(np.max(np.abs(cdf_bad - cdf_good)))


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(y, score)) if len(np.unique(y)) == 2 else float("nan")
