"""Fixtures for the Kubernetes-target tests: a fake API server (kmock + simulated KServe), a real client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from fake_kserve import KServeEmulator, running_emulator

NS, NAME = "creditops", "credit-pd"


def isvc(mode: str, storage_uri: str = "s3://models/credit-pd/1") -> dict[str, Any]:
    """The InferenceService the overlays deploy (predictor only; the canary fields come from the rollout)."""
    predictor: dict[str, Any] = {"model": {"modelFormat": {"name": "xgboost"}, "storageUri": storage_uri}}
    if mode == "Standard":
        predictor["name"] = "primary"
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": NAME, "annotations": {"serving.kserve.io/deploymentMode": mode}},
        "spec": {"predictor": predictor},
    }


@pytest.fixture
def cluster() -> Iterator[tuple[KServeEmulator, str]]:
    """A running fake API server and its URL."""
    with running_emulator(reconcile_delay=0.03) as running:
        yield running


@pytest.fixture
def api(cluster: tuple[KServeEmulator, str]) -> kubernetes.client.CustomObjectsApi:
    """The real ``kubernetes`` client pointed at the fake server."""
    cfg = kubernetes.client.Configuration()
    cfg.host = cluster[1]
    return kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(cfg))
