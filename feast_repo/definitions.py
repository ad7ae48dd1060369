"""Feast objects for creditops, generated from ``creditops.features.registry`` (no hand-typed feature list).

Entity ``applicant`` (join key ``applicant_id``); per feature group a source ``<group>_source`` and a view
``<group>_fv`` (identity, behavioural and derived over a ``PushSource`` ``<group>_push``: the stream
consumer feeds them); the FeatureService ``credit_scoring_v1`` projects the views in registry order, so its
features are exactly ``model_feature_names()``. The offline backend decides the source class: Parquet files
under ``CREDITOPS_FEAST_DATA_DIR`` (default ``feast_repo/data``) or Postgres tables ``<group>_features``.

A dataset described by a spec gets the same shape from its
:class:`~creditops.features.contract.FeatureContract` (:func:`contract_objects`): entity ``<name>_record``
keyed on the spec's id column, source ``<name>_source`` (``<name>.parquet`` / table ``<name>_features``),
view ``<name>_fv`` and FeatureService ``<name>_v1``.

Request time: the RequestSource ``loan_request`` (``creditops.features.request.REQUEST_INPUTS``) feeds the
python-mode on-demand view ``loan_request_odfv`` together with ``identity_fv``; the FeatureService
``credit_request_v1`` is ``credit_scoring_v1``'s views plus that view.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, RequestSource
from feast.data_source import DataSource
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64
from feast.value_type import ValueType

from creditops.features import request
from creditops.features.contract import FeatureContract
from creditops.features.registry import ENTITY, FEATURE_SERVICE, GROUPS, JOIN_KEY, TIMESTAMP, features_in
from creditops.streaming.consumer import STREAM_GROUPS

DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "data"
# How long a row stays valid: declared application data for years, a monthly bureau snapshot for two
# months (one missed report is tolerated), account behaviour for a year.
TTL: dict[str, timedelta] = {
    "identity": timedelta(days=3650),
    "bureau": timedelta(days=62),
    "behavioural": timedelta(days=365),
    "derived": timedelta(days=365),
}


def table_name(group: str) -> str:
    """Postgres table holding one feature group."""
    return f"{group}_features"


def parquet_path(data_dir: str | Path, group: str) -> Path:
    """Parquet file holding one feature group."""
    return Path(data_dir).resolve() / f"{group}.parquet"


def _source(group: str, offline_store: str, data_dir: str | Path) -> DataSource:
    if offline_store == "postgres":
        return PostgreSQLSource(name=f"{group}_source", table=table_name(group), timestamp_field=TIMESTAMP)
    return FileSource(
        name=f"{group}_source", path=str(parquet_path(data_dir, group)), timestamp_field=TIMESTAMP
    )


def feast_objects(env: Mapping[str, str]) -> dict[str, object]:
    """Every Feast object of the repo, by name, for the backends named in ``env``."""
    offline = env.get("CREDITOPS_FEAST_OFFLINE_STORE", "file")
    data_dir = env.get("CREDITOPS_FEAST_DATA_DIR", str(DEFAULT_DATA_DIR))
    applicant = Entity(
        name=ENTITY, join_keys=[JOIN_KEY], value_type=ValueType.INT64, description="A loan applicant."
    )
    objects: dict[str, object] = {ENTITY: applicant}
    views = []
    for group in GROUPS:
        source = _source(group, offline, data_dir)
        if group in STREAM_GROUPS:  # the stream consumer feeds it too (creditops.streaming)
            source = PushSource(name=f"{group}_push", batch_source=source)
        view = FeatureView(
            name=f"{group}_fv",
            entities=[applicant],
            ttl=TTL[group],
            schema=[
                Field(name=f.name, dtype=Int64 if f.dtype == "int" else Float64, description=f.description)
                for f in features_in(group)
            ],
            source=source,
            online=True,
            tags={"group": group},
        )
        objects[view.name] = view
        views.append(view)
    objects[FEATURE_SERVICE] = FeatureService(
        name=FEATURE_SERVICE, features=views, description="Model inputs."
    )
    objects.update(_request_objects(views))
    return objects


def _request_objects(views: list[FeatureView]) -> dict[str, object]:
    """The RequestSource, on-demand view and FeatureService of the request-time features.

    ``views`` are the model's views (``credit_scoring_v1``); the on-demand view reads only ``income`` and
    ``requested_amount`` of ``identity_fv``, and its body is the core :mod:`creditops.features.request`.
    """
    (identity_fv,) = (v for v in views if v.name == "identity_fv")
    loan_request = RequestSource(
        name="loan_request",
        schema=[
            Field(name=i.name, dtype=Int64 if i.dtype == "int" else Float64, description=i.description)
            for i in request.REQUEST_INPUTS
        ],
    )

    @on_demand_feature_view(
        sources=[loan_request, identity_fv[["income", "requested_amount"]]],
        # no field descriptions: Feast 0.67 compares them when checking the schema against the inferred one
        schema=[
            Field(name=f.name, dtype=Int64 if f.dtype == "int" else Float64) for f in request.REQUEST_FEATURES
        ],
        mode="python",
        description="Request-time features (creditops.features.request).",
    )
    def loan_request_odfv(inputs: dict[str, Any]) -> dict[str, Any]:
        # Imported here, not read as a global: dill would pickle the module's globals into the registry and
        # write that snapshot back over the running code whenever the view is loaded.
        from creditops.features.request import compute_request_features

        return compute_request_features(inputs)

    service = FeatureService(
        name=request.REQUEST_FEATURE_SERVICE,
        features=[*views, loan_request_odfv],
        description="Model inputs plus request-time features.",
    )
    return {loan_request.name: loan_request, loan_request_odfv.name: loan_request_odfv, service.name: service}


def contract_objects(contract: FeatureContract, env: Mapping[str, str]) -> dict[str, object]:
    """The Feast objects serving ``contract``: the built-in repo, or one entity/view/service per spec dataset.

    A spec dataset's rows are applications at their own time, so its view never expires (``ttl`` 0).
    """
    if contract.kind == "builtin":
        return feast_objects(env)
    offline = env.get("CREDITOPS_FEAST_OFFLINE_STORE", "file")
    data_dir = env.get("CREDITOPS_FEAST_DATA_DIR", str(DEFAULT_DATA_DIR))
    entity = Entity(
        name=contract.entity,
        join_keys=[contract.join_key],
        value_type=ValueType.INT64 if contract.join_key_dtype == "int" else ValueType.STRING,
        description=f"A row of dataset {contract.name}.",
    )
    (table,) = contract.tables
    view = FeatureView(
        name=f"{table}_fv",
        entities=[entity],
        ttl=timedelta(0),
        schema=[
            Field(name=f, dtype=Int64 if contract.dtypes[f] == "int" else Float64) for f in contract.features
        ],
        source=_source(table, offline, data_dir),
        online=True,
        tags={"dataset": contract.name},
    )
    service = FeatureService(
        name=contract.service, features=[view], description=f"{contract.name} model inputs."
    )
    return {entity.name: entity, view.name: view, service.name: service}


_OBJECTS = feast_objects(os.environ)
applicant = _OBJECTS[ENTITY]
identity_fv = _OBJECTS["identity_fv"]
bureau_fv = _OBJECTS["bureau_fv"]
behavioural_fv = _OBJECTS["behavioural_fv"]
derived_fv = _OBJECTS["derived_fv"]
credit_scoring_v1 = _OBJECTS[FEATURE_SERVICE]
loan_request = _OBJECTS["loan_request"]
loan_request_odfv = _OBJECTS["loan_request_odfv"]
credit_request_v1 = _OBJECTS[request.REQUEST_FEATURE_SERVICE]
