"""The real predictor over HTTP: Feast on Redis, audit on Postgres, V1 and V2, refusals, metrics."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import psycopg
import pytest

from creditops.artifact import load_bundle
from creditops.errors import CreditOpsError
from creditops.features.registry import model_feature_names
from creditops.governance.audit import TABLE, AuditLog
from feast_repo.store import REPO_PATH
from predictor.testing import feast_world, random_features, redis_address, running_server, tiny_bundle

FEATURES = model_feature_names()
MODEL = "credit"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, run_id: str, redis_url: str) -> tuple[dict, pd.DataFrame]:
    data_dir = tmp_path_factory.mktemp("feast")
    return feast_world(data_dir, f"creditops_test_{run_id}_pred", redis_address(redis_url), n_applicants=200)


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def audit_url(pg_url: str) -> str:
    return pg_url


@pytest.fixture(scope="module")
def server(world, bundle_dir: Path, audit_url: str) -> Iterator[str]:
    env, _ = world
    args = ["--bundle", str(bundle_dir), "--feast-repo", str(REPO_PATH), "--audit-url", audit_url]
    args += ["--max-batch", "100"]
    with running_server(args, env=env, model_name=MODEL) as base:
        yield base


@pytest.fixture(scope="module")
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as c:
        yield c


def v1(client: httpx.Client, body, **kw) -> httpx.Response:
    return client.post(f"/v1/models/{MODEL}:predict", json=body, **kw)


def v2(client: httpx.Client, inputs: list[dict], **kw) -> httpx.Response:
    return client.post(f"/v2/models/{MODEL}/infer", json={"id": "req-1", "inputs": inputs}, **kw)


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 if none)."""
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def test_health_metadata_and_openapi(client: httpx.Client) -> None:
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get(f"/v2/models/{MODEL}/ready").json()["ready"] is True
    meta = client.get(f"/v2/models/{MODEL}").json()
    names = [t["name"] for t in meta["inputs"]]
    assert names[:2] == ["applicant_id", "features"] and set(FEATURES) <= set(names)
    assert {"prediction_id", "pd", "score", "decision", "reasons"} == {t["name"] for t in meta["outputs"]}
    doc = client.get("/predictor/openapi.json").json()
    assert "/v1/models/{model_name}:predict" in doc["paths"]


def test_answers_match_the_bundle_and_every_answer_is_audited(
    client: httpx.Client, world, bundle_dir: Path, audit_url: str
) -> None:
    _, frame = world
    bundle = load_bundle(bundle_dir)
    audit = AuditLog.open(audit_url)
    before = audit.count()
    served = 0

    ids = [int(i) for i in frame["applicant_id"].head(5)]
    r = v1(client, {"instances": [{"applicant_id": ids[0]}]}, headers={"X-Caller-Id": "it-test"})
    assert r.status_code == 200, r.text
    p = r.json()["predictions"][0]
    assert p["applicant_id"] == ids[0] and p["decision"] in {"approve", "review", "decline"}
    expected = bundle.predict_pd(frame.set_index("applicant_id").loc[ids, FEATURES])
    assert p["pd"] == pytest.approx(expected[0], abs=1e-5)
    assert all(set(x) == {"feature", "value", "reason", "contribution"} for x in p["reasons"])
    served += 1

    r = v1(client, {"instances": [{"applicant_id": i} for i in ids]})
    assert r.status_code == 200, r.text
    assert [x["pd"] for x in r.json()["predictions"]] == pytest.approx(list(expected), abs=1e-5)
    served += len(ids)

    raw = random_features(3, seed=11)
    records = json.loads(raw.to_json(orient="records"))
    r = v1(client, {"instances": records})
    assert r.status_code == 200, r.text
    assert [x["pd"] for x in r.json()["predictions"]] == pytest.approx(list(bundle.predict_pd(raw)), abs=1e-5)
    served += 3

    r = v2(client, [{"name": "applicant_id", "shape": [2], "datatype": "INT64", "data": ids[:2]}])
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert out["pd"]["data"] == pytest.approx(list(expected[:2]), abs=1e-5)
    assert all(isinstance(json.loads(x), list) for x in out["reasons"]["data"])
    served += 2

    matrix = raw[FEATURES].to_numpy(dtype=float)
    r = v2(
        client,
        [
            {
                "name": "features",
                "shape": list(matrix.shape),
                "datatype": "FP64",
                "data": matrix.ravel().tolist(),
            }
        ],
    )
    assert r.status_code == 200, r.text
    served += len(matrix)

    per_feature = [
        {
            "name": f,
            "shape": [3],
            "datatype": "INT64" if raw[f].dtype.kind == "i" else "FP64",
            "data": raw[f].tolist(),
        }
        for f in FEATURES
    ]
    r = v2(client, per_feature)
    assert r.status_code == 200, r.text
    served += 3

    # refused requests in between must not reach the audit log
    assert v1(client, {"instances": [{"applicant_id": 987654321}]}).status_code == 404
    assert v1(client, {"instances": [{"income": 1.0}]}).status_code == 400

    assert audit.count() == before + served
    report = audit.verify()
    assert report.ok, report
    with psycopg.connect(audit_url) as conn:
        callers = dict(conn.execute(f"SELECT caller_id, count(*) FROM {TABLE} GROUP BY caller_id").fetchall())
    # anonymous mode: a caller-chosen X-Caller-Id is not an identity and is never recorded
    assert "it-test" not in callers and callers.get("anonymous", 0) >= served


BAD_V1 = [
    ("malformed_json", b"{not json", 400, "unrecognized request format"),
    ("unknown_id", {"instances": [{"applicant_id": 987654321}]}, 404, "987654321"),
    ("oversized", {"instances": [{"applicant_id": 1}] * 101}, 413, "maximum batch size"),
    ("extra_field", {"instances": [{"applicant_id": 1}], "colour": "red"}, 400, "colour"),
    ("missing_feature", {"instances": [{"age": 30}]}, 400, "income"),
    ("wrong_type", {"instances": [{"applicant_id": "one"}]}, 400, "applicant_id"),
    ("not_object", [1, 2], 400, "instances"),
    ("instances_not_list", {"instances": 5}, 400, "instances"),
]


@pytest.mark.parametrize(("case", "body", "status", "needle"), BAD_V1, ids=[c[0] for c in BAD_V1])
def test_v1_refusals(client: httpx.Client, audit_url: str, case: str, body, status: int, needle: str) -> None:
    before = AuditLog.open(audit_url).count()
    if isinstance(body, bytes):
        r = client.post(
            f"/v1/models/{MODEL}:predict", content=body, headers={"content-type": "application/json"}
        )
    else:
        r = v1(client, body)
    assert r.status_code == status, r.text
    assert needle.lower() in r.json()["error"].lower()
    assert AuditLog.open(audit_url).count() == before


BAD_V2 = [
    ("malformed_json", b"{nope", 422),
    ("not_inference_request", b'{"inputs": 3}', 422),
    (
        "nan_literal",
        b'{"inputs": [{"name": "applicant_id", "shape": [1], "datatype": "INT64", "data": [NaN]}]}',
        400,
    ),
    (
        "float_id",
        b'{"inputs": [{"name": "applicant_id", "shape": [1], "datatype": "FP64", "data": [1.5]}]}',
        400,
    ),
    (
        "bad_shape",
        b'{"inputs": [{"name": "applicant_id", "shape": [3], "datatype": "INT64", "data": [1]}]}',
        400,
    ),
    (
        "unknown_id",
        b'{"inputs": [{"name": "applicant_id", "shape": [1], "datatype": "INT64", "data": [987654321]}]}',
        404,
    ),
    (
        "string_data",
        b'{"inputs": [{"name": "applicant_id", "shape": [1], "datatype": "INT64", "data": ["x"]}]}',
        400,
    ),
    (
        "bad_datatype",
        b'{"inputs": [{"name": "applicant_id", "shape": [1], "datatype": "XX", "data": [1]}]}',
        400,
    ),
]


@pytest.mark.parametrize(("case", "body", "status"), BAD_V2, ids=[c[0] for c in BAD_V2])
def test_v2_refusals(client: httpx.Client, case: str, body: bytes, status: int) -> None:
    r = client.post(f"/v2/models/{MODEL}/infer", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["error"]


def test_metrics_move(client: httpx.Client, world) -> None:
    _, frame = world
    applicant = int(frame["applicant_id"].iloc[0])
    ok_before = metric(client, "creditops_predictor_requests_total", model=MODEL, protocol="v1", code="200")
    lat_before = metric(client, "creditops_predictor_request_seconds_count", model=MODEL, protocol="v1")
    err_before = metric(client, "creditops_predictor_errors_total", model=MODEL, reason="unknown_applicant")
    dec_before = metric(client, "creditops_predictor_decisions_total", model=MODEL)
    assert v1(client, {"instances": [{"applicant_id": applicant}] * 3}).status_code == 200
    assert v1(client, {"instances": [{"applicant_id": 987654321}]}).status_code == 404
    assert (
        metric(client, "creditops_predictor_requests_total", model=MODEL, protocol="v1", code="200")
        == ok_before + 1
    )
    assert (
        metric(client, "creditops_predictor_request_seconds_count", model=MODEL, protocol="v1")
        == lat_before + 2
    )
    assert (
        metric(client, "creditops_predictor_errors_total", model=MODEL, reason="unknown_applicant")
        == err_before + 1
    )
    assert metric(client, "creditops_predictor_decisions_total", model=MODEL) == dec_before + 3
    assert metric(client, "creditops_predictor_model_info", model=MODEL) == 1.0
    assert not math.isnan(metric(client, "creditops_predictor_request_seconds_sum", model=MODEL))


def test_a_model_whose_service_the_feast_repo_lacks_is_refused(
    world, bundle_dir: Path, tmp_path: Path
) -> None:
    env, _ = world
    other = tmp_path / "bundle"
    other.mkdir()
    for f in bundle_dir.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    manifest = json.loads((other / "manifest.json").read_text())
    contract = {**manifest["contract"], "service": "credit_scoring_v0"}
    changed = {**manifest, "feature_service": "credit_scoring_v0", "contract": contract}
    (other / "manifest.json").write_text(json.dumps(changed))
    args = [
        "--bundle",
        str(other),
        "--feast-repo",
        str(REPO_PATH),
        "--audit-url",
        f"sqlite:///{tmp_path}/a.db",
    ]
    with (
        pytest.raises(CreditOpsError, match="no feature service 'credit_scoring_v0'"),
        running_server(args, env=env),
    ):
        pass


# ------------------------------------------------------------------- a spec-trained model (German Credit)
@pytest.fixture(scope="module")
def german(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[dict], str]]:
    from predictor.testing import german_bundle

    bundle_dir, raw = german_bundle(tmp_path_factory.mktemp("german"))
    fields = load_bundle(bundle_dir).contract.raw_fields
    records = [
        {f: (v.item() if hasattr(v, "item") else v) for f, v in r.items()}
        for r in raw[fields].head(3).to_dict(orient="records")
    ]
    audit = f"sqlite:///{tmp_path_factory.mktemp('german-audit') / 'audit.db'}"
    with running_server(["--bundle", str(bundle_dir), "--audit-url", audit], model_name="german") as base:
        yield base, records, audit


def test_german_credit_over_v1_and_v2_with_raw_categoricals(german) -> None:
    base, records, audit = german
    with httpx.Client(base_url=base, timeout=30) as c:
        doc = c.get("/predictor/openapi.json")  # raised KeyError for a spec model before the contract
        assert doc.status_code == 200
        v1_answer = c.post("/v1/models/german:predict", json={"instances": records})
        assert v1_answer.status_code == 200, v1_answer.text
        pds = [p["pd"] for p in v1_answer.json()["predictions"]]
        meta = {t["name"]: t["datatype"] for t in c.get("/v2/models/german").json()["inputs"]}
        inputs = [
            {"name": f, "shape": [len(records)], "datatype": meta[f], "data": [r[f] for r in records]}
            for f in records[0]
        ]
        v2_answer = c.post("/v2/models/german/infer", json={"inputs": inputs})
        assert v2_answer.status_code == 200, v2_answer.text
        out = {o["name"]: o["data"] for o in v2_answer.json()["outputs"]}
        assert out["pd"] == pytest.approx(pds)
        bad = c.post("/v1/models/german:predict", json={"instances": [{**records[0], "purpose": "yacht"}]})
        assert bad.status_code == 400
        assert "purpose" in bad.json()["error"] and "car (new)" in bad.json()["error"]
        huge = c.post(
            "/v1/models/german:predict", json={"instances": [{**records[0], "credit_amount": 1e39}]}
        )
        assert huge.status_code == 400 and "credit_amount" in huge.json()["error"]
    log = AuditLog.open(audit)
    assert log.count() == 2 * len(records) and log.verify().ok
