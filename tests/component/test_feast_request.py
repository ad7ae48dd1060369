from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from feast.errors import RequestDataNotFoundInEntityRowsException

from creditops.config import FeastConfig
from creditops.data.synthetic import generate_world
from creditops.features import request
from creditops.features.build import build_feature_tables
from creditops.features.registry import FEATURE_SERVICE, model_feature_names
from feast_repo import store as fs

REPO = Path(fs.__file__).parent


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, run_id):
    """A SQLite store with a small world applied and materialized, plus its identity table."""
    tmp = tmp_path_factory.mktemp("feast_request")
    repo = tmp / "repo"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    world = generate_world(30, seed=5)
    tables = build_feature_tables(world)
    store = fs.open_store(repo, FeastConfig(project=f"creditops_test_{run_id}_req"), data_dir=tmp / "d")
    fs.write_offline(tables, store)
    fs.apply(store)
    fs.materialize(store, world.as_of.to_pydatetime())
    identity = tables["identity"].sort_values("event_timestamp").groupby("applicant_id").last()
    yield store, identity
    fs.teardown(store)


def test_service_is_the_model_contract_plus_the_odfv(loaded):
    store, _ = loaded
    scoring = store.get_feature_service(FEATURE_SERVICE)
    service = store.get_feature_service(request.REQUEST_FEATURE_SERVICE)
    projections = service.feature_view_projections
    assert [p.name for p in projections] == [
        *(p.name for p in scoring.feature_view_projections),
        "loan_request_odfv",
    ]
    refs = [f.name for p in projections for f in p.features]
    assert refs == [*model_feature_names(), *request.request_feature_names()]
    odfv = store.get_on_demand_feature_view("loan_request_odfv")
    assert odfv.mode == "python"
    assert set(odfv.get_request_data_schema()) == {i.name for i in request.REQUEST_INPUTS}


def test_online_values_equal_the_core_functions(loaded):
    store, identity = loaded
    ids = identity.index[:3].tolist()
    asks = [(15_000.0, 24), (2_500.0, 0), (40_000.0, 60)]
    rows = [
        {"applicant_id": int(i), "request_amount": amount, "request_term_months": term}
        for i, (amount, term) in zip(ids, asks, strict=True)
    ]
    service = store.get_feature_service(request.REQUEST_FEATURE_SERVICE)
    online = store.get_online_features(features=service, entity_rows=rows).to_dict()

    expected = request.compute_request_features(
        {
            "request_amount": [a for a, _ in asks],
            "request_term_months": [t for _, t in asks],
            "income": identity.loc[ids, "income"].tolist(),
            "requested_amount": identity.loc[ids, "requested_amount"].tolist(),
        }
    )
    for name in request.request_feature_names():
        assert online[name] == pytest.approx(expected[name]), name
    # the model's inputs are untouched: identity values come from the store, not from the request
    assert online["requested_amount"] == identity.loc[ids, "requested_amount"].tolist()
    assert online["loan_term_months"] == identity.loc[ids, "loan_term_months"].tolist()
    assert set(model_feature_names()) <= set(online)


def test_missing_request_field_is_a_clear_error(loaded):
    store, identity = loaded
    service = store.get_feature_service(request.REQUEST_FEATURE_SERVICE)
    row = {"applicant_id": int(identity.index[0]), "request_amount": 1_000.0}
    with pytest.raises(RequestDataNotFoundInEntityRowsException, match="request_term_months"):
        store.get_online_features(features=service, entity_rows=[row])
