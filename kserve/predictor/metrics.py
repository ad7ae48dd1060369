"""Prometheus metrics of the predictor, exposed on kserve's ``/metrics`` (the default registry).

* ``creditops_predictor_request_seconds`` histogram: wall time of prediction requests, by model and protocol.
* ``creditops_predictor_requests_total`` counter: prediction requests by model, protocol and HTTP status code.
* ``creditops_predictor_errors_total`` counter: refused or failed requests by model and reason.
* ``creditops_predictor_decisions_total`` counter: scored applications by model and decision.
* ``creditops_predictor_model_info`` gauge (always 1): the model version being served.
* ``creditops_predictor_online_reads_total`` / ``..._online_rows_total`` counters: online-store reads and
  the applicant rows they fetched (rows / reads = how much concurrent lookups were coalesced).

The ``model`` label is the name of a loaded model (:func:`set_model_info`), or ``OTHER_MODEL`` for a path
naming any other: a caller cannot create label values (and time series) by inventing model names.
"""

from __future__ import annotations

import time
from typing import Any, get_args

from prometheus_client import Counter, Gauge, Histogram

from creditops.artifact import Decision

LATENCY = Histogram(
    "creditops_predictor_request_seconds",
    "Latency of prediction requests (seconds), from the first byte in to the answer out.",
    ["model", "protocol"],
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
REQUESTS = Counter(
    "creditops_predictor_requests",
    "Prediction requests by HTTP status code.",
    ["model", "protocol", "code"],
)
ERRORS = Counter(
    "creditops_predictor_errors",
    "Prediction requests refused or failed, by reason.",
    ["model", "reason"],
)
DECISIONS = Counter(
    "creditops_predictor_decisions",
    "Scored applications by decision (approve, review, decline).",
    ["model", "decision"],
)
MODEL_INFO = Gauge(
    "creditops_predictor_model_info",
    "The model served (value always 1).",
    ["model", "model_version", "feature_service"],
)

OTHER_MODEL = "_other"
_SERVED: set[str] = set()

ONLINE_READS = Counter("creditops_predictor_online_reads", "Online feature store reads.")
ONLINE_ROWS = Counter("creditops_predictor_online_rows", "Applicant rows fetched from the online store.")


#: Series created at 0 when a model is loaded. A labelled series appears at its first increment, and
#: ``increase()`` cannot count the increments before a series' first sample: a fresh canary's first 5xx
#: burst would be invisible to the error-rate judge.
INITIAL_CODES = ("200", "400", "401", "403", "404", "413", "422", "500", "503")


def set_model_info(model: str, model_version: str, feature_service: str) -> None:
    """Publish which model version is served (old versions of the same model are removed).

    Also creates the model's request, latency and decision series at 0 (:data:`INITIAL_CODES`).
    """
    for labels in list(MODEL_INFO._metrics):  # noqa: SLF001 - prometheus_client has no public label listing
        if labels[0] == model:
            MODEL_INFO.remove(*labels)
    _SERVED.add(model)
    MODEL_INFO.labels(model=model, model_version=model_version, feature_service=feature_service).set(1)
    for protocol in ("v1", "v2"):
        LATENCY.labels(model=model, protocol=protocol)
        for code in INITIAL_CODES:
            REQUESTS.labels(model=model, protocol=protocol, code=code)
    for decision in get_args(Decision):
        DECISIONS.labels(model=model, decision=decision)


def count_decisions(model: str, decisions: list[str]) -> None:
    """Count decisions of one answered request."""
    for decision in set(decisions):
        DECISIONS.labels(model=model, decision=decision).inc(decisions.count(decision))


def _route(path: str) -> tuple[str, str] | None:
    """``(protocol, model label)`` for a prediction path, else None."""
    if path.startswith("/v1/models/") and path.endswith(":predict"):
        protocol, name = "v1", path[len("/v1/models/") : -len(":predict")]
    elif path.startswith("/v2/models/") and path.endswith("/infer"):
        protocol, name = "v2", path[len("/v2/models/") :].split("/", 1)[0]
    else:
        return None
    return protocol, (name if name in _SERVED else OTHER_MODEL)


class MetricsMiddleware:
    """Pure ASGI middleware timing and counting prediction requests (cheaper than BaseHTTPMiddleware)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Time and count prediction routes; pass everything else through untouched."""
        route = _route(scope.get("path", "")) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        protocol, model = route
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            code = status["code"]
            LATENCY.labels(model=model, protocol=protocol).observe(time.perf_counter() - start)
            REQUESTS.labels(model=model, protocol=protocol, code=str(code)).inc()
            if code >= 400:
                state = scope.get("state") or {}
                reason = state.get("error_reason") or ("server_error" if code >= 500 else f"http_{code}")
                ERRORS.labels(model=model, reason=reason).inc()
