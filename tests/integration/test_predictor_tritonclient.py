"""A real V2 client (tritonclient's HTTP client) against the live predictor, JSON and binary modes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from creditops.artifact import load_bundle
from creditops.governance.audit import AuditLog
from predictor.testing import random_features, running_server, tiny_bundle

MODEL = "credit"


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[triton.InferenceServerClient, Path, Path]]:
    tmp = tmp_path_factory.mktemp("triton")
    bundle = tiny_bundle(tmp / "bundle", n_trees=10)
    args = ["--bundle", str(bundle), "--audit-url", f"sqlite:///{tmp}/audit.db"]
    with running_server(args, model_name=MODEL) as base:
        client = triton.InferenceServerClient(base.removeprefix("http://"))
        yield client, bundle, tmp
        client.close()


def test_health_and_versioned_readiness(served) -> None:
    client, _, _ = served
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
    meta = client.get_model_metadata(MODEL)
    (version,) = meta["versions"]
    assert client.is_model_ready(MODEL, model_version=version)
    assert not client.is_model_ready(MODEL, model_version="not-this-one")
    assert client.get_model_metadata(MODEL, model_version=version)["versions"] == [version]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_with_requested_outputs(served, binary: bool) -> None:
    client, bundle_dir, tmp = served
    meta = client.get_model_metadata(MODEL)
    order = meta["parameters"]["feature_order"]
    frame = random_features(4, seed=21)[order]
    matrix = frame.to_numpy(np.float64)
    tensor = triton.InferInput("features", list(matrix.shape), "FP64")
    tensor.set_data_from_numpy(matrix, binary_data=binary)
    before = AuditLog.open(f"sqlite:///{tmp}/audit.db").count()
    wanted = [triton.InferRequestedOutput("pd", binary_data=binary)]
    result = client.infer(MODEL, [tensor], outputs=wanted, model_version=meta["versions"][0])
    assert [o["name"] for o in result.get_response()["outputs"]] == ["pd"]
    expected = load_bundle(bundle_dir).predict_pd(frame)
    assert result.as_numpy("pd") == pytest.approx(expected, abs=1e-5)
    assert AuditLog.open(f"sqlite:///{tmp}/audit.db").count() == before + 4  # audited whole
    every = client.infer(MODEL, [tensor])
    assert {o["name"] for o in every.get_response()["outputs"]} == {t["name"] for t in meta["outputs"]}


def test_unknown_requested_output_is_a_400_naming_it(served) -> None:
    client, _, tmp = served
    order = client.get_model_metadata(MODEL)["parameters"]["feature_order"]
    matrix = random_features(1, seed=2)[order].to_numpy(np.float64)
    tensor = triton.InferInput("features", list(matrix.shape), "FP64")
    tensor.set_data_from_numpy(matrix, binary_data=False)
    before = AuditLog.open(f"sqlite:///{tmp}/audit.db").count()
    with pytest.raises(InferenceServerException) as exc:
        client.infer(MODEL, [tensor], outputs=[triton.InferRequestedOutput("probability")])
    assert exc.value.status() == "400" and "probability" in exc.value.message()
    assert AuditLog.open(f"sqlite:///{tmp}/audit.db").count() == before
