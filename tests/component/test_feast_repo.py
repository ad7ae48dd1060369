from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from creditops.config import FeastConfig
from creditops.data.synthetic import generate_world
from creditops.features.build import build_feature_tables, entity_frame
from creditops.features.registry import FEATURE_SERVICE, GROUPS, model_feature_names
from feast_repo import store as fs

REPO = Path(fs.__file__).parent
FEAST = Path(sys.executable).parent / "feast"


@pytest.fixture()
def repo_copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO, tmp_path / "repo", ignore=shutil.ignore_patterns("data", "__pycache__"))
    return tmp_path / "repo"


def test_service_agrees_with_registry_and_functions(repo_copy, tmp_path, run_id):
    store = fs.open_store(
        repo_copy, FeastConfig(project=f"creditops_test_{run_id}_c"), data_dir=tmp_path / "d"
    )
    fs.apply(store)
    try:
        service = store.get_feature_service(FEATURE_SERVICE)
        refs = [f.name for projection in service.feature_view_projections for f in projection.features]
        assert refs == model_feature_names()
        assert [p.name for p in service.feature_view_projections] == [f"{g}_fv" for g in GROUPS]
        assert {fv.name for fv in store.list_feature_views()} == {f"{g}_fv" for g in GROUPS}
    finally:
        fs.teardown(store)


def test_sqlite_file_roundtrip(repo_copy, tmp_path, run_id):
    world = generate_world(60, seed=3)
    store = fs.open_store(
        repo_copy, FeastConfig(project=f"creditops_test_{run_id}_f"), data_dir=tmp_path / "d"
    )
    try:
        fs.write_offline(build_feature_tables(world), store)
        fs.apply(store)
        fs.materialize(store, world.as_of.to_pydatetime())
        ids = world.applications["applicant_id"].head(3).tolist()
        online = fs.online_features(store, ids)
        assert list(online.columns) == ["applicant_id", *model_feature_names()]
        assert online.notna().all().all()
        train = fs.training_frame(store, entity_frame(world.applications))
        assert list(train.columns[:6]) == [
            "applicant_id",
            "event_timestamp",
            "defaulted",
            "sex",
            "age_band",
            "race",
        ]
        assert list(train.columns[6:]) == model_feature_names()
        assert len(train) == 60 and train[model_feature_names()].notna().all().all()
        assert str(train["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    finally:
        fs.teardown(store)


def test_bare_cli_runs_on_the_embedded_defaults(repo_copy, tmp_path):
    """`feast apply` / `materialize-incremental` in a copy of feast_repo/, no environment script evaluated."""
    world = generate_world(30, seed=4)
    data = repo_copy / "data"  # the embedded default data directory, next to feature_store.yaml
    data.mkdir()
    for group, table in build_feature_tables(world).items():
        table.to_parquet(data / f"{group}.parquet", index=False)
    # Only what any shell has: no CREDITOPS_FEAST_* variable at all.
    full_env = {"PATH": str(FEAST.parent), "HOME": str(tmp_path)}

    def feast(*args: str) -> str:
        done = subprocess.run(
            [str(FEAST), *args], cwd=repo_copy, env=full_env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    assert "Created feature service credit_scoring_v1" in feast("apply")
    listing = feast("feature-views", "list")
    for group in GROUPS:
        assert f"{group}_fv" in listing
    out = feast("materialize-incremental", pd.Timestamp(world.as_of).strftime("%Y-%m-%dT%H:%M:%S"))
    assert "identity_fv" in out
    assert (data / "registry.db").is_file() and (data / "online.db").is_file()


def test_definitions_read_no_environment_at_import(tmp_path):
    code = (
        "from feast import FileSource; from feast_repo import definitions as d; "
        "assert isinstance(d.identity_fv.batch_source, FileSource), type(d.identity_fv.batch_source)"
    )
    env = {"PATH": str(FEAST.parent), "HOME": str(tmp_path), "CREDITOPS_FEAST_OFFLINE_STORE": "postgres"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_yaml_command_writes_a_config_for_other_backends(tmp_path):
    from feast.repo_config import RepoConfig

    cfg = tmp_path / "creditops.yaml"
    cfg.write_text("feast:\n  online_store: redis\n  redis_connection: 10.0.0.5:6379\n")
    done = subprocess.run(
        [sys.executable, "-m", "feast_repo.store", "yaml", str(cfg)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    import yaml

    raw = yaml.safe_load(done.stdout)
    assert raw["online_store"] == {"type": "redis", "connection_string": "10.0.0.5:6379"}
    assert RepoConfig(repo_path=tmp_path, **raw).online_store.type == "redis"


def test_spec_dataset_roundtrip(repo_copy, tmp_path, run_id):
    """A dataset-spec contract gets its own entity, view and service next to the built-in ones."""
    from creditops.data.real import load_real
    from creditops.data.validation import validate_table
    from creditops.features.build import build_snapshot_features

    df, spec = load_real("german_credit")
    accepted = validate_table(df.head(80), spec).accepted
    built = build_snapshot_features(accepted, {"kind": "german_credit", "spec": spec.model_dump(mode="json")})
    contract = built.contract
    store = fs.open_store(
        repo_copy, FeastConfig(project=f"creditops_test_{run_id}_s"), data_dir=tmp_path / "d"
    )
    try:
        fs.write_offline(built.tables, store)
        fs.apply(store, contract)
        fs.materialize(store, built.as_of.to_pydatetime(), contract=contract)
        service = store.get_feature_service("german_credit_v1")
        refs = [f.name for projection in service.feature_view_projections for f in projection.features]
        assert refs == contract.features
        assert store.get_entity("german_credit_record").join_key == spec.id_column
        train = fs.training_frame(store, built.entities, contract)
        assert list(train.columns) == [*contract.entity_columns, *contract.features]
        expected = built.tables["german_credit"][contract.features].reset_index(drop=True)
        pd.testing.assert_frame_equal(train[contract.features], expected, check_dtype=False)
        online = fs.online_features(store, built.entities[spec.id_column].head(3).tolist(), contract)
        assert online[contract.features].notna().all().all()
    finally:
        fs.teardown(store)
