"""MLflow tracking + registry on a real Postgres backend store (psycopg 3) with a temp artifact root."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from governance_helpers import PROTECTED, TARGET, make_bundle
from mlflow import MlflowClient

from creditops.artifact import BUNDLE_FILES, load_bundle
from creditops.config import GatesConfig
from creditops.errors import GateFailure
from creditops.governance import registry
from creditops.governance.gates import evaluate_gates

SCHEMA = "mlflow_governance"


@pytest.fixture(scope="module")
def tracking_uri(pg_url: str) -> str:
    # MLflow's tables live in their own schema, so they cannot collide with other tables in the test database
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    options = quote(f"-csearch_path={SCHEMA}")
    return f"{pg_url}?options={options}"


def _digest(directory: Path) -> dict[str, str]:
    """Hashes of the bundle's own files (the registered copy adds MLflow's MLmodel + requirements.txt)."""
    return {name: hashlib.sha256((directory / name).read_bytes()).hexdigest() for name in BUNDLE_FILES}


def test_register_promote_resolve_on_postgres(tracking_uri: str, pg_url: str, tmp_path: Path) -> None:
    bundle_dir, test = make_bundle(tmp_path / "bundle")
    bundle = load_bundle(bundle_dir)
    report = evaluate_gates(bundle, test, GatesConfig(), TARGET, PROTECTED)
    assert report.passed, report.summary()
    artifacts = (tmp_path / "artifacts").as_uri()
    name = "credit-pd-pg"

    v1 = registry.register(bundle_dir, report, tracking_uri, name, artifact_location=artifacts)
    v2 = registry.register(bundle_dir, report, tracking_uri, name, artifact_location=artifacts)
    assert (v1, v2) == ("1", "2")
    assert registry.alias_version(tracking_uri, name, registry.CHALLENGER) == "2"
    assert registry.alias_version(tracking_uri, name, registry.CHAMPION) is None

    registry.promote(tracking_uri, name, v1, promoted_by="ci")
    assert registry.alias_version(tracking_uri, name, registry.CHAMPION) == "1"
    registry.register(bundle_dir, report, tracking_uri, name, artifact_location=artifacts)
    assert registry.alias_version(tracking_uri, name, registry.CHAMPION) == "1"  # only promote moves it
    assert registry.alias_version(tracking_uri, name, registry.CHALLENGER) == "3"

    local = registry.resolve(tracking_uri, f"models:/{name}@champion", dst_path=tmp_path / "dl")
    assert _digest(local) == _digest(bundle_dir)
    assert str(local).startswith(str(tmp_path / "dl"))
    assert any((tmp_path / "artifacts").rglob("model.ubj"))  # artifacts went to the temp root

    failing = evaluate_gates(bundle, test, GatesConfig(min_auc=0.999), TARGET, PROTECTED)
    with pytest.raises(GateFailure, match="auc"):
        registry.register(bundle_dir, failing, tracking_uri, name, artifact_location=artifacts)
    client = MlflowClient(tracking_uri=registry.tracking_uri_for(tracking_uri))
    assert len(client.search_model_versions(f"name='{name}'")) == 3

    # the registry really is in Postgres, in its own schema
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            f"SELECT version, alias FROM {SCHEMA}.registered_model_aliases WHERE name = %s ORDER BY alias",
            (name,),
        ).fetchall()
    assert rows == [(3, "challenger"), (1, "champion")]


def test_challenger_loads_with_mlflow_pyfunc_from_postgres(
    tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import numpy as np

    bundle_dir, test = make_bundle(tmp_path / "bundle")
    bundle = load_bundle(bundle_dir)
    report = evaluate_gates(bundle, test, GatesConfig(), TARGET, PROTECTED)
    name = "credit-pd-pyfunc-pg"
    registry.register(bundle_dir, report, tracking_uri, name, artifact_location=(tmp_path / "art").as_uri())
    uri = registry.tracking_uri_for(tracking_uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    model = mlflow.pyfunc.load_model(f"models:/{name}@challenger")
    frame = test[bundle.features].head(25)
    scored = model.predict(frame)
    assert list(scored.columns) == ["pd", "score", "decision"]
    np.testing.assert_allclose(scored["pd"].to_numpy(), bundle.predict_pd(frame))
    assert model.metadata.get_input_schema().input_names() == bundle.features
