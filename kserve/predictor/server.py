"""Run :class:`CreditPredictor` on kserve's REST data plane: one or more workers behind one socket.

kserve's ``ModelServer(workers=N)`` pickles the loaded model into ``spawn``-ed children and re-imports its
module-level FastAPI app there, so everything the parent set up (the audit writer and its connection,
the error handlers, extra routes, middleware) is missing or broken in the workers. Here the parent only binds
the configured host and port; each worker process builds its own model from a picklable factory, loads it
(its own audit chain, audit writer, database and online-store connections), installs the handlers, routes
and middleware on its own app and serves the shared socket with kserve's ``RESTServer``. The parent restarts
a worker that dies after it was ready and forwards SIGTERM/SIGINT to all of them.

gRPC is not served: it would bypass the HTTP authentication.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import ORJSONResponse

from creditops.errors import CreditOpsError
from creditops.security import Authenticator, authenticator_from_config
from predictor.auth import AuthMiddleware
from predictor.errors import install_error_handlers
from predictor.fastpath import V1Predict
from predictor.metrics import MetricsMiddleware
from predictor.model import CreditPredictor
from predictor.openapi import openapi_document

log = logging.getLogger(__name__)
OPENAPI_PATH = "/predictor/openapi.json"
STARTUP_FAILED = 2


@dataclass(frozen=True)
class ServerOptions:
    """How the predictor is served (all picklable: they travel to the worker processes).

    Attributes:
        host: interface to bind (``127.0.0.1`` unless the deployment says otherwise).
        http_port: TCP port.
        workers: processes sharing the socket.
        auth_mode: ``anonymous``, ``api_key`` or ``jwt`` (:mod:`creditops.security`), always explicit.
        api_key_hashes_file / jwt_key_file / jwt_algorithms / jwt_audience / jwt_issuer: key material.
        repository_api: serve ``/v2/repository/models/<name>/load|unload`` (authenticated callers only).
        grace_s: seconds a stopping worker gets to finish in-flight requests.
    """

    host: str = "127.0.0.1"
    http_port: int = 8080
    workers: int = 1
    auth_mode: str = "anonymous"
    api_key_hashes_file: str | None = None
    jwt_key_file: str | None = None
    jwt_algorithms: tuple[str, ...] = ("RS256",)
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    repository_api: bool = False
    grace_s: int = 10

    def authenticator(self) -> Authenticator:
        """The authenticator these options describe (raises ValueError on missing key material)."""
        return authenticator_from_config(
            self.auth_mode,
            api_key_hashes_file=self.api_key_hashes_file,
            jwt_key_file=self.jwt_key_file,
            jwt_algorithms=self.jwt_algorithms,
            jwt_audience=self.jwt_audience,
            jwt_issuer=self.jwt_issuer,
        )


def quiet_request_logs() -> None:
    """Silence the per-request log lines (kserve.trace timing, uvicorn access): they cost latency."""
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").disabled = True


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv4 or IPv6), inheritable by the workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=2048)
    sock.set_inheritable(True)
    return sock


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def check_options(options: ServerOptions) -> Authenticator:
    """Refuse inconsistent options before anything starts (raises CreditOpsError)."""
    try:
        authenticator = options.authenticator()
    except (OSError, ValueError) as exc:
        raise CreditOpsError(f"authentication: {exc}") from None
    if options.repository_api and options.auth_mode == "anonymous":
        raise CreditOpsError("--repository-api needs authenticated callers (not --auth anonymous)")
    if options.workers < 1:
        raise CreditOpsError("--workers must be at least 1")
    return authenticator


# --------------------------------------------------------------------------------------------------------
# the app of one worker


def serving_check(model: CreditPredictor, registry: Any) -> Callable[[], bool]:
    """Whether ``model`` can answer now: still the registry's model of its name, loaded, audit writer up."""

    def serving() -> bool:
        return registry.get_model(model.name) is model and model.can_answer()

    return serving


def _install_routes(app: FastAPI, model: CreditPredictor, registry: Any) -> None:
    """Routes that take precedence over kserve's (added first, so Starlette matches them first)."""
    serving = serving_check(model, registry)

    async def server_ready() -> ORJSONResponse:
        ready = serving()
        status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
        return ORJSONResponse({"ready": ready}, status_code=status)

    async def version_ready(model_name: str, model_version: str) -> ORJSONResponse:
        if model_name != model.name or model_version != model.model_version:
            return _not_found(model_name, model_version)
        ready = serving()
        status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
        return ORJSONResponse({"name": model_name, "ready": ready}, status_code=status)

    async def metadata(model_name: str) -> ORJSONResponse:
        if model_name != model.name or registry.get_model(model.name) is not model:
            return _not_found(model_name)
        return ORJSONResponse(model.v2_model_metadata())

    async def version_metadata(model_name: str, model_version: str) -> ORJSONResponse:
        if model_version != model.model_version:
            return _not_found(model_name, model_version)
        return await metadata(model_name)

    async def predictor_openapi() -> ORJSONResponse:
        return ORJSONResponse(openapi_document(model.name, model.contract, model.max_batch))

    async def unload(model_name: str) -> ORJSONResponse:
        if model_name != model.name:
            return _not_found(model_name)
        if registry.get_model(model.name) is model:
            registry.unload(model.name)
        model.ready = False
        return ORJSONResponse({"name": model_name, "unload": True})

    async def load(model_name: str) -> ORJSONResponse:
        if model_name != model.name:
            return _not_found(model_name)
        if registry.get_model(model.name) is not model:
            model.ready = model.can_answer(ignore_ready=True)
            registry.update(model)
        return ORJSONResponse({"name": model_name, "load": model.ready})

    app.add_api_route("/v2/health/ready", server_ready, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        "/v2/models/{model_name}/versions/{model_version}/ready", version_ready, methods=["GET"]
    )
    app.add_api_route("/v2/models/{model_name}", metadata, methods=["GET"])
    app.add_api_route("/v2/models/{model_name}/versions/{model_version}", version_metadata, methods=["GET"])
    app.add_api_route(
        "/v2/models/{model_name}/versions/{model_version}/infer",
        _versioned_infer(app, model),
        methods=["POST"],
        include_in_schema=False,
    )
    app.add_api_route("/v2/repository/models/{model_name}/unload", unload, methods=["POST"])
    app.add_api_route("/v2/repository/models/{model_name}/load", load, methods=["POST"])
    app.add_api_route(OPENAPI_PATH, predictor_openapi, methods=["GET"], include_in_schema=False)


def _versioned_infer(app: FastAPI, model: CreditPredictor) -> Callable[..., Any]:
    """``POST /v2/models/<name>/versions/<version>/infer``: the served version only, else 404."""

    async def infer(request: Request, model_name: str, model_version: str) -> Any:
        if model_version != model.model_version:
            return _not_found(model_name, model_version)
        # Re-dispatch to kserve's unversioned route on the same app (same decoding, audit and answer).
        scope = dict(request.scope, path=f"/v2/models/{model_name}/infer", raw_path=None)
        body = await request.body()
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await app.router(scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start.get("headers", [])}
        headers.pop("content-length", None)
        return Response(content=content, status_code=start["status"], headers=headers)

    return infer


def _not_found(model_name: str, model_version: str | None = None) -> ORJSONResponse:
    what = f"model {model_name!r}" + (f" version {model_version!r}" if model_version else "")
    return ORJSONResponse({"error": f"{what} is not served here"}, status_code=HTTPStatus.NOT_FOUND)


class JsonByDefault:
    """A V2 infer request without a content type and without binary tensors is JSON.

    tritonclient's JSON mode sends its body with no ``Content-Type``; kserve would then take the body for the
    binary extension and refuse it for lacking ``Inference-Header-Content-Length``.
    """

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Add ``content-type: application/json`` where the V2 protocol implies it."""
        if scope["type"] == "http" and scope.get("method") == "POST" and scope["path"].endswith("/infer"):
            names = {k.lower() for k, _ in scope.get("headers", [])}
            if b"content-type" not in names and b"inference-header-content-length" not in names:
                scope = dict(scope, headers=[*scope["headers"], (b"content-type", b"application/json")])
        await self.app(scope, receive, send)


def build_rest_server(model: CreditPredictor, options: ServerOptions, authenticator: Authenticator) -> Any:
    """The kserve ``RESTServer`` of a loaded ``model``, with this predictor's routes and middleware."""
    from kserve.model_repository import ModelRepository
    from kserve.model_server import app
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension
    from kserve.protocol.rest.server import RESTServer

    registry = ModelRepository()
    registry.update(model)
    model.enable_latency_logging = False
    dataplane = DataPlane(model_registry=registry)
    extension = ModelRepositoryExtension(model_registry=registry)
    _install_routes(app, model, registry)
    install_error_handlers(app)
    app.router.on_startup.append(model.start)
    app.router.on_shutdown.append(model.aclose)
    rest = RESTServer(
        "kserve.model_server:app",
        dataplane,
        extension,
        options.http_port,
        grace_period=options.grace_s,
    )
    rest.config.host = options.host
    serving = serving_check(model, registry)
    rest.config.app = asgi_stack(app, model, serving, authenticator, options.repository_api)
    return rest


def asgi_stack(
    app: Any,
    model: CreditPredictor,
    serving: Callable[[], bool],
    authenticator: Authenticator,
    repository: bool,
) -> Any:
    """What uvicorn serves: metrics, then authentication, around the V1 fast path and kserve's ``app``.

    Metrics are outermost so that refusals (401, 403) are counted; every request is authenticated before
    either handler sees it.
    """
    inner = JsonByDefault(V1Predict(app, model, serving))
    return MetricsMiddleware(AuthMiddleware(inner, authenticator=authenticator, repository_api=repository))


def run_worker(
    factory: Callable[[], CreditPredictor],
    options: ServerOptions,
    sock: socket.socket,
    ready: Any | None = None,
) -> int:
    """Load a model in this process and serve ``sock`` until SIGTERM/SIGINT (returns the exit code)."""
    authenticator = check_options(options)
    model = factory()
    try:
        model.load()
    except CreditOpsError as exc:
        print(f"predictor: cannot load the model: {exc}", file=sys.stderr, flush=True)
        return STARTUP_FAILED
    except Exception as exc:  # a backend (audit database, online store, registry) is unreachable
        print(f"predictor: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return STARTUP_FAILED
    rest = build_rest_server(model, options, authenticator)
    quiet_request_logs()
    if ready is not None:
        ready.set()
    rest.run(sockets=[sock])  # uvicorn: graceful stop on SIGTERM, then the shutdown hook flushes the audit
    return 0


def _worker_entry(
    factory: Callable[[], CreditPredictor], options: ServerOptions, sock: Any, ready: Any
) -> None:
    from kserve import logging as kserve_logging

    kserve_logging.configure_logging()
    sys.exit(run_worker(factory, options, sock, ready))


def serve(factory: Callable[[], CreditPredictor], options: ServerOptions) -> int:
    """Serve until stopped; ``factory`` builds an unloaded model (it runs in every worker).

    Returns:
        0 after a requested stop, 2 when the model could not be loaded or the options are inconsistent.
    """
    try:
        check_options(options)
        sock = bind_socket(options.host, options.http_port)
        if options.auth_mode == "anonymous" and not _loopback(options.host):
            print(
                f"predictor: WARNING: serving {options.host} without authentication (--auth anonymous): "
                "every caller is recorded as 'anonymous'",
                file=sys.stderr,
                flush=True,
            )
    except (CreditOpsError, OSError) as exc:
        print(f"predictor: {exc}", file=sys.stderr, flush=True)
        return STARTUP_FAILED
    if options.workers == 1:
        from kserve import logging as kserve_logging

        kserve_logging.configure_logging()  # as kserve's ModelServer does; workers configure their own
        return run_worker(factory, options, sock)
    return _supervise(factory, options, sock)


def _supervise(factory: Callable[[], CreditPredictor], options: ServerOptions, sock: socket.socket) -> int:
    ctx = mp.get_context("spawn")  # a fresh interpreter per worker: no threads or connections inherited
    stop = {"requested": False}

    def request_stop(signum: int, frame: Any) -> None:
        stop["requested"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    def start() -> tuple[Any, Any]:
        ready = ctx.Event()
        proc = ctx.Process(target=_worker_entry, args=(factory, options, sock, ready), daemon=False)
        proc.start()
        return proc, ready

    workers = [start() for _ in range(options.workers)]
    was_ready = [False] * len(workers)
    code = 0
    while not stop["requested"]:
        time.sleep(0.2)
        for i, (proc, ready) in enumerate(workers):
            was_ready[i] = was_ready[i] or ready.is_set()
            if proc.is_alive():
                continue
            if not was_ready[i]:  # it never came up: the model cannot be loaded, restarting will not help
                print(f"predictor: a worker exited ({proc.exitcode}) before it was ready", file=sys.stderr)
                stop["requested"], code = True, STARTUP_FAILED
                break
            print(f"predictor: worker {proc.pid} died ({proc.exitcode}); restarting", file=sys.stderr)
            workers[i], was_ready[i] = start(), False
    for proc, _ in workers:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + options.grace_s + 5
    for proc, _ in workers:
        proc.join(max(0.1, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join()
    sock.close()
    return code
