"""Wire a :class:`CreditPredictor` into kserve's ``ModelServer``: handlers, metrics, OpenAPI, logging."""

from __future__ import annotations

import logging

from fastapi.responses import ORJSONResponse

import kserve
from predictor.errors import install_error_handlers
from predictor.model import CreditPredictor
from predictor.openapi import openapi_document

OPENAPI_PATH = "/predictor/openapi.json"


def quiet_request_logs() -> None:
    """Silence the per-request log lines (kserve.trace timing, uvicorn access): they cost latency."""
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").disabled = True


def serve(model: CreditPredictor, http_port: int, workers: int = 1, grpc_port: int = 0) -> None:
    """Start kserve's ModelServer with ``model`` loaded (blocks until the server stops)."""
    from kserve.model_server import app

    install_error_handlers(app)

    async def predictor_openapi() -> ORJSONResponse:
        return ORJSONResponse(openapi_document(model.name, model.contract, model.max_batch))

    app.add_api_route(OPENAPI_PATH, predictor_openapi, methods=["GET"], include_in_schema=False)
    server = kserve.ModelServer(
        http_port=http_port,
        workers=workers,
        enable_grpc=grpc_port > 0,
        grpc_port=grpc_port or 8081,
        enable_latency_logging=False,
    )
    quiet_request_logs()
    server.start([model])
