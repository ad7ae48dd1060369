"""ASGI middleware: verify callers (:mod:`creditops.security`) and guard the model-repository endpoints.

Public without credentials (probes, scraping, discovery): ``GET`` of ``/``, ``/metrics``, ``/v2``,
``/v2/health/*``, ``/v2/models/<m>[/versions/<v>]/ready``, ``/v1/models/<m>`` (V1 readiness) and the OpenAPI
document. Every other request needs valid credentials (401 otherwise). The verified identity replaces any
``X-Caller-Id`` the caller sent, so the audit record's caller is who was verified, never a chosen header.
``/v2/repository/...`` answers 403 unless the server was started with the repository API enabled.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

import orjson

from creditops.security import Authenticator, AuthError

CALLER_HEADER = b"x-caller-id"
_PUBLIC_EXACT = {"/", "/metrics", "/v2", "/v2/health/live", "/v2/health/ready", "/predictor/openapi.json"}
_PUBLIC_PATTERN = re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/ready$|^/v1/models/[^/:]+$")
REPOSITORY_PREFIX = "/v2/repository"


def is_public(method: str, path: str) -> bool:
    """Whether a request may be served without credentials."""
    return method in ("GET", "HEAD") and (path in _PUBLIC_EXACT or bool(_PUBLIC_PATTERN.match(path)))


class AuthMiddleware:
    """Authenticate protected requests and pass the verified caller on as ``X-Caller-Id``.

    Args:
        app: the ASGI app.
        authenticator: verifies credentials (anonymous mode verifies nothing and names everyone anonymous).
        repository_api: whether ``/v2/repository/...`` is served at all.
    """

    def __init__(self, app: Any, authenticator: Authenticator, repository_api: bool = False):
        self.app = app
        self.authenticator = authenticator
        self.repository_api = repository_api

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Refuse, or forward with the verified caller."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path.startswith(REPOSITORY_PREFIX) and not self.repository_api:
            await _refuse(scope, send, HTTPStatus.FORBIDDEN, "the model repository API is disabled here")
            return
        raw = [(k, v) for k, v in scope.get("headers", []) if k.lower() != CALLER_HEADER]
        if is_public(scope.get("method", "GET"), path):
            await self.app(dict(scope, headers=raw), receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}
        try:
            identity = self.authenticator.authenticate(headers)
        except AuthError as exc:
            await _refuse(scope, send, HTTPStatus.UNAUTHORIZED, str(exc), authenticate=True)
            return
        raw.append((CALLER_HEADER, identity.subject.encode("utf-8")))
        await self.app(dict(scope, headers=raw), receive, send)


async def _refuse(scope: dict, send: Any, status: int, message: str, authenticate: bool = False) -> None:
    scope.setdefault("state", {})["error_reason"] = "unauthenticated" if authenticate else "forbidden"
    body = orjson.dumps({"error": message})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if authenticate:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": int(status), "headers": headers})
    await send({"type": "http.response.body", "body": body})
