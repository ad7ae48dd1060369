"""Small real bundles for the predictor's tests and benchmark (a trained booster, not a stand-in).

``tiny_bundle`` trains an XGBoost model on random feature values drawn inside each feature's valid range,
with the registry's monotone directions, and saves it with ``creditops.artifact.save_bundle`` (the built-in
contract embedded); ``german_bundle`` trains one on the shipped German Credit data through its dataset spec
(raw categoricals, the spec's contract embedded), as training does;
``running_server`` runs the real server in a subprocess; ``feast_world`` fills a Redis online store.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb

from creditops.artifact import Calibration, Manifest, ScoreScaling, Thresholds, save_bundle
from creditops.features.contract import builtin_contract
from creditops.features.registry import FEATURE_SERVICE, FEATURES
from creditops.serve_local import free_port, running_process


def random_features(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` rows of plausible values for every model feature, each inside its valid range."""
    rng = np.random.default_rng(seed)
    cols = {}
    for f in FEATURES:
        low, high = f.valid_range
        lo = 0.0 if low is None else float(low)
        hi = (lo + 1000.0) if high is None else float(high)
        if low is None and high is None:
            lo, hi = -1000.0, 1000.0
        values = rng.uniform(lo, hi, size=n)
        cols[f.name] = np.floor(values).astype(np.int64) if f.dtype == "int" else values
    return pd.DataFrame(cols)


def tiny_bundle(
    out_dir: str | Path, n_rows: int = 2000, n_trees: int = 30, seed: int = 0, max_depth: int = 3
) -> Path:
    """Train and save a small model over the full feature service; returns the bundle directory."""
    X = random_features(n_rows, seed)
    rng = np.random.default_rng(seed + 1)
    directions = {f.name: f.direction for f in FEATURES}
    z = sum(directions[c] * (X[c] - X[c].mean()) / (X[c].std() + 1e-9) for c in X.columns) / 3.0
    y = (rng.uniform(size=n_rows) < 1.0 / (1.0 + np.exp(-(z - 1.5)))).astype(int)
    dtrain = xgb.DMatrix(X.to_numpy(np.float32), label=y, feature_names=list(X.columns))
    params = {
        "objective": "binary:logistic",
        "max_depth": max_depth,
        "eta": 0.3,
        "nthread": 1,
        "monotone_constraints": "(" + ",".join(str(directions[c]) for c in X.columns) + ")",
    }
    booster = xgb.train(params, dtrain, num_boost_round=n_trees)
    features = list(X.columns)
    manifest = Manifest(
        model_name="credit-tiny",
        feature_service=FEATURE_SERVICE,
        features=features,
        dtypes={f.name: f.dtype for f in FEATURES},
        directions=directions,
        reasons={f.name: f.reason for f in FEATURES},
        valid_ranges=builtin_contract().valid_ranges,
        calibration=Calibration.identity(),
        score_scaling=ScoreScaling(),
        thresholds=Thresholds(approve_below_pd=0.1, decline_at_or_above_pd=0.4),
        metrics={},
        data_version=f"random-{seed}",
        target="defaulted",
        protected=["sex", "age_band", "race"],
    )
    return save_bundle(out_dir, booster, manifest, X.head(200), contract=builtin_contract())


def german_bundle(out_dir: str | Path, n_trees: int = 40, seed: int = 0) -> tuple[Path, pd.DataFrame]:
    """A German Credit model trained through its dataset spec; returns (bundle dir, the raw data).

    The raw data is what a user has: ``purpose`` is ``"car (new)"``, not a one-hot column.
    """
    from creditops.data.real import load_german_credit
    from creditops.features.spec import spec_contract, spec_feature_table

    raw, spec = load_german_credit()
    contract = spec_contract(raw, spec)
    table = spec_feature_table(raw, spec, contract)
    y = spec.encode_target(raw).to_numpy()
    X = table[contract.features].astype("float32")
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.2, "nthread": 1, "seed": seed}
    booster = xgb.train(params, xgb.DMatrix(X, label=y, feature_names=contract.features), n_trees)
    manifest = Manifest(
        model_name="german-credit",
        feature_service=contract.service,
        features=contract.features,
        dtypes=dict(contract.dtypes),
        directions=dict(contract.directions),
        reasons=dict(contract.reasons),
        valid_ranges=dict(contract.valid_ranges),
        calibration=Calibration.identity(),
        score_scaling=ScoreScaling(),
        thresholds=Thresholds(approve_below_pd=0.2, decline_at_or_above_pd=0.5),
        target=contract.target,
        protected=list(contract.protected),
    )
    return save_bundle(out_dir, booster, manifest, X.head(200), contract=contract), raw


@contextmanager
def running_server(
    args: list[str],
    env: Mapping[str, str] | None = None,
    model_name: str = "credit",
    timeout_s: float = 120.0,
) -> Iterator[str]:
    """Run ``python -m predictor <args> --http-port <free>`` and yield its base URL once the model is ready.

    The server's output goes to a temporary log file, whose tail the error carries if it dies before getting
    ready (:func:`creditops.serve_local.running_process`).
    """
    port = free_port()
    kserve_dir = Path(__file__).resolve().parents[1]
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(kserve_dir), full_env.get("PYTHONPATH")]))
    auth = [] if "--auth" in args else ["--auth", "anonymous"]  # tests that do not test auth say so here
    cmd = [
        sys.executable,
        "-m",
        "predictor",
        *args,
        *auth,
        "--model-name",
        model_name,
        "--http-port",
        str(port),
    ]
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="predictor-") as tmp:
        log = Path(tmp) / "predictor.log"
        with running_process(cmd, full_env, f"{base}/v2/models/{model_name}/ready", log, timeout_s):
            yield base


def feature_tables(n_applicants: int, seed: int = 0, first_id: int = 1) -> dict[str, pd.DataFrame]:
    """Feature tables (one per group: applicant_id, event_timestamp, that group's features) of random rows."""
    from creditops.features.registry import GROUPS, JOIN_KEY, TIMESTAMP, features_in

    values = random_features(n_applicants, seed)
    ids = np.arange(first_id, first_id + n_applicants, dtype=np.int64)
    ts = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(days=1)
    return {
        group: pd.DataFrame(
            {JOIN_KEY: ids, TIMESTAMP: ts, **{f.name: values[f.name].to_numpy() for f in features_in(group)}}
        )
        for group in GROUPS
    }


def feast_world(
    data_dir: str | Path, project: str, redis: str, n_applicants: int = 300, seed: int = 0
) -> tuple[dict[str, str], pd.DataFrame]:
    """Apply the repo, write random feature tables and materialize them into a Redis online store.

    Returns the ``CREDITOPS_FEAST_*`` environment a server needs to read the same store, and the features
    (``applicant_id`` + model features) that were materialized.
    """
    from creditops.config import FeastConfig
    from creditops.features.registry import JOIN_KEY
    from feast_repo import store as feast_store

    config = FeastConfig(project=project, online_store="redis", offline_store="file", redis_connection=redis)
    env = feast_store.feast_env(config, data_dir)
    store = feast_store.open_store(config=config, data_dir=data_dir)
    tables = feature_tables(n_applicants, seed)
    feast_store.write_offline(tables, store)
    feast_store.apply(store)
    feast_store.materialize(store, end=pd.Timestamp.now(tz="UTC").to_pydatetime())
    frame = random_features(n_applicants, seed)
    frame.insert(0, JOIN_KEY, tables["identity"][JOIN_KEY].to_numpy())
    return env, frame


def redis_address(redis_url: str) -> str:
    """``host:port`` (Feast's connection string) from ``redis://host:port/db``."""
    from urllib.parse import urlsplit

    parts = urlsplit(redis_url)
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}"


def embed_contract(bundle_dir: str | Path, join_key: str = "applicant_id") -> Path:
    """Re-save a bundle written without a contract with one made from its manifest (numeric features only).

    For test bundles built before contracts were embedded (``tests/governance_helpers.make_bundle``).
    """
    from creditops.artifact import load_bundle
    from creditops.features.contract import FeatureContract

    bundle = load_bundle(bundle_dir)
    m = bundle.manifest
    contract = FeatureContract(
        kind="spec",
        name=m.model_name.replace("-", "_"),
        service=m.feature_service,
        entity=f"{m.model_name}_record",
        join_key=join_key,
        tables=[m.model_name.replace("-", "_")],
        features=list(m.features),
        dtypes={
            f: ("int" if str(m.dtypes.get(f, "float")).startswith("int") else "float") for f in m.features
        },
        directions=dict(m.directions),
        reasons=dict(m.reasons),
        target=m.target,
        protected=list(m.protected),
        valid_ranges=dict(m.valid_ranges),
    )
    return save_bundle(bundle_dir, bundle.booster, m, bundle.reference, contract=contract)
