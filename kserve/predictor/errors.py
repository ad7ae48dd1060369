"""HTTP errors of the predictor and the handlers that turn them into JSON answers.

Every refusal the predictor makes is a :class:`PredictorError` carrying its HTTP status and a short machine
reason (the ``reason`` label of the error counter). Client errors subclass kserve's ``InvalidInput`` so that,
even without :func:`install_error_handlers`, kserve answers them with a 400 and never a 500.
"""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse
from kserve.errors import InferenceError, InvalidInput


class PredictorError(InvalidInput):
    """A request the predictor refuses: ``status`` (4xx) and a message naming the problem."""

    def __init__(self, message: str, status: int = HTTPStatus.BAD_REQUEST, reason: str = "invalid_input"):
        super().__init__(message)
        self.status = int(status)
        self.error_reason = reason


class Unavailable(InferenceError):
    """A backend the predictor needs failed: the request fails with a 503 and no answer is given."""

    def __init__(self, message: str, reason: str):
        super().__init__(message, status=reason)
        self.status_code = HTTPStatus.SERVICE_UNAVAILABLE
        self.error_reason = reason


class AuditUnavailable(Unavailable):
    """The audit log could not record a prediction (nothing is answered, nothing partial is recorded)."""

    def __init__(self, message: str):
        super().__init__(message, "audit_unavailable")


class FeatureStoreUnavailable(Unavailable):
    """The online feature store could not be read."""

    def __init__(self, message: str):
        super().__init__(message, "feature_store_unavailable")


def bad_request(message: str, reason: str = "invalid_input") -> PredictorError:
    """A 400 naming the problem."""
    return PredictorError(message, HTTPStatus.BAD_REQUEST, reason)


def error_answer(exc: BaseException) -> tuple[int, dict[str, str], str]:
    """``(status, body, reason label)`` of the answer to a request that failed with ``exc``.

    The predictor's errors carry their own; kserve's client errors are 400s and anything else is a 500, with
    the bodies kserve's handlers give.
    """
    if isinstance(exc, PredictorError):
        return exc.status, {"error": exc.reason}, exc.error_reason
    if isinstance(exc, Unavailable):
        return HTTPStatus.SERVICE_UNAVAILABLE, {"error": exc.reason}, exc.error_reason
    if isinstance(exc, InvalidInput):
        return HTTPStatus.BAD_REQUEST, {"error": str(exc)}, "invalid_input"
    if isinstance(exc, InferenceError):
        return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(exc)}, "server_error"
    return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__} : {exc}"}, "server_error"


async def _error_handler(request: Request, exc: Exception) -> ORJSONResponse:
    status, body, request.state.error_reason = error_answer(exc)
    return ORJSONResponse(status_code=status, content=body)


async def _validation_error_handler(request: Request, exc: Exception) -> ORJSONResponse:
    # FastAPI's own 422 for bodies that are not a V2 InferenceRequest (malformed JSON included); kept as a
    # 422 but with one readable message instead of pydantic's list.
    assert isinstance(exc, RequestValidationError)  # nosec B101  # type narrowing; Starlette routes only this class here
    request.state.error_reason = "malformed_request"
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "bytes"))
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return ORJSONResponse(
        status_code=HTTPStatus.UNPROCESSABLE_ENTITY,
        content={"error": "malformed inference request: " + "; ".join(parts)},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the predictor's error handlers on kserve's FastAPI app (before the server starts).

    kserve registers its own handlers for its exception classes and ``Exception`` when the server starts;
    these are keyed on the predictor's own classes, so they take precedence for them (Starlette looks the
    handler up along the exception's MRO).
    """
    app.add_exception_handler(PredictorError, _error_handler)
    app.add_exception_handler(Unavailable, _error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
