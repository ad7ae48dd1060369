"""A tiny real model bundle for the governance tests (gates, model card, registry).

Trains a small monotone XGBoost booster on a synthetic frame and writes it with ``creditops.artifact``.
Importable from any test module (``tests/`` is on sys.path through its conftest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from creditops.artifact import Bundle, Calibration, Manifest, ScoreScaling, save_bundle

FEATURES = ["utilisation", "income_k", "noise", "num_late"]
DIRECTIONS = {"utilisation": 1, "income_k": -1, "noise": 0, "num_late": 1}
REASONS = {
    "utilisation": "Credit utilisation is high",
    "income_k": "Income is low",
    "noise": "Other factor",
    "num_late": "Recent late payments",
}
TARGET = "defaulted"
PROTECTED = ["sex", "age_band"]


def make_frame(n: int, seed: int) -> pd.DataFrame:
    """Applicants whose default risk depends on the features only (protected attributes are independent)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "utilisation": rng.uniform(0, 1, n),
            "income_k": rng.lognormal(3.8, 0.4, n),
            "noise": rng.normal(0, 1, n),
            "num_late": rng.poisson(0.5, n).astype(int),
            "sex": rng.choice(["female", "male"], n),
            "age_band": rng.choice(["18-25", "26-35", "36-50"], n),
        }
    )
    logit = -2.5 + 4.0 * df["utilisation"] - 0.04 * (df["income_k"] - 45) + 1.0 * df["num_late"]
    df[TARGET] = (rng.uniform(0, 1, n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df


def make_bundle(
    out_dir: Path,
    *,
    n: int = 3000,
    seed: int = 0,
    random_model: bool = False,
) -> tuple[Path, pd.DataFrame]:
    """Train and save a bundle; returns (bundle dir, held-out test frame).

    The thresholds follow the default policy (:class:`~creditops.config.ScoringConfig`: target FPR with a
    review band), chosen on a fresh validation frame of the same world.
    ``random_model=True`` trains on shuffled labels without monotone constraints: a model that must fail.
    """
    from creditops.config import ScoringConfig
    from creditops.training.fit import choose_thresholds

    df = make_frame(n, seed)
    train, test = df.iloc[: n * 2 // 3], df.iloc[n * 2 // 3 :].reset_index(drop=True)
    y = train[TARGET].to_numpy()
    if random_model:
        y = np.random.default_rng(seed + 1).permutation(y)
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.2, "nthread": 1, "seed": seed}
    if not random_model:
        params["monotone_constraints"] = "(" + ",".join(str(DIRECTIONS[f]) for f in FEATURES) + ")"
    else:
        params.update({"max_depth": 6, "eta": 0.5})
    dtrain = xgb.DMatrix(train[FEATURES].to_numpy(dtype=np.float32), label=y, feature_names=FEATURES)
    booster = xgb.train(params, dtrain, num_boost_round=60)
    valid = make_frame(n, seed + 1000)  # fresh applicants of the same world
    raw_valid = booster.inplace_predict(valid[FEATURES].to_numpy(dtype=np.float32))
    thresholds = choose_thresholds(raw_valid, valid[TARGET].to_numpy(), ScoringConfig())
    manifest = Manifest(
        model_name="credit-pd-test",
        feature_service="credit_scoring_v1",
        features=FEATURES,
        dtypes={f: ("int" if f == "num_late" else "float") for f in FEATURES},
        directions=DIRECTIONS,
        reasons=REASONS,
        calibration=Calibration.identity(),
        score_scaling=ScoreScaling(),
        thresholds=thresholds,
        metrics={"train_auc": 0.0},
        data_version="testdata0001",
        target=TARGET,
        protected=PROTECTED,
    )
    bundle_dir = save_bundle(out_dir, booster, manifest, train[FEATURES].sample(200, random_state=seed))
    return bundle_dir, test


class ProxyBiasedBundle:
    """A bundle whose PD is raised by ``bias`` for every applicant with ``noise > 0``.

    With :func:`sex_from_proxy` making ``noise > 0`` mean ``female``, this is a model that learned a proxy of
    sex and declines women more often: decisions deliberately biased against one group.
    """

    def __init__(self, bundle: Bundle, bias: float) -> None:
        self.bundle = bundle
        self.bias = bias
        self.manifest = bundle.manifest

    def predict_pd(self, X: pd.DataFrame) -> np.ndarray:
        """The wrapped PD plus ``bias`` where ``noise > 0`` (clipped to [0, 1])."""
        raised = self.bundle.predict_pd(X) + self.bias * (X["noise"].to_numpy() > 0)
        return np.clip(raised, 0.0, 1.0)

    def decide(self, pd_: np.ndarray) -> Any:
        """The wrapped bundle's decision rule."""
        return self.bundle.decide(pd_)


def sex_from_proxy(test: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``test`` where ``sex`` is ``female`` exactly when ``noise > 0`` (see ProxyBiasedBundle)."""
    out = test.copy()
    out["sex"] = np.where(out["noise"] > 0, "female", "male")
    return out


# --- a small credit world and a bundle builder for the gate tests (models built to pass or to fail a gate)


def make_world(n: int, seed: int, *, u_shaped: bool = False, bias_against_women: float = 0.0) -> pd.DataFrame:
    """Applicants with a ~15% default rate and step-like effects (so trees beat a logistic regression).

    Args:
        n: rows.
        seed: random seed.
        u_shaped: risk is high at both ends of ``utilisation`` (a non-monotone relation against the declared
            +1 direction).
        bias_against_women: share of the women who repaid but are recorded as defaulted (a historically biased
            label); ``noise > 0`` means ``female``, so a model can learn sex through that proxy.
    """
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "utilisation": rng.uniform(0, 1, n),
            "income_k": rng.lognormal(3.8, 0.4, n),
            "noise": rng.normal(0, 1, n),
            "num_late": rng.poisson(0.5, n).astype(int),
            "age_band": rng.choice(["18-25", "26-35", "36-50"], n),
        }
    )
    df["sex"] = np.where(df["noise"] > 0, "female", "male")
    u = df["utilisation"]
    risk_u = 4.0 * (u - 0.5) ** 2 * 4 - 1.0 if u_shaped else 2.2 * (u > 0.75) + 1.2 * u
    logit = -3.3 + risk_u - 0.03 * (df["income_k"] - 45) + 1.3 * np.minimum(df["num_late"], 2)
    df[TARGET] = (rng.uniform(0, 1, n) < 1 / (1 + np.exp(-logit))).astype(int)
    if bias_against_women:
        flip = (df["sex"] == "female") & (df[TARGET] == 0) & (rng.uniform(0, 1, n) < bias_against_women)
        df.loc[flip, TARGET] = 1
    return df


def world_split(
    n: int = 4000, seed: int = 0, **world: Any
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, valid, test) = halves and quarters of :func:`make_world`; the test frame keeps true labels."""
    df = make_world(n, seed, **world)
    clean = make_world(n, seed, u_shaped=world.get("u_shaped", False))  # same rows, unbiased labels
    train, valid = df.iloc[: n // 2], df.iloc[n // 2 : 3 * n // 4]
    return train, valid.reset_index(drop=True), clean.iloc[3 * n // 4 :].reset_index(drop=True)


def ranking_calibration(raw: np.ndarray, y: np.ndarray) -> Calibration:
    """Isotonic calibration joined through the centres of its flat blocks: strictly increasing, so it keeps
    the raw score's ranking (a plain isotonic step function ties every row of a block)."""
    from creditops.training.fit import fit_isotonic

    iso = fit_isotonic(raw, y)
    x, v = np.asarray(iso.x), np.asarray(iso.y)
    centres, values = [], []
    for value in np.unique(v):
        block = x[v == value]
        centres.append(float(block.mean()))
        values.append(float(value))
    xs = [0.0, *centres, 1.0]
    ys = [min(values[0], 1e-4) / 2, *values, max(values[-1], 1.0 - 1e-4)]
    keep = np.concatenate([[True], np.diff(xs) > 0])
    return Calibration(x=list(np.asarray(xs)[keep]), y=list(np.asarray(ys)[keep]))


GOOD_PARAMS = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.1, "nthread": 1, "seed": 0}


def build_bundle(
    out_dir: Path,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    *,
    params: dict[str, Any] | None = None,
    rounds: int = 150,
    monotone: bool = True,
    directions: dict[str, int] | None = None,
    shuffle_labels: bool = False,
    calibration: Calibration | None = None,
    scoring: Any = None,
) -> Bundle:
    """Train, calibrate on ``valid`` (:func:`ranking_calibration` unless given), set thresholds, save, load.

    Thresholds come from :func:`creditops.training.fit.choose_thresholds` on the validation PDs, as training
    sets them, under ``scoring`` (a :class:`~creditops.config.ScoringConfig`, default policy target FPR).
    """
    from creditops.artifact import load_bundle
    from creditops.config import ScoringConfig
    from creditops.training.fit import choose_thresholds

    directions = dict(DIRECTIONS if directions is None else directions)
    p = {**GOOD_PARAMS, **(params or {})}
    if monotone:
        p["monotone_constraints"] = "(" + ",".join(str(directions.get(f, 0)) for f in FEATURES) + ")"
    y = train[TARGET].to_numpy()
    if shuffle_labels:
        y = np.random.default_rng(1).permutation(y)
    dtrain = xgb.DMatrix(train[FEATURES].to_numpy(dtype=np.float32), label=y, feature_names=FEATURES)
    booster = xgb.train(p, dtrain, num_boost_round=rounds)
    raw_valid = booster.inplace_predict(valid[FEATURES].to_numpy(dtype=np.float32))
    y_valid = valid[TARGET].to_numpy()
    calibration = calibration or ranking_calibration(raw_valid, y_valid)
    pd_valid = np.interp(raw_valid, calibration.x, calibration.y)
    thresholds = choose_thresholds(pd_valid, y_valid, scoring or ScoringConfig())
    manifest = Manifest(
        model_name="credit-pd-test",
        feature_service="credit_scoring_v1",
        features=FEATURES,
        dtypes={f: ("int" if f == "num_late" else "float") for f in FEATURES},
        directions=directions,
        reasons=REASONS,
        calibration=calibration,
        score_scaling=ScoreScaling(),
        thresholds=thresholds,
        params=p,
        data_version="testworld001",
        target=TARGET,
        protected=PROTECTED,
    )
    save_bundle(out_dir, booster, manifest, train[FEATURES].sample(200, random_state=0))
    return load_bundle(out_dir)


def make_evidence(
    bundle: Bundle, train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame, folds: int = 3
) -> Any:
    """Real training evidence for ``bundle``: k-fold CV AUCs of its parameters on train + valid, its raw-score
    test AUC, and two baselines fitted on train and scored on ``test`` (logistic regression, default XGBoost).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from creditops.governance.gates import GateEvidence

    params = {**GOOD_PARAMS, **dict(bundle.manifest.params)}
    rounds = int(bundle.booster.num_boosted_rounds())
    both = pd.concat([train, valid], ignore_index=True)
    cv = []
    split = StratifiedKFold(folds, shuffle=True, random_state=0).split(both, both[TARGET])
    for fit_idx, held_idx in split:
        fit, held = both.iloc[fit_idx], both.iloc[held_idx]
        d = xgb.DMatrix(fit[FEATURES].to_numpy(np.float32), label=fit[TARGET], feature_names=FEATURES)
        b = xgb.train(params, d, num_boost_round=rounds)
        cv.append(float(roc_auc_score(held[TARGET], b.inplace_predict(held[FEATURES].to_numpy(np.float32)))))
    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        train[FEATURES], train[TARGET]
    )
    dflt = xgb.train(
        {"objective": "binary:logistic", "nthread": 1, "seed": 0},
        xgb.DMatrix(train[FEATURES].to_numpy(np.float32), label=train[TARGET], feature_names=FEATURES),
        num_boost_round=100,
    )
    y = test[TARGET].to_numpy()
    baselines = {
        "logistic_regression": {"auc": float(roc_auc_score(y, logistic.predict_proba(test[FEATURES])[:, 1]))},
        "xgboost_default": {
            "auc": float(roc_auc_score(y, dflt.inplace_predict(test[FEATURES].to_numpy(np.float32))))
        },
    }
    raw = float(roc_auc_score(y, bundle.predict_raw(test[FEATURES])))
    return GateEvidence(cv_auc=tuple(cv), raw_test_auc=raw, baselines=baselines)
