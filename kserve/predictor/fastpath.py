"""``POST /v1/models/<name>:predict`` of the served model as a plain ASGI handler, ahead of kserve's app.

Through kserve, a V1 prediction passes Starlette's router and kserve's timing middleware (each matching the
path against some thirty routes), FastAPI's request object, the data plane's decode and encode and kserve's
per-stage histograms: measured here, that costs about as much CPU per request as the decision itself. This
handler takes the same request straight to :meth:`CreditPredictor.predict` and answers with the same body,
status codes and errors (:func:`predictor.errors.error_answer`). Whatever it would not handle exactly as
kserve does goes to kserve's app unchanged, the body replayed: another path or model, a model that cannot
answer now, CloudEvents (binary or structured), a content type kserve does not decode as JSON, a body that is
not JSON. Authentication and metrics wrap both (:func:`predictor.server.asgi_stack`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import orjson
from cloudevents.sdk.converters.util import has_binary_headers
from kserve.protocol.dataplane import JSON_HEADERS
from kserve.utils.utils import is_structured_cloudevent

from predictor.errors import error_answer
from predictor.model import CreditPredictor

log = logging.getLogger(__name__)
_JSON = (b"content-type", b"application/json")
_ORJSON = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY  # what FastAPI's ORJSONResponse uses


class V1Predict:
    """Answer the served model's V1 predictions; pass every other request to ``app``.

    Args:
        app: kserve's ASGI app (everything this handler does not answer).
        model: the served predictor.
        serving: whether ``model`` is registered and can answer now (otherwise kserve answers, with its 503).
    """

    def __init__(self, app: Any, model: CreditPredictor, serving: Callable[[], bool]):
        self.app = app
        self.model = model
        self.serving = serving
        self.path = f"/v1/models/{model.name}:predict"

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Answer a plain JSON V1 prediction of the served model, or hand the request to kserve."""
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        kind = headers.get("content-type", JSON_HEADERS[0])
        if kind not in JSON_HEADERS or has_binary_headers(headers) or not self.serving():
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client went away before its request was complete: nothing to answer
            return
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            request = None
        if not isinstance(request, dict) or is_structured_cloudevent(request):
            await self.app(scope, _replay(body, receive), send)  # kserve's own answer for these
            return
        try:
            status, answer = HTTPStatus.OK, await self.model.predict(request, headers)
        except Exception as exc:  # noqa: BLE001 - every failure becomes the answer kserve's handlers would give
            status, answer, reason = error_answer(exc)
            scope.setdefault("state", {})["error_reason"] = reason
            if status >= HTTPStatus.INTERNAL_SERVER_ERROR and reason == "server_error":
                log.error("prediction failed", exc_info=exc)
        content = orjson.dumps(answer, option=_ORJSON)
        head = [_JSON, (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": int(status), "headers": head})
        await send({"type": "http.response.body", "body": content})


async def _read_body(receive: Any) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Any) -> Callable[[], Any]:
    """A ``receive`` that gives ``body`` once, then defers to the connection (disconnect notices)."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
