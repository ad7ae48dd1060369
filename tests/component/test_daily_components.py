"""The daily steps through ``.python_func`` on a small world: real Feast store, real Redis stream state."""

import json
from pathlib import Path

import pandas as pd
import redis
from kfp.dsl import Artifact, Dataset, Markdown, Metrics

from components.daily import (
    build_daily_features,
    check_monitoring,
    decide_retraining,
    resolve_settings,
    store_features,
)
from components.ingest import ingest_data
from components.validate import validate_data
from creditops.config import Settings
from creditops.features.registry import model_feature_names
from feast_repo import store as fs


def _artifact(cls: type, tmp_path: Path, name: str) -> object:
    return cls(name=name, uri=str(tmp_path / name), metadata={})


def test_daily_steps_store_seed_monitor_and_decide(tmp_path: Path, run_id: str, redis_url: str) -> None:
    prefix = f"creditops_test_{run_id}_daily:"
    config = tmp_path / "creditops.yaml"
    config.write_text(
        f"feast:\n  project: creditops_test_{run_id}_daily\n"
        f"streaming:\n  state_redis_url: {redis_url}\n  state_prefix: '{prefix}'\n"
    )
    settings_json = resolve_settings.python_func(
        config=str(config), workdir=str(tmp_path / "work"), source="synthetic", n_applicants=300, seed=3
    )
    settings = Settings.model_validate_json(settings_json)
    assert settings.data.n_applicants == 300 and settings.feast.data_dir == tmp_path / "work" / "feast"

    snapshot = _artifact(Dataset, tmp_path, "snapshot")
    ingest_data.python_func(config=settings_json, snapshot=snapshot)
    validated = _artifact(Dataset, tmp_path, "validated")
    validate_data.python_func(
        config=settings_json,
        snapshot=snapshot,
        validated=validated,
        quarantine=_artifact(Dataset, tmp_path, "quarantine"),
        quality_report=_artifact(Markdown, tmp_path, "report.md"),
        metrics=_artifact(Metrics, tmp_path, "metrics"),
    )
    features = _artifact(Dataset, tmp_path, "features")
    rows = build_daily_features.python_func(validated=validated, features=features)
    assert rows > 300 and features.metadata["tables"] == ["identity", "bureau", "behavioural", "derived"]

    online_rows, seeded = store_features.python_func(
        config=settings_json, validated=validated, features=features, seed_stream_state=True
    )
    client = redis.Redis.from_url(redis_url)
    try:
        n_tx = validated.metadata["rows"]["transactions"]
        assert seeded == n_tx > 0
        assert sum(1 for _ in client.scan_iter(match=f"{prefix}*", count=1000)) > 0
        # seeding again adds nothing (idempotent by transaction id)
        assert (
            store_features.python_func(
                config=settings_json, validated=validated, features=features, seed_stream_state=True
            )[1]
            == 0
        )
        store = fs.open_store(config=settings.feast)
        ids = pd.read_parquet(Path(features.path) / "identity.parquet")["applicant_id"].head(5).tolist()
        online = fs.online_features(store, ids)
        assert online[model_feature_names()].notna().all().all()
        assert online_rows >= 300

        monitoring = _artifact(Artifact, tmp_path, "monitoring")
        drifted = check_monitoring.python_func(
            features=features,
            reference_path="",
            window_days=30,
            alpha=0.05,
            monitoring=monitoring,
            metrics=_artifact(Metrics, tmp_path, "m2"),
        )
        summary = json.loads(Path(monitoring.path).read_text())
        assert drifted == len(summary["drifted_features"]) and summary["n_current"] > 0

        def decide(max_psi: float, min_rows: int) -> tuple[bool, dict]:
            decision = _artifact(Artifact, tmp_path, f"decision-{max_psi}-{min_rows}")
            out = decide_retraining.python_func(
                monitoring=monitoring,
                max_drifted_share=1.0,
                max_psi=max_psi,
                min_current_rows=min_rows,
                decision=decision,
                metrics=_artifact(Metrics, tmp_path, f"m-{max_psi}-{min_rows}"),
            )
            return out, json.loads(Path(decision.path).read_text())

        assert decide(max_psi=1e9, min_rows=1) == (False, {"retrain": False, "reasons": []})
        retrain, decision = decide(max_psi=-1.0, min_rows=1)  # every PSI exceeds a negative limit
        assert retrain and decision["retrain"] and len(decision["reasons"]) == len(summary["psi"])
        fs.teardown(store)
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
