"""Steps of the daily data pipeline beyond ingest/validate: settings, features, store, monitor, decide."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def resolve_settings(config: str, workdir: str, source: str, n_applicants: int, seed: int) -> str:
    """Parse the run's configuration once: a config file (``""``: defaults) plus the typed parameters.

    Returns:
        The resolved ``Settings`` as JSON (what the shared ingest/validate steps take).
    """
    from creditops.daily import daily_settings

    return daily_settings(config, workdir, source, n_applicants, seed).model_dump_json()


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def build_daily_features(validated: Input[Dataset], features: Output[Dataset]) -> int:
    """Compute the snapshot's feature tables (one Parquet file each) and carry the contract and as-of time.

    Returns:
        Feature rows over all tables.
    """
    from pathlib import Path

    from creditops.data.snapshot import read_snapshot
    from creditops.features.build import build_snapshot_features

    tables, info = read_snapshot(validated.metadata["path"])
    built = build_snapshot_features(tables, info.source)
    out = Path(features.path)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in built.tables.items():
        table.to_parquet(out / f"{name}.parquet", index=False)
    rows = sum(len(t) for t in built.tables.values())
    features.metadata.update(
        {
            "version": info.version,
            "as_of": built.as_of.isoformat(),
            "tables": list(built.tables),
            "rows": rows,
            "contract": built.contract.model_dump(mode="json"),
        }
    )
    return rows


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def store_features(
    config: str, validated: Input[Dataset], features: Input[Dataset], seed_stream_state: bool
) -> NamedTuple("StoreOutputs", [("online_rows", int), ("seeded_transactions", int)]):
    """Write the tables offline, ``feast apply``, materialize online; seed the stream consumer's state.

    With ``seed_stream_state`` the snapshot's transactions go into the consumer's Redis state
    (``streaming.state_redis_url``), so events arriving after this run continue from this history.
    """
    from collections import namedtuple

    import pandas as pd

    from creditops.config import Settings
    from creditops.data.snapshot import read_snapshot
    from creditops.features.contract import FeatureContract
    from feast_repo.store import apply, materialize, open_store, write_offline

    settings = Settings.model_validate_json(config)
    meta = features.metadata
    tables = {n: pd.read_parquet(f"{features.path}/{n}.parquet") for n in meta["tables"]}
    contract = FeatureContract.model_validate(meta["contract"])
    store = open_store(config=settings.feast)
    write_offline(tables, store)
    apply(store, contract)
    materialize(store, end=pd.Timestamp(meta["as_of"]).to_pydatetime(), contract=contract, tables=tables)
    seeded = 0
    if seed_stream_state:
        import redis

        from creditops.streaming.state import RedisEventState

        raw, _ = read_snapshot(validated.metadata["path"])
        cfg = settings.streaming
        state = RedisEventState(redis.Redis.from_url(cfg.state_redis_url), prefix=cfg.state_prefix)
        seeded = state.seed(raw["transactions"]) if "transactions" in raw else 0
    online = sum(t.iloc[:, 0].nunique() for t in tables.values())
    return namedtuple("StoreOutputs", ["online_rows", "seeded_transactions"])(online, seeded)


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def check_monitoring(
    features: Input[Dataset],
    reference_path: str,
    window_days: int,
    alpha: float,
    monitoring: Output[Artifact],
    metrics: Output[Metrics],
) -> int:
    """Drift of the last ``window_days`` of features against the earlier rows (or ``reference_path``).

    Returns:
        Number of drifted features.
    """
    import json

    import pandas as pd

    from creditops.daily import daily_drift

    meta = features.metadata
    tables = {n: pd.read_parquet(f"{features.path}/{n}.parquet") for n in meta["tables"]}
    reference = pd.read_parquet(reference_path) if reference_path else None
    summary = daily_drift(
        tables, pd.Timestamp(meta["as_of"]), meta["contract"]["features"], window_days, alpha, reference
    )
    with open(monitoring.path, "w") as fh:
        json.dump(summary.to_dict(), fh)
    metrics.log_metric("drifted_features", len(summary.drifted_features))
    metrics.log_metric("max_psi", max(summary.psi.values(), default=0.0))
    metrics.log_metric("current_rows", summary.n_current)
    return len(summary.drifted_features)


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def decide_retraining(
    monitoring: Input[Artifact],
    max_drifted_share: float,
    max_psi: float,
    min_current_rows: int,
    decision: Output[Artifact],
    metrics: Output[Metrics],
) -> bool:
    """Apply the retraining policy to the monitoring summary; the decision and its reasons are the output.

    The retraining pipeline is a separate run: an orchestrator (``creditops schedule`` locally, a KFP
    trigger on a cluster) starts it when this step's output is true.
    """
    import json

    from creditops.daily import MonitoringSummary, RetrainPolicy, retraining_decision

    with open(monitoring.path) as fh:
        summary = MonitoringSummary(**json.load(fh))
    result = retraining_decision(summary, RetrainPolicy(max_drifted_share, max_psi, min_current_rows))
    with open(decision.path, "w") as fh:
        json.dump(result.to_dict(), fh)
    decision.metadata.update(result.to_dict())
    metrics.log_metric("retrain", int(result.retrain))
    return result.retrain
