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

from creditops.artifact import Bundle, Calibration, Manifest, ScoreScaling, Thresholds, save_bundle

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
    decline_quantile: float = 0.9,
) -> tuple[Path, pd.DataFrame]:
    """Train and save a bundle; returns (bundle dir, held-out test frame).

    ``random_model=True`` trains on shuffled labels without monotone constraints: a model that must fail.
    """
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
    raw = booster.predict(dtrain)
    decline = float(np.quantile(raw, decline_quantile))
    approve = float(np.quantile(raw, decline_quantile - 0.2))
    manifest = Manifest(
        model_name="credit-pd-test",
        feature_service="credit_scoring_v1",
        features=FEATURES,
        dtypes={f: ("int" if f == "num_late" else "float") for f in FEATURES},
        directions=DIRECTIONS,
        reasons=REASONS,
        calibration=Calibration.identity(),
        score_scaling=ScoreScaling(),
        thresholds=Thresholds(approve_below_pd=approve, decline_at_or_above_pd=decline),
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
