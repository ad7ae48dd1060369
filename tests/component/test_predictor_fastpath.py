"""The V1 fast path answers exactly as kserve's data plane does, and hands kserve what it should not take.

Both paths run in-process over one loaded predictor (tiny real bundle, sqlite audit log): kserve's V1
endpoints on a FastAPI app with kserve's and the predictor's error handlers, as the server registers them,
and ``V1Predict`` in front of that app.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.rest.server import RESTServer

from creditops.artifact import load_bundle
from creditops.governance.audit import AuditLog, AuditWriter
from predictor.errors import install_error_handlers
from predictor.fastpath import V1Predict
from predictor.model import CreditPredictor
from predictor.server import serving_check
from predictor.testing import random_features, tiny_bundle

MODEL = "credit"
MAX_BATCH = 5
PATH = f"/v1/models/{MODEL}:predict"


class Recorder:
    """kserve's app, noting every HTTP request that reaches it."""

    def __init__(self, app: Any):
        self.app, self.seen = app, 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        self.seen += scope["type"] == "http"
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("fastpath")
    log = AuditLog.open(f"sqlite:///{root / 'audit.db'}")
    model = CreditPredictor(
        MODEL, bundle=load_bundle(tiny_bundle(root / "b")), audit=AuditWriter(log), max_batch=MAX_BATCH
    )
    model.load()
    registry = ModelRepository()
    registry.update(model)
    app = FastAPI()
    rest = RESTServer("unused:app", DataPlane(model_registry=registry), None, 0)
    rest._register_endpoints(app)  # noqa: SLF001 - kserve's own routes and handlers, as the server has them
    rest._add_exception_handlers(app)  # noqa: SLF001
    install_error_handlers(app)
    kserve_app = Recorder(app)
    fast = V1Predict(kserve_app, model, serving_check(model, registry))
    return {"model": model, "log": log, "kserve": kserve_app, "fast": fast}


def row(**override: Any) -> dict[str, Any]:
    values = {k: (v.item() if hasattr(v, "item") else v) for k, v in random_features(1, 3).iloc[0].items()}
    return {**values, **override}


async def _post(app: Any, body: bytes, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://predictor") as client:
        return await client.post(PATH, content=body, headers=headers)


def post(app: Any, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return asyncio.run(_post(app, raw, {"content-type": "application/json", **(headers or {})}))


def comparable(response: httpx.Response) -> tuple[int, str, Any]:
    body = response.json()
    for p in body.get("predictions", []) if isinstance(body, dict) else []:
        p.pop("prediction_id")  # new per answer
    return response.status_code, response.headers["content-type"], body


SAME = [
    ("one", {"instances": [row()]}, 200),
    ("batch", {"instances": [row(), row(income=52_000.0), row(credit_score=640)]}, 200),
    ("missing_value", {"instances": [row(income=None)]}, 200),
    ("unknown_field", {"instances": [row(shoe_size=42)]}, 400),
    ("out_of_range", {"instances": [row(credit_score=9000)]}, 400),
    ("beyond_float32", {"instances": [row(total_debt=1e39)]}, 400),
    ("too_many", {"instances": [row()] * (MAX_BATCH + 1)}, 413),
    ("no_instances", {"rows": []}, 400),
    ("ids_without_store", {"instances": [{"applicant_id": 1}]}, 400),
]


@pytest.mark.parametrize(("case", "body", "status"), SAME, ids=[c[0] for c in SAME])
def test_fast_path_answers_as_kserve_does_and_audits_the_same(
    world: dict[str, Any], case: str, body, status: int
) -> None:
    log, kserve_app = world["log"], world["kserve"]
    seen, before = kserve_app.seen, log.count()
    fast = post(world["fast"], body)
    assert kserve_app.seen == seen, "the fast path handed a plain V1 request to kserve"
    fast_audited = log.count() - before
    slow = post(kserve_app, body)
    assert fast.status_code == status
    assert comparable(fast) == comparable(slow)
    assert (
        fast_audited
        == log.count() - before - fast_audited
        == (len(body["instances"]) if fast.status_code == 200 else 0)
    )


def test_audit_failure_is_the_same_503(world: dict[str, Any], tmp_path: Path) -> None:
    model, kserve_app = world["model"], world["kserve"]
    broken = AuditLog.open(f"sqlite:///{tmp_path / 'gone.db'}")
    broken._db.conn.execute("DROP TABLE audit_log")  # noqa: SLF001 - every write now fails
    saved, model.audit = model.audit, AuditWriter(broken)
    try:
        fast, slow = post(world["fast"], {"instances": [row()]}), post(kserve_app, {"instances": [row()]})
    finally:
        model.audit = saved
    assert fast.status_code == 503 and "audit log unavailable" in fast.json()["error"]
    assert comparable(fast) == comparable(slow)


CLOUDEVENT = {
    "specversion": "1.0",
    "id": "e1",
    "source": "test",
    "type": "credit.score",
    "time": "2026-12-03T12:00:00Z",
}
HANDED_OVER = [
    ("malformed_json", b"{not json", {}),
    ("not_an_object", [{"income": 1}], {}),
    ("other_content_type", {"instances": [row()]}, {"content-type": "text/plain"}),
    ("structured_cloudevent", {**CLOUDEVENT, "data": {"instances": [row()]}}, {}),
    (
        "binary_cloudevent",
        {"instances": [row()]},
        {f"ce-{k}": v for k, v in CLOUDEVENT.items()},
    ),
]


@pytest.mark.parametrize(("case", "body", "headers"), HANDED_OVER, ids=[c[0] for c in HANDED_OVER])
def test_what_kserve_decodes_differently_goes_to_kserve_with_its_body(
    world: dict[str, Any], case: str, body, headers: dict[str, str]
) -> None:
    kserve_app = world["kserve"]
    seen = kserve_app.seen
    fast = post(world["fast"], body, headers)
    assert kserve_app.seen == seen + 1
    slow = post(kserve_app, body, headers)
    assert fast.status_code == slow.status_code
    if case.endswith("cloudevent"):  # kserve got the whole body: it scored the event's data
        assert fast.status_code == 200 and fast.json()["predictions"][0]["pd"] >= 0
    else:
        assert fast.status_code == 400 and fast.json() == slow.json()


def test_a_model_that_cannot_answer_is_left_to_kserve(world: dict[str, Any]) -> None:
    model, kserve_app = world["model"], world["kserve"]
    seen = kserve_app.seen
    model.ready = False
    try:
        fast = post(world["fast"], {"instances": [row()]})
    finally:
        model.ready = True
    assert kserve_app.seen == seen + 1 and fast.status_code == 503
