"""The explainer kserve.Model in-process (load + explain) and once over HTTP in a real ModelServer."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from governance_helpers import FEATURES, make_bundle
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from creditops.artifact import load_bundle
from creditops.errors import BundleError
from creditops.serve_local import free_port, running_process
from explainer.model import CreditExplainer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from predictor.testing import embed_contract

    return embed_contract(make_bundle(tmp_path_factory.mktemp("explainer") / "bundle", n=1500)[0])


@pytest.fixture(scope="module")
def explainer(bundle_dir: Path) -> CreditExplainer:
    model = CreditExplainer("credit-pd", bundle_dir)
    assert model.load() and model.ready
    return model


def _instances(bundle_dir: Path, n: int = 5) -> list[dict[str, float]]:
    reference = load_bundle(bundle_dir).reference
    return reference[FEATURES].head(n).to_dict(orient="records")


def test_explain_returns_additive_contributions_pd_and_reasons(
    explainer: CreditExplainer, bundle_dir: Path
) -> None:
    instances = _instances(bundle_dir)
    out = explainer.explain({"instances": instances})
    bundle = load_bundle(bundle_dir)
    expected = bundle.contributions(bundle.reference[FEATURES].head(5))  # xgboost pred_contribs
    assert out["backend"] == "treeshap" and out["units"] == "log-odds"
    assert len(out["explanations"]) == 5
    pds = bundle.predict_pd(bundle.reference[FEATURES].head(5))
    for i, explanation in enumerate(out["explanations"]):
        assert list(explanation["contributions"]) == FEATURES
        total = explanation["base_value"] + sum(explanation["contributions"].values())
        assert total == pytest.approx(explanation["margin"], abs=1e-4)
        np.testing.assert_allclose(
            [explanation["contributions"][f] for f in FEATURES], expected.iloc[i][FEATURES], atol=1e-4
        )
        assert explanation["base_value"] == pytest.approx(expected.iloc[i]["bias"], abs=1e-4)
        assert explanation["pd"] == pytest.approx(pds[i])
        reasons = explanation["reasons"]
        assert len(reasons) <= 4
        assert all(r["contribution"] > 0 for r in reasons)
        assert [r["contribution"] for r in reasons] == sorted(
            (r["contribution"] for r in reasons), reverse=True
        )
        for r in reasons:
            assert r["contribution"] == pytest.approx(explanation["contributions"][r["feature"]], abs=1e-6)
            assert r["value"] == pytest.approx(instances[i][r["feature"]], rel=1e-6)


def test_high_risk_applicant_gets_the_utilisation_reason(explainer: CreditExplainer) -> None:
    risky = {"utilisation": 0.99, "income_k": 15.0, "noise": 0.0, "num_late": 4}
    (explanation,) = explainer.explain({"instances": [risky]})["explanations"]
    assert explanation["reasons"][0]["feature"] in {"utilisation", "num_late"}
    assert "Credit utilisation is high" in [r["reason"] for r in explanation["reasons"]]


def test_v2_tensor_payload_and_row_lists_give_the_same_answer(
    explainer: CreditExplainer, bundle_dir: Path
) -> None:
    instances = _instances(bundle_dir, 3)
    matrix = np.array([[row[f] for f in FEATURES] for row in instances])
    per_feature = InferRequest(
        "credit-pd", [InferInput(f, [3], "FP64", matrix[:, j].tolist()) for j, f in enumerate(FEATURES)]
    )
    one_tensor = InferRequest("credit-pd", [InferInput("input-0", [3, 4], "FP64", matrix.tolist())])
    as_lists = {"instances": matrix.tolist()}
    raw_body = json.dumps(
        {"instances": instances}
    ).encode()  # what kserve passes on without a JSON content type
    baseline = explainer.explain({"instances": instances})
    for payload in (per_feature, one_tensor, as_lists, raw_body):
        assert explainer.explain(payload) == baseline


def test_null_is_a_missing_value(explainer: CreditExplainer) -> None:
    row = {"utilisation": 0.5, "income_k": None, "noise": 0.0, "num_late": 1}
    (explanation,) = explainer.explain({"instances": [row]})["explanations"]
    assert 0.0 <= explanation["pd"] <= 1.0


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"rows": []}, '"instances"'),
        (b"{not json", "request body is not JSON"),
        ({"instances": []}, "non-empty"),
        (
            {"instances": [{"utilisation": 0.5, "income_k": 40.0, "noise": 0.0}]},
            "instances[0]: missing feature 'num_late'",
        ),
        (
            {"instances": [{"utilisation": 0.5, "income_k": 40.0, "noise": 0.0, "num_late": 1, "sex": 1}]},
            "instances[0]: unknown field 'sex'",
        ),
        (
            {"instances": [{"utilisation": "high", "income_k": 40.0, "noise": 0.0, "num_late": 1}]},
            "instances[0].utilisation: expected a number",
        ),
        ({"instances": [[0.5, 40.0, 0.0, float("inf")]]}, "instances[0].num_late: must be finite"),
        ({"instances": [[0.5, 40.0]]}, "instances[0]: expected 4 values"),
    ],
)
def test_bad_input_is_invalid_input_naming_the_field(
    explainer: CreditExplainer, payload: dict, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        explainer.explain(payload)


def test_load_rejects_a_broken_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        CreditExplainer("credit-pd", tmp_path / "nope").load()
    with pytest.raises(ValueError, match="backend"):
        CreditExplainer("credit-pd", tmp_path, backend="lime")


def test_alibi_backend_outside_the_alibi_env_says_so(bundle_dir: Path) -> None:
    with pytest.raises(RuntimeError, match="needs the alibi env"):
        CreditExplainer("credit-pd", bundle_dir, backend="alibi").load()


def test_explain_through_the_kserve_call_path(explainer: CreditExplainer, bundle_dir: Path) -> None:
    from kserve.model import InferenceVerb

    response, _ = asyncio.run(explainer({"instances": _instances(bundle_dir, 1)}, {}, InferenceVerb.EXPLAIN))
    assert len(response["explanations"]) == 1


def test_explain_over_http(bundle_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "kserve"), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "explainer", "--bundle", str(bundle_dir), "--model_name", "credit-pd",
           "--http_port", str(port), "--enable_grpc", "false", "--workers", "1"]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    ready = f"{base}/v2/models/credit-pd/ready"
    with running_process(cmd, env, ready, tmp_path / "explainer.log", 60), httpx.Client(timeout=5) as client:
        ok = client.post(f"{base}/v1/models/credit-pd:explain", json={"instances": _instances(bundle_dir, 2)})
        assert ok.status_code == 200, ok.text
        assert len(ok.json()["explanations"]) == 2
        bad = client.post(f"{base}/v1/models/credit-pd:explain", json={"instances": [{"utilisation": 1}]})
        assert bad.status_code == 400
        assert "missing feature 'income_k'" in bad.json()["error"]


def test_bundle_without_contract_is_refused(tmp_path: Path) -> None:
    old = make_bundle(tmp_path / "old", n=300)[0]  # written the old way: no contract in the manifest
    with pytest.raises(BundleError, match="no feature contract"):
        CreditExplainer("credit-pd", old).load()


@pytest.fixture(scope="module")
def german(tmp_path_factory: pytest.TempPathFactory):
    from predictor.testing import german_bundle

    bundle_dir, raw = german_bundle(tmp_path_factory.mktemp("german-explainer"))
    model = CreditExplainer("german", bundle_dir)
    assert model.load()
    fields = model.encoder_.fields
    records = [
        {f: (v.item() if hasattr(v, "item") else v) for f, v in r.items()}
        for r in raw[fields].head(4).to_dict("records")
    ]
    return model, records


def test_german_credit_raw_categoricals_are_explained_with_the_predictors_reasons(german) -> None:
    from creditops.serving import decide

    model, records = german
    out = model.explain({"instances": records})
    served = decide(model.bundle_, model.encoder_.encode_records(records)).to_dicts()
    for explanation, answer, rec in zip(out["explanations"], served, records, strict=True):
        assert explanation["reasons"] == answer["reasons"]  # one decision core
        assert explanation["pd"] == pytest.approx(answer["pd"])
        purpose = sum(v for k, v in explanation["contributions"].items() if k.startswith("purpose__"))
        assert explanation["field_contributions"]["purpose"] == pytest.approx(purpose, abs=1e-5)
        for r in explanation["reasons"]:
            assert not r["feature"].count("__")  # a raw field, never a one-hot column
            if r["feature"] in model.encoder_.categorical:
                assert r["value"] == rec[r["feature"]]
    with pytest.raises(InvalidInput, match=r"purpose: unknown category .*'car \(new\)'"):
        model.explain({"instances": [{**records[0], "purpose": "yacht"}]})
