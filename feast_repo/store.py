"""Glue between creditops and Feast: open the store, write offline tables, apply, materialize, read.

``feature_store.yaml`` holds the embedded defaults as plain values (the bare ``feast`` CLI runs on it as
is). Other backends come from :class:`creditops.config.FeastConfig`, as the ``CREDITOPS_FEAST_*`` mapping of
:func:`feast_env` (explicit values, never read from the process environment here), from which
:func:`repo_config` builds the RepoConfig; ``python -m feast_repo.store yaml [config]`` writes the same
configuration as a file for the bare CLI (``feast -f that.yaml apply``).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import yaml
from feast import FeatureStore
from feast.repo_config import RepoConfig
from feast.value_type import ValueType

from creditops.config import FeastConfig
from creditops.features.contract import FeatureContract, builtin_contract
from feast_repo import definitions

REPO_PATH = Path(__file__).resolve().parent
_COPY_CHUNK_ROWS = 250_000


def feast_env(config: FeastConfig | None = None, data_dir: str | Path | None = None) -> dict[str, str]:
    """The ``CREDITOPS_FEAST_*`` variables for a config (registry and SQLite file live in ``data_dir``)."""
    cfg = config or FeastConfig()
    if data_dir is not None:
        cfg = cfg.model_copy(update={"data_dir": Path(data_dir)})
    return cfg.env(definitions.DEFAULT_DATA_DIR)


def _backend(kind: str, variables: Mapping[str, str]) -> dict[str, object]:
    v = variables
    if kind == "sqlite":
        return {"type": "sqlite", "path": v["CREDITOPS_FEAST_SQLITE_PATH"]}
    if kind == "redis":
        return {"type": "redis", "connection_string": v["CREDITOPS_FEAST_REDIS"]}
    if kind == "file":
        return {"type": "file"}
    if kind == "postgres":
        return {
            "type": "postgres",
            "host": v["CREDITOPS_FEAST_PG_HOST"],
            "port": int(v["CREDITOPS_FEAST_PG_PORT"]),
            "database": v["CREDITOPS_FEAST_PG_DATABASE"],
            "db_schema": "public",
            "user": v["CREDITOPS_FEAST_PG_USER"],
            "password": v["CREDITOPS_FEAST_PG_PASSWORD"],
            "sslmode": v["CREDITOPS_FEAST_PG_SSLMODE"],
        }
    raise ValueError(f"unknown Feast backend {kind!r} (sqlite, redis, file, postgres)")


def repo_config(repo: str | Path, variables: Mapping[str, str]) -> dict[str, object]:
    """``repo``'s feature_store.yaml with project, registry and backends taken from ``variables``."""
    raw = yaml.safe_load((Path(repo) / "feature_store.yaml").read_text())
    raw.update(
        project=variables["CREDITOPS_FEAST_PROJECT"],
        registry=variables["CREDITOPS_FEAST_REGISTRY"],
        online_store=_backend(variables["CREDITOPS_FEAST_ONLINE_STORE"], variables),
        offline_store=_backend(variables["CREDITOPS_FEAST_OFFLINE_STORE"], variables),
    )
    return raw


def open_store(
    repo_path: str | Path | None = None,
    config: FeastConfig | None = None,
    data_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> FeatureStore:
    """A FeatureStore over ``repo_path``'s feature_store.yaml with the backends of ``config``.

    ``env`` overrides single variables. Nothing is read from or written to ``os.environ``: the file's
    settings with ``feast_env(config) | env``'s backends (:func:`repo_config`) go to Feast as a RepoConfig.
    """
    repo = Path(repo_path or (config.repo_path if config and config.repo_path else REPO_PATH)).resolve()
    variables = {**feast_env(config, data_dir), **(env or {})}
    raw = repo_config(repo, variables)
    Path(variables["CREDITOPS_FEAST_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    store = FeatureStore(repo_path=str(repo), config=RepoConfig(repo_path=repo, **raw))
    store.creditops_env = variables  # the definitions need the same backend choice
    return store


def apply(store: FeatureStore, contract: FeatureContract | None = None, bump: bool = False) -> None:
    """Register the Feast objects serving ``contract`` (default: the built-in ones the CLI applies).

    Each FeatureService pins its features' definition hashes; a registered one whose features changed is
    refused, or with ``bump`` applied as its next version beside it (:mod:`feast_repo.versioning`).
    """
    from feast_repo.versioning import stamp_and_check

    objects = definitions.contract_objects(contract or builtin_contract(), store.creditops_env)
    stamp_and_check(store, objects, bump=bump)
    store.apply(list(objects.values()))


def write_offline(tables: Mapping[str, pd.DataFrame], store: FeatureStore) -> None:
    """Write each feature table where the source of its view ``<name>_fv`` reads it (Parquet or Postgres)."""
    if store.config.offline_store.type == "postgres":
        with _pg_connect(store) as conn:
            for name, table in tables.items():
                _copy_table(conn, definitions.table_name(name), table)
        return
    for name, table in tables.items():
        table.to_parquet(
            definitions.parquet_path(store.creditops_env["CREDITOPS_FEAST_DATA_DIR"], name), index=False
        )


def materialize(
    store: FeatureStore,
    end: datetime,
    start: datetime | None = None,
    contract: FeatureContract | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
) -> None:
    """Load the latest row per entity with timestamp in ``[start, end]`` into the online store.

    Only the views of ``contract`` (default: the built-in four) are loaded. ``start`` defaults to ``end``
    minus the longest built-in view TTL, which covers every still-valid row. Given the feature ``tables``
    just written offline, a Redis online store is loaded by :func:`feast_repo.bulk.materialize_redis`
    (Feast's exact layout, ~10x faster); any other store goes through Feast's own ``materialize``.
    """
    contract = contract or builtin_contract()
    start = start or end - max(definitions.TTL.values()) - timedelta(days=1)
    if tables is not None:
        from feast_repo.bulk import materialize_redis

        views = set(contract.views)
        materialize_redis(store, {n: t for n, t in tables.items() if f"{n}_fv" in views}, end, start=start)
        return
    store.materialize(start_date=start, end_date=end, feature_views=contract.views)


def training_frame(
    store: FeatureStore, entity_df: pd.DataFrame, contract: FeatureContract | None = None
) -> pd.DataFrame:
    """Point-in-time correct training rows: ``entity_df``'s columns, then the contract's features in order.

    The features come through the contract's FeatureService (default ``credit_scoring_v1``). Only the join
    key, the timestamp and a row number go to the offline store (labels and protected attributes stay here,
    whatever their dtype); rows come back in ``entity_df`` order with a UTC timestamp.
    """
    contract = contract or builtin_contract()
    entities = entity_df.reset_index(drop=True)
    keys = pd.DataFrame(
        {
            contract.join_key: entities[contract.join_key],
            contract.timestamp: entities[contract.timestamp],
            "_row": range(len(entities)),
        }
    )
    service = store.get_feature_service(contract.service)
    features = store.get_historical_features(entity_df=keys, features=service).to_df()
    features = features.set_index("_row").sort_index()[contract.features]
    frame = pd.concat([entities, features.reset_index(drop=True)], axis=1)
    frame[contract.timestamp] = pd.to_datetime(frame[contract.timestamp], utc=True)
    return frame


class OnlineFeatures:
    """Callable ``ids -> float matrix`` through the contract's FeatureService (the serving hot path).

    On a Redis online store the service is read by :class:`feast_repo.direct.RedisServiceReader` (Feast's
    hashes, one round trip, ~0.2 ms for one applicant against ~1.1 ms for ``get_online_features``); elsewhere,
    or with ``direct=False``, by ``get_online_features`` with the FeatureService looked up once (Feast
    rebuilds it from the registry proto on every ``get_feature_service``, ~3-10 ms) and read with ``to_dict``
    (~0.4 ms against ~3 ms for ``to_df``). Rows come back in request order, columns in the contract's
    feature order; NaN = no value. Given ``service`` (and no contract), the features, their order and the
    join key are the ones the Feast registry holds for that service (what a server checks a model against).
    """

    def __init__(
        self,
        store: FeatureStore,
        contract: FeatureContract | None = None,
        direct: bool = True,
        service: str | None = None,
    ):
        from feast_repo.direct import reader_for

        self.store = store
        if service is not None and contract is None:  # what the Feast registry says the service serves
            self.service = store.get_feature_service(service)
            self.features = [f.name for p in self.service.feature_view_projections for f in p.features]
            key = store.get_feature_view(self.service.feature_view_projections[0].name).entity_columns[0]
            self.join_key = key.name
            int_key = key.dtype.to_value_type() in (ValueType.INT64, ValueType.INT32)
        else:
            contract = contract or builtin_contract()
            self.service = store.get_feature_service(contract.service)
            self.features = list(contract.features)
            self.join_key = contract.join_key
            int_key = contract.join_key_dtype == "int"
        self._cast = int if int_key else str
        self.direct = reader_for(store, self.service.name, self.features) if direct else None

    def __call__(self, ids: Sequence[int | str]) -> np.ndarray:
        """Current feature values of ``ids`` (one row each, request order)."""
        if self.direct is not None:
            return self.direct([self._cast(i) for i in ids])
        rows = [{self.join_key: self._cast(i)} for i in ids]
        values = self.store.get_online_features(features=self.service, entity_rows=rows).to_dict()
        return np.array([values[f] for f in self.features], dtype=np.float64).T  # None -> nan


def online_features(
    store: FeatureStore,
    ids: Sequence[int | str],
    contract: FeatureContract | None = None,
    direct: bool = True,
) -> pd.DataFrame:
    """Current model features for some entities: the join key + the contract's features, in order.

    ``direct=False`` forces Feast's ``get_online_features`` (see :class:`OnlineFeatures`).
    """
    lookup = OnlineFeatures(store, contract, direct=direct)
    frame = pd.DataFrame(lookup(ids), columns=lookup.features)
    frame.insert(0, lookup.join_key, [lookup._cast(i) for i in ids])
    return frame


def teardown(store: FeatureStore) -> None:
    """Remove the project's online data and infrastructure (Redis keys, SQLite tables) and its registry."""
    store.teardown()


def _pg_connect(store: FeatureStore) -> psycopg.Connection:
    cfg = store.config.offline_store
    return psycopg.connect(
        host=cfg.host,
        port=cfg.port,
        dbname=cfg.database,
        user=cfg.user,
        password=cfg.password or None,
        sslmode=cfg.sslmode or "prefer",
        autocommit=False,
    )


def _sql_type(dtype: object) -> str:
    if isinstance(dtype, pd.DatetimeTZDtype) or str(dtype).startswith("datetime64"):
        return "timestamptz"
    if pd.api.types.is_integer_dtype(dtype):
        return "bigint"
    return "double precision" if pd.api.types.is_numeric_dtype(dtype) else "text"


def _copy_table(conn: psycopg.Connection, name: str, table: pd.DataFrame) -> None:
    """Replace ``name`` with ``table`` using COPY (CSV blocks), then index it for point-in-time joins."""
    columns = ", ".join(f'"{c}" {_sql_type(t)}' for c, t in table.dtypes.items())
    with conn.cursor() as cur:
        cur.execute(f'DROP TABLE IF EXISTS "{name}"')
        cur.execute(f'CREATE TABLE "{name}" ({columns})')
        with cur.copy(f'COPY "{name}" FROM STDIN WITH (FORMAT csv)') as copy:
            for lo in range(0, len(table), _COPY_CHUNK_ROWS):
                buf = io.StringIO()
                table.iloc[lo : lo + _COPY_CHUNK_ROWS].to_csv(buf, header=False, index=False)
                copy.write(buf.getvalue())
        key, ts = table.columns[:2]  # every feature table starts with its join key and event timestamp
        cur.execute(f'CREATE INDEX ON "{name}" ("{key}", "{ts}")')
    conn.commit()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m feast_repo.store yaml|env [config.yaml]``: a feature_store.yaml, or the variables.

    ``yaml`` prints the complete Feast configuration of a creditops config (for ``feast -f FILE ...``);
    ``env`` prints the ``CREDITOPS_FEAST_*`` values as shell ``export`` lines.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("env", "yaml"):
        print("usage: python -m feast_repo.store yaml|env [creditops-config.yaml]", file=sys.stderr)
        return 2
    from creditops.config import load_config

    # resolved(): the data dir the demo filled (<workdir>/feast), not the repo's own default
    cfg = load_config(args[1] if len(args) > 1 else None).resolved().feast
    variables = feast_env(cfg)
    if args[0] == "yaml":
        repo = Path(cfg.repo_path or REPO_PATH)
        print(yaml.safe_dump(repo_config(repo, variables), sort_keys=False), end="")
        return 0
    for key, value in variables.items():
        print(f"export {key}='{value}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
