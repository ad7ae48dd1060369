"""CreditPredictor in-process: a tiny real bundle, a sqlite audit log, V1 and V2 payloads, refusals."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import numpy as np
import pytest
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse
from prometheus_client import REGISTRY

from creditops.artifact import Bundle, load_bundle, read_manifest
from creditops.errors import BundleError
from creditops.features.registry import model_feature_names
from creditops.governance.audit import AuditLog, AuditWriter
from predictor.errors import AuditUnavailable, PredictorError
from predictor.model import CreditPredictor
from predictor.online import CoalescingLookup
from predictor.testing import random_features, tiny_bundle

FEATURES = model_feature_names()


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def audit_log(tmp_path_factory: pytest.TempPathFactory) -> AuditLog:
    return AuditLog.open(f"sqlite:///{tmp_path_factory.mktemp('audit') / 'audit.db'}")


@pytest.fixture(scope="module")
def predictor(bundle_dir: Path, audit_log: AuditLog) -> CreditPredictor:
    model = CreditPredictor(
        "credit", bundle=load_bundle(bundle_dir), audit=AuditWriter(audit_log), max_batch=50
    )
    assert model.load() and model.ready
    return model


def rows(n: int, seed: int = 1) -> list[dict]:
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
        for r in random_features(n, seed).to_dict(orient="records")
    ]


def call(model: CreditPredictor, body, caller: str | None = None):
    headers = {"x-caller-id": caller} if caller else {}
    response, _ = asyncio.run(model(body, headers))
    return response


def check_prediction(p: dict, version: str) -> None:
    assert set(p) >= {"prediction_id", "pd", "score", "decision", "reasons", "model_version"}
    assert 0.0 <= p["pd"] <= 1.0 and math.isfinite(p["score"])
    assert p["decision"] in {"approve", "review", "decline"}
    assert p["model_version"] == version
    for r in p["reasons"]:
        assert r["feature"] in FEATURES and r["reason"] and r["contribution"] > 0


def test_v1_single_and_batch_are_answered_and_audited(
    predictor: CreditPredictor, audit_log: AuditLog
) -> None:
    before = audit_log.count()
    one = call(predictor, {"instances": rows(1)}, caller="team-a")
    assert len(one["predictions"]) == 1
    check_prediction(one["predictions"][0], predictor.model_version)
    many = call(predictor, {"instances": rows(7, seed=2)})
    assert len(many["predictions"]) == 7
    ids = {p["prediction_id"] for p in one["predictions"] + many["predictions"]}
    assert len(ids) == 8
    assert audit_log.count() == before + 8
    assert audit_log.verify().ok


def test_v1_matches_the_bundle(predictor: CreditPredictor, bundle_dir: Path) -> None:
    frame = random_features(5, seed=3)
    answer = call(predictor, {"instances": rows(5, seed=3)})
    expected = load_bundle(bundle_dir).predict_pd(frame)
    assert [p["pd"] for p in answer["predictions"]] == pytest.approx(list(expected), abs=1e-6)


@pytest.mark.parametrize("layout", ["per_feature", "features_tensor"])
def test_v2_layouts(predictor: CreditPredictor, audit_log: AuditLog, layout: str) -> None:
    frame = random_features(3, seed=4)
    if layout == "per_feature":
        inputs = [
            InferInput(f, [3], "INT64" if frame[f].dtype.kind == "i" else "FP64", data=frame[f].tolist())
            for f in FEATURES
        ]
    else:
        inputs = [
            InferInput(
                "features", [3, len(FEATURES)], "FP64", data=frame[FEATURES].to_numpy().ravel().tolist()
            )
        ]
    before = audit_log.count()
    response = call(predictor, InferRequest("credit", inputs, request_id="r-1"))
    assert isinstance(response, InferResponse)
    out = {o.name: o for o in response.outputs}
    assert set(out) == {"prediction_id", "pd", "score", "decision", "reasons"}
    assert all(o.shape == [3] for o in out.values())
    expected = load_bundle(predictor.bundle.path).predict_pd(frame)
    assert list(out["pd"].data) == pytest.approx(list(expected), abs=1e-5)
    assert all(isinstance(json.loads(r), list) for r in out["reasons"].data)
    assert response.model_version == predictor.model_version
    assert audit_log.count() == before + 3


def _feature_row(**override) -> dict:
    row = rows(1, seed=9)[0]
    row.update(override)
    return row


def _without(name: str) -> dict:
    row = rows(1, seed=9)[0]
    del row[name]
    return row


V1_BAD = [
    ("not_an_object", ["x"], 400, "JSON object"),
    ("no_instances", {"rows": []}, 400, "rows"),
    ("instances_not_list", {"instances": {"a": 1}}, 400, "instances"),
    ("empty", {"instances": []}, 400, "empty"),
    ("instance_not_object", {"instances": [3]}, 400, "instance 0"),
    ("missing_feature", {"instances": [_without("income")]}, 400, "income"),
    ("extra_feature", {"instances": [_feature_row(shoe_size=42)]}, 400, "shoe_size"),
    ("wrong_type", {"instances": [_feature_row(num_dependents="old")]}, 400, "num_dependents"),
    ("bool_value", {"instances": [_feature_row(income=True)]}, 400, "income"),
    ("inf", {"instances": [_feature_row(total_debt=float("inf"))]}, 400, "total_debt"),
    ("beyond_float32", {"instances": [_feature_row(total_debt=1e39)]}, 400, "total_debt"),
    ("out_of_range", {"instances": [_feature_row(credit_score=9000)]}, 400, "credit_score"),
    ("too_many", {"instances": [{"applicant_id": i} for i in range(51)]}, 413, "maximum batch size"),
    ("ids_without_store", {"instances": [{"applicant_id": 1}]}, 400, "feature store"),
    ("id_not_int", {"instances": [{"applicant_id": "12"}]}, 400, "applicant_id"),
    ("negative_id", {"instances": [{"applicant_id": -5}]}, 400, "applicant_id"),
    ("id_with_features", {"instances": [{"applicant_id": 1, "age": 30}]}, 400, "applicant_id"),
]


@pytest.mark.parametrize(("case", "body", "status", "needle"), V1_BAD, ids=[c[0] for c in V1_BAD])
def test_v1_bad_input_is_refused_and_not_audited(
    predictor: CreditPredictor, audit_log: AuditLog, case: str, body, status: int, needle: str
) -> None:
    before = audit_log.count()
    with pytest.raises(PredictorError) as err:
        call(predictor, body)
    assert err.value.status == status
    assert needle.lower() in str(err.value).lower()
    assert audit_log.count() == before


def _v2(*inputs: InferInput) -> InferRequest:
    return InferRequest("credit", list(inputs))


V2_BAD = [
    ("no_inputs", _v2(), "no inputs"),
    ("id_as_float", _v2(InferInput("applicant_id", [1], "FP32", data=[1.5])), "INT64"),
    (
        "id_with_others",
        _v2(
            InferInput("applicant_id", [1], "INT64", data=[1]),
            InferInput("num_dependents", [1], "INT64", data=[2]),
        ),
        "alone",
    ),
    ("shape_mismatch", _v2(InferInput("features", [1, len(FEATURES)], "FP32", data=[1.0])), "shape"),
    ("wrong_width", _v2(InferInput("features", [1, 3], "FP32", data=[1.0, 2.0, 3.0])), "features"),
    ("string_data", _v2(InferInput("features", [1, 1], "FP32", data=["x"])), "numbers"),
    ("bytes_tensor", _v2(InferInput("applicant_id", [1], "BYTES", data=["1"])), "INT64"),
    ("missing_inputs", _v2(InferInput("num_dependents", [1], "INT64", data=[2])), "missing input"),
    ("unknown_input", _v2(InferInput("shoe_size", [1], "INT64", data=[42])), "shoe_size"),
    (
        "duplicate",
        _v2(
            InferInput("num_dependents", [1], "INT64", data=[2]),
            InferInput("num_dependents", [1], "INT64", data=[2]),
        ),
        "duplicate",
    ),
]


@pytest.mark.parametrize(("case", "request_", "needle"), V2_BAD, ids=[c[0] for c in V2_BAD])
def test_v2_bad_input_is_refused(
    predictor: CreditPredictor, audit_log: AuditLog, case, request_, needle
) -> None:
    before = audit_log.count()
    with pytest.raises(PredictorError) as err:
        call(predictor, request_)
    assert 400 <= err.value.status < 500
    assert needle.lower() in str(err.value).lower()
    assert audit_log.count() == before


def test_v2_overflow_in_features_tensor_names_the_feature(predictor: CreditPredictor) -> None:
    values = random_features(1, seed=5)[FEATURES].to_numpy(dtype=float).ravel().tolist()
    values[FEATURES.index("income")] = 1e39  # finite, beyond float32: a 400, never inf nor a 503
    with pytest.raises(PredictorError, match="income") as err:
        call(predictor, _v2(InferInput("features", [1, len(FEATURES)], "FP64", data=values)))
    assert err.value.status == 400


def test_null_and_nan_are_scored_as_missing_like_rows_read_by_id(
    predictor: CreditPredictor, audit_log: AuditLog, bundle_dir: Path
) -> None:
    """The model was trained with missing values and scores them by id; a raw row with them is scored too."""
    row, nan_row = _feature_row(income=None), _feature_row(income=float("nan"))
    answer = call(predictor, {"instances": [row, nan_row]})
    frame = random_features(1, seed=9).astype(float)
    frame.loc[0, "income"] = np.nan
    expected = float(load_bundle(bundle_dir).predict_pd(frame)[0])
    assert [p["pd"] for p in answer["predictions"]] == pytest.approx([expected, expected], abs=1e-6)
    assert audit_log.verify().ok  # NaN is recorded as null, never an audit failure


class _BrokenWriter:
    """Failure injection: an audit store that is down."""

    async def write(self, records) -> None:
        raise ConnectionError("audit database unreachable")


def test_audit_failure_fails_the_request(bundle_dir: Path) -> None:
    model = CreditPredictor("credit-broken-audit", bundle=load_bundle(bundle_dir), audit=_BrokenWriter())
    model.load()
    with pytest.raises(AuditUnavailable, match="audit"):
        call(model, {"instances": rows(2)})


def test_load_refuses_a_bundle_from_another_feature_service(bundle_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "bundle"
    other.mkdir()
    for f in bundle_dir.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    manifest = read_manifest(other)
    contract = manifest.contract.model_copy(update={"service": "credit_scoring_v0"})
    manifest = manifest.model_copy(update={"feature_service": "credit_scoring_v0", "contract": contract})
    (other / "manifest.json").write_text(manifest.model_dump_json())
    model = CreditPredictor(
        "credit-x",
        bundle_dir=str(other),
        feature_service="credit_scoring_v1",  # the endpoint is bound to the built-in service
        audit_url=f"sqlite:///{tmp_path / 'a.db'}",
    )
    with pytest.raises(BundleError, match="credit_scoring_v0"):
        model.load()
    assert not model.ready
    # unbound, the endpoint serves the model's own service: raw features only, checked against the manifest
    unbound = CreditPredictor("credit-x", bundle_dir=str(other), audit_url=f"sqlite:///{tmp_path / 'b.db'}")
    assert unbound.load() and unbound.feature_service == "credit_scoring_v0"


def test_load_refuses_a_bundle_missing_a_service_feature(bundle_dir: Path, tmp_path: Path) -> None:
    bundle = load_bundle(bundle_dir)
    short = bundle.manifest.model_copy(update={"features": bundle.manifest.features[:-1]})
    model = CreditPredictor(
        "credit-y", bundle=Bundle(bundle.booster, short, bundle.reference), audit_url="sqlite:///:memory:"
    )
    with pytest.raises(BundleError, match=f"missing feature.*{FEATURES[-1]}"):
        model.load()
    assert not model.ready


def test_metadata_and_metrics(predictor: CreditPredictor) -> None:
    names = [t["name"] for t in predictor.get_input_types()]
    assert names[:2] == ["applicant_id", "features"] and set(FEATURES) <= set(names)
    assert [t["name"] for t in predictor.get_output_types()] == [
        "prediction_id",
        "pd",
        "score",
        "decision",
        "reasons",
    ]
    info = REGISTRY.get_sample_value(
        "creditops_predictor_model_info",
        {"model": "credit", "model_version": predictor.model_version, "feature_service": "credit_scoring_v1"},
    )
    assert info == 1.0
    answer = call(predictor, {"instances": rows(4, seed=6)})
    decision = answer["predictions"][0]["decision"]
    labels = {"model": "credit", "decision": decision}
    before = REGISTRY.get_sample_value("creditops_predictor_decisions_total", labels) or 0.0
    call(predictor, {"instances": rows(4, seed=6)})
    after = REGISTRY.get_sample_value("creditops_predictor_decisions_total", labels)
    assert after >= before + 1


def test_coalescing_lookup_merges_concurrent_requests_and_shares_failures() -> None:
    calls: list[list[int]] = []

    def lookup(ids: list[int]) -> np.ndarray:
        calls.append(list(ids))
        if 99 in ids:
            raise ConnectionError("redis down")
        return np.array([[float(i), -float(i)] for i in ids])

    merged = CoalescingLookup(lookup)

    async def concurrent():
        return await asyncio.gather(merged([1, 2]), merged([3]), merged([4, 5, 6]))

    out = asyncio.run(concurrent())
    assert calls == [[1, 2, 3, 4, 5, 6]]
    assert [o[:, 0].tolist() for o in out] == [[1.0, 2.0], [3.0], [4.0, 5.0, 6.0]]

    async def failing():
        return await asyncio.gather(merged([7]), merged([99]), return_exceptions=True)

    results = asyncio.run(failing())
    assert all(isinstance(r, ConnectionError) for r in results)


def test_server_process_keeps_metrics_in_process(tmp_path: Path) -> None:
    # A parent that imported Feast exports PROMETHEUS_MULTIPROC_DIR; the server must not inherit that mode.
    import subprocess
    import sys

    kserve_dir = Path(__file__).resolve().parents[2] / "kserve"
    code = "import predictor.__main__, prometheus_client.values as v; print(v.ValueClass.__name__)"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(kserve_dir), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "MutexValue"


# ------------------------------------------------------------------- a spec-trained model (German Credit)
@pytest.fixture(scope="module")
def german(tmp_path_factory: pytest.TempPathFactory, audit_log: AuditLog):
    from predictor.testing import german_bundle

    bundle_dir, raw = german_bundle(tmp_path_factory.mktemp("german"))
    model = CreditPredictor("german", bundle=load_bundle(bundle_dir), audit=AuditWriter(audit_log))
    assert model.load()
    fields = model.contract.raw_fields
    records = [
        {f: (v.item() if hasattr(v, "item") else v) for f, v in r.items()}
        for r in raw[fields].head(5).to_dict(orient="records")
    ]
    expected = model.bundle.predict_pd(model.encoder.encode_records(records))
    return model, records, expected


def test_german_credit_v1_takes_raw_categorical_values(german, audit_log: AuditLog) -> None:
    model, records, expected = german
    assert records[0]["purpose"] in model.contract.encodings["purpose"]  # e.g. "car (new)", a raw value
    before = audit_log.count()
    answer = call(model, {"instances": records})
    assert [p["pd"] for p in answer["predictions"]] == pytest.approx(list(expected), abs=1e-6)
    fields = set(model.contract.raw_fields)
    for p, rec in zip(answer["predictions"], records, strict=True):
        for r in p["reasons"]:
            assert r["feature"] in fields and r["contribution"] > 0  # raw fields, never a one-hot column
            if r["feature"] in model.contract.encodings:
                held = rec[r["feature"]]
                own = model.contract.category_reasons.get(r["feature"], {}).get(held)
                assert r["value"] == held  # the category the applicant holds, with the spec's text if any
                assert r["reason"] == own if own else held in r["reason"]
    assert audit_log.count() == before + 5
    stored = audit_log.read_inputs(limit=5)
    assert set(stored["purpose"]) <= set(model.contract.encodings["purpose"])  # audited as sent


def test_german_credit_v2_takes_categoricals_as_bytes(german) -> None:
    model, records, expected = german
    meta = {t["name"]: t["datatype"] for t in model.get_input_types()}
    assert meta["purpose"] == "BYTES" and meta["duration_in_month"] == "INT64"
    inputs = []
    for f in model.contract.raw_fields:
        values = [r[f] for r in records]
        dtype = "BYTES" if f in model.contract.encodings else ("INT64" if meta[f] == "INT64" else "FP64")
        inputs.append(InferInput(f, [len(values)], dtype, data=values))
    response = call(model, InferRequest("german", inputs))
    out = {o.name: o for o in response.outputs}
    assert list(out["pd"].data) == pytest.approx(list(expected), abs=1e-6)


def test_german_credit_unknown_category_names_field_and_allowed_values(german) -> None:
    model, records, _ = german
    with pytest.raises(PredictorError) as err:
        call(model, {"instances": [{**records[0], "purpose": "spaceship"}]})
    assert err.value.status == 400
    message = str(err.value)
    assert "purpose" in message and "spaceship" in message and "'car (new)'" in message
    inputs = [
        InferInput(f, [1], "BYTES" if f in model.contract.encodings else "FP64", data=[records[0][f]])
        for f in model.contract.raw_fields
    ]
    inputs[[i.name for i in inputs].index("purpose")] = InferInput("purpose", [1], "FP64", data=[1.0])
    with pytest.raises(PredictorError, match="purpose.*BYTES"):
        call(model, InferRequest("german", inputs))


def test_german_credit_openapi_document_describes_the_contract(german) -> None:
    from predictor.openapi import openapi_document

    model, _, _ = german
    doc = openapi_document(model.name, model.contract, model.max_batch)  # KeyError before contracts
    body = doc["paths"]["/v1/models/{model_name}:predict"]["post"]["requestBody"]["content"]
    by_fields = body["application/json"]["schema"]["properties"]["instances"]["items"]["oneOf"][1]
    assert set(by_fields["required"]) == set(model.contract.raw_fields)
    assert by_fields["properties"]["purpose"]["enum"] == list(model.contract.encodings["purpose"])
    assert all(
        "maximum" in p for f, p in by_fields["properties"].items() if f not in model.contract.encodings
    )
