"""Readiness means "can answer": loaded, in the registry, and its audit writer running (in-process app)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from kserve.model_repository import ModelRepository

from creditops.artifact import load_bundle
from creditops.governance.audit import AuditLog, AuditWriter
from predictor.model import CreditPredictor
from predictor.server import _install_routes
from predictor.testing import tiny_bundle


def test_ready_follows_the_audit_writer_and_the_registry(tmp_path: Path) -> None:
    bundle = load_bundle(tiny_bundle(tmp_path / "b", n_rows=300, n_trees=3))
    writer = AuditWriter(AuditLog.open(f"sqlite:///{tmp_path}/a.db"))
    model = CreditPredictor("credit", bundle=bundle, audit=writer)
    model.load()
    registry = ModelRepository()
    registry.update(model)
    app = FastAPI()
    _install_routes(app, model, registry)
    client = TestClient(app)
    assert client.get("/v2/health/ready").json() == {"ready": True}
    writer.close()  # a stopped writer can record nothing, so nothing may be answered
    r = client.get("/v2/health/ready")
    assert r.status_code == 503 and r.json() == {"ready": False}
    model.audit = AuditWriter(AuditLog.open(f"sqlite:///{tmp_path}/a.db"))
    assert client.get("/v2/health/ready").status_code == 200
    registry.unload("credit")
    assert client.get("/v2/health/ready").status_code == 503
    model.audit.close()
