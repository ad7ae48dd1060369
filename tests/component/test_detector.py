"""The drift detector kserve.Model in-process: load + predict on V1 and V2 payloads."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from governance_helpers import FEATURES, make_bundle, make_frame
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse

from creditops.monitoring.drift import detect_drift
from detector.model import DriftDetector


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from predictor.testing import embed_contract

    return embed_contract(make_bundle(tmp_path_factory.mktemp("detector") / "bundle", n=1500)[0])


@pytest.fixture(scope="module")
def detector(bundle_dir: Path) -> DriftDetector:
    model = DriftDetector("credit-pd-drift", bundle_dir)
    assert model.load() and model.ready
    return model


def _batch(n: int = 300, seed: int = 11, utilisation_shift: float = 0.0) -> pd.DataFrame:
    frame = make_frame(n, seed)[FEATURES]
    frame["utilisation"] = (frame["utilisation"] + utilisation_shift).clip(upper=1.0)
    return frame


def test_same_population_is_not_drift(detector: DriftDetector) -> None:
    out = detector.predict({"instances": _batch().to_dict(orient="records")})
    assert out["drifted"] is False and out["drifted_features"] == []
    assert [f["name"] for f in out["features"]] == FEATURES
    assert out["backend"] == "scipy" and out["correction"] == "bonferroni" and out["n_current"] == 300


def test_shifted_feature_is_the_one_reported(detector: DriftDetector, bundle_dir: Path) -> None:
    batch = _batch(utilisation_shift=0.3)
    out = detector.predict({"instances": batch.to_dict(orient="records")})
    assert out["drifted"] is True and out["drifted_features"] == ["utilisation"]
    from creditops.artifact import load_bundle

    expected = detect_drift(load_bundle(bundle_dir).reference, batch, FEATURES)
    assert [f["p_adjusted"] for f in out["features"]] == pytest.approx(
        [f.p_adjusted for f in expected.features]
    )
    assert [f["psi"] for f in out["features"]] == pytest.approx([f.psi for f in expected.features])


def test_v2_tensor_request_gets_a_tensor_response(detector: DriftDetector) -> None:
    batch = _batch(utilisation_shift=0.3).to_numpy(dtype=float)
    request = InferRequest(
        "credit-pd-drift", [InferInput("input-0", list(batch.shape), "FP64", batch.tolist())]
    )
    response = detector.predict(request)
    assert isinstance(response, InferResponse)
    outputs = {o.name: o.as_numpy() for o in response.outputs}
    assert outputs["is_drift"].tolist() == [True]
    assert outputs["feature_drift"].tolist() == [f == "utilisation" for f in FEATURES]
    assert outputs["psi"].shape == (len(FEATURES),)
    assert response.parameters["features"] == ",".join(FEATURES)
    body, _ = response.to_rest()
    assert {o["name"] for o in body["outputs"]} == {
        "is_drift",
        "feature_drift",
        "p_adjusted",
        "p_value",
        "ks_stat",
        "psi",
    }


@pytest.mark.parametrize("correction", ["bonferroni", "fdr_bh"])
def test_correction_is_configurable(bundle_dir: Path, correction: str) -> None:
    model = DriftDetector("drift", bundle_dir, correction=correction, alpha=0.01)
    model.load()
    out = model.predict({"instances": _batch(utilisation_shift=0.3).to_dict(orient="records")})
    assert out["correction"] == correction and out["alpha"] == 0.01
    assert out["drifted_features"] == ["utilisation"]


def test_through_the_kserve_call_path(detector: DriftDetector) -> None:
    response, _ = asyncio.run(detector({"instances": _batch(50).to_dict(orient="records")}, {}))
    assert len(response["features"]) == len(FEATURES)


def test_missing_values_in_the_batch_are_allowed(detector: DriftDetector) -> None:
    batch = _batch(100)
    rows = batch.to_dict(orient="records")
    for row in rows[:10]:
        row["income_k"] = None
    out = detector.predict({"instances": rows})
    assert np.isfinite([f["psi"] for f in out["features"]]).all()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"instances": [{"utilisation": 0.1, "income_k": 40.0, "noise": 0.0, "num_late": 0}]},
            "at least 2 rows",
        ),
        (
            {"instances": [{"utilisation": 0.1}, {"utilisation": 0.2}]},
            "instances[0]: missing feature 'income_k'",
        ),
        ({"instances": "all of them"}, "non-empty list"),
    ],
)
def test_bad_batches_are_invalid_input(detector: DriftDetector, payload: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        detector.predict(payload)


def test_unknown_backend_is_rejected(bundle_dir: Path) -> None:
    with pytest.raises(ValueError, match="backend"):
        DriftDetector("drift", bundle_dir, backend="evidently")


def test_alibi_detect_backend_outside_the_alibi_env_says_so(bundle_dir: Path) -> None:
    with pytest.raises(RuntimeError, match="needs the alibi env"):
        DriftDetector("drift", bundle_dir, backend="alibi-detect").load()


def test_german_credit_raw_categoricals_are_encoded_by_the_contract(tmp_path: Path) -> None:
    from predictor.testing import german_bundle

    bundle_dir, raw = german_bundle(tmp_path / "german", n_trees=5)
    model = DriftDetector("german-drift", bundle_dir)
    assert model.load()
    fields = model.encoder_.fields
    batch = raw[fields].sample(300, random_state=1)
    records = [
        {f: (v.item() if hasattr(v, "item") else v) for f, v in r.items()} for r in batch.to_dict("records")
    ]
    out = model.predict({"instances": records})
    assert "purpose__car_new" in [f["name"] for f in out["features"]]
    shifted = [{**r, "purpose": "car (new)"} for r in records]  # every applicant buys a new car
    drifted = model.predict({"instances": shifted})
    assert drifted["drifted"] is True and "purpose__car_new" in drifted["drifted_features"]
    with pytest.raises(InvalidInput, match="purpose: unknown category"):
        model.predict({"instances": [{**records[0], "purpose": "yacht"}, records[1]]})
