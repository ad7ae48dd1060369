"""Real Redis online store + real Postgres offline store (fresh database from ``pg_url``)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest

from creditops.config import FeastConfig
from creditops.data.synthetic import generate_world
from creditops.features.build import build_feature_tables, entity_frame
from creditops.features.registry import model_feature_names
from feast_repo import store as fs


@pytest.fixture(scope="module")
def world():
    return generate_world(80, seed=11)


@pytest.fixture(scope="module")
def tables(world):
    return build_feature_tables(world)


@pytest.fixture(scope="module", params=["feast_materialize", "bulk_materialize"])
def store(request, pg_url, redis_url, run_id, tables, world, tmp_path_factory):
    """The same world loaded through Feast's own materialize and through the bulk Redis writer."""
    bulk = request.param == "bulk_materialize"
    pg, rd = urlparse(pg_url), urlparse(redis_url)
    config = FeastConfig(
        project=f"creditops_test_{run_id}{'_bulk' if bulk else ''}",
        online_store="redis",
        offline_store="postgres",
        redis_connection=f"{rd.hostname}:{rd.port or 6379},db={(rd.path or '/0').lstrip('/') or 0}",
        postgres_host=pg.hostname,
        postgres_port=pg.port or 5432,
        postgres_database=pg.path.lstrip("/"),
        postgres_user=pg.username or "postgres",
        postgres_sslmode="disable",
    )
    store = fs.open_store(config=config, data_dir=Path(tmp_path_factory.mktemp("feast")))
    fs.write_offline(tables, store)
    fs.apply(store)
    fs.materialize(store, world.as_of.to_pydatetime(), tables=tables if bulk else None)
    yield store
    fs.teardown(store)


def test_online_read_from_redis_matches_latest_rows(store, tables, world):
    ids = world.applications["applicant_id"].head(5).tolist()
    online = fs.online_features(store, ids)
    assert list(online.columns) == ["applicant_id", *model_feature_names()]
    latest = tables["derived"].sort_values("event_timestamp").groupby("applicant_id").last()
    for _, row in online.iterrows():
        assert row["debt_to_income"] == pytest.approx(latest.loc[row["applicant_id"], "debt_to_income"])
    bureau_latest = tables["bureau"].sort_values("event_timestamp").groupby("applicant_id").last()
    assert online["credit_score"].tolist() == bureau_latest.loc[ids, "credit_score"].tolist()


def test_historical_read_from_postgres_is_point_in_time(store, tables, world):
    entities = entity_frame(world.applications)
    train = fs.training_frame(store, entities)
    assert list(train.columns) == list(entities.columns) + model_feature_names()
    assert len(train) == len(entities)
    assert train["applicant_id"].tolist() == entities["applicant_id"].tolist()
    assert train[model_feature_names()].notna().all().all()

    # expected: for every applicant the latest row at or before the application time, per group
    for group, column in (
        ("bureau", "credit_score"),
        ("behavioural", "total_inflow_12m"),
        ("derived", "debt_to_income"),
    ):
        table = tables[group].sort_values("event_timestamp")
        expected = pd.merge_asof(
            entities[["applicant_id", "event_timestamp"]].sort_values("event_timestamp"),
            table[["applicant_id", "event_timestamp", column]],
            on="event_timestamp",
            by="applicant_id",
        ).set_index("applicant_id")[column]
        got = train.set_index("applicant_id")[column]
        assert got.to_numpy() == pytest.approx(expected.loc[got.index].to_numpy()), group
        # and rows after the application exist but were not picked
        later = table.merge(
            entities[["applicant_id", "event_timestamp"]], on="applicant_id", suffixes=("", "_app")
        )
        assert (later["event_timestamp"] > later["event_timestamp_app"]).any()
        latest = table.groupby("applicant_id")[column].last()
        assert (got != latest.loc[got.index]).any(), group
