"""Local target: an async HTTP router in front of one real model server per version.

The router speaks the predictor's protocol (``/v1/models/<m>:predict``, ``/v2/models/<m>/infer``, health and
metadata GETs) and decides per request which server answers:

* **canary**: ``weight`` % of requests go to the canary; a canary 5xx, transport error or timeout is retried
  on the champion, so the client never sees the canary's failure (the router counts it as a canary error).
* **shadow**: the champion answers; the same body is mirrored to the challenger in the background and its
  answer is recorded (audited as ``arm=shadow``) but never returned.
* **A/B**: each applicant is assigned to arm ``a`` (champion) or ``b`` (challenger) by a hash of its
  ``applicant_id``, sticky across requests; a batch with both arms is split and merged back in order.

Each forwarded request carries ``x-creditops-route: arm=<arm>;rollout=<id>``, which the predictor records in
every row's audit output, so the audit log shows which version and arm served each request. Weights
change only in-process (the controller holds the :class:`Router`): no HTTP endpoint changes what is
served. A rollback swaps the routing table atomically: requests in flight on the canary finish, new ones
go to the champion.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from creditops.deploy.analysis import ArmWindow

RouteMode = Literal["champion", "canary", "shadow", "ab"]
ROUTE_HEADER = "x-creditops-route"
FORWARDED_HEADERS = ("x-caller-id", "content-type", "x-applicant-id")
CHALLENGER_ARMS = ("canary", "shadow", "b")
CHAMPION_ARMS = ("champion", "a")


@dataclass(frozen=True)
class Backend:
    """One model server: its URL and the version it serves."""

    url: str
    version: str


@dataclass(frozen=True)
class Table:
    """The routing table; replaced whole (never mutated), so a request sees one consistent table."""

    champion: Backend
    challenger: Backend | None = None
    mode: RouteMode = "champion"
    weight: int = 0
    ab_split: int = 50


@dataclass
class Observation:
    """One forwarded call as the router saw it."""

    start: float
    arm: str
    version: str
    ok: bool
    rows: int
    latency_ms: float
    pds: list[float] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)


def ab_arm(key: str, split: int) -> str:
    """Sticky A/B arm of an applicant: ``b`` for ``split`` % of keys (by SHA-256), else ``a``."""
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % 100
    return "b" if bucket < split else "a"


class Router:
    """Routing state, observations and the Starlette app of the local router.

    Args:
        champion: The production server.
        model_name: Model name on the endpoint paths.
        rollout_id: Written into every forwarded request's route header (and so into its audit records).
        timeout_s: Per-call timeout towards a server (a canary timeout falls back to the champion).
        seed: Seed of the weighted coin (reproducible splits in tests).
    """

    def __init__(
        self, champion: Backend, model_name: str, *, rollout_id: str, timeout_s: float = 10.0, seed: int = 0
    ) -> None:
        self.model_name = model_name
        self.rollout_id = rollout_id
        self.timeout_s = timeout_s
        self.table = Table(champion)
        self.observations: list[Observation] = []
        # keyed by (rollout id, arm): one router may run several rollouts one after another
        self.answered: dict[tuple[str, str], int] = {}
        self.in_flight: dict[tuple[str, str], int] = {}
        self.client_errors = 0
        self._rng = random.Random(seed)  # nosec B311  # traffic split by weight, not security
        self._client: httpx.AsyncClient | None = None
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self._pending: dict[int, tuple[str, float]] = {}  # call id -> (arm, start) of calls in flight
        self.app = Starlette(
            routes=[
                Route(f"/v1/models/{model_name}:predict", self._predict_v1, methods=["POST"]),
                Route(f"/v2/models/{model_name}/infer", self._infer_v2, methods=["POST"]),
                Route("/{path:path}", self._get_champion, methods=["GET"]),
            ]
        )

    # -- control (in-process only) --------------------------------------------------------------------
    def start_canary(self, canary: Backend, weight: int) -> None:
        """Send ``weight`` % of new requests to ``canary``."""
        self.table = Table(self.table.champion, canary, "canary", _percent(weight))

    def set_weight(self, weight: int) -> None:
        """Move the canary to ``weight`` %."""
        self.table = Table(self.table.champion, self.table.challenger, self.table.mode, _percent(weight))

    def start_shadow(self, challenger: Backend) -> None:
        """Mirror every request to ``challenger``; the champion keeps answering."""
        self.table = Table(self.table.champion, challenger, "shadow")

    def start_ab(self, challenger: Backend, split: int) -> None:
        """Assign ``split`` % of applicants (sticky, by id hash) to ``challenger``."""
        self.table = Table(self.table.champion, challenger, "ab", ab_split=_percent(split))

    def promote(self) -> None:
        """The challenger becomes the champion and gets all traffic."""
        if self.table.challenger is not None:
            self.table = Table(self.table.challenger)

    def rollback(self) -> None:
        """All new requests to the champion (the table swap leaves requests in flight untouched)."""
        self.table = Table(self.table.champion)

    # -- observations ---------------------------------------------------------------------------------
    def window(self, since: float, audit: AuditCounter | None = None) -> tuple[ArmWindow, ArmWindow]:
        """``(challenger, champion)`` observations of calls started at or after ``since`` (monotonic)."""
        challenger, champion = ArmWindow(), ArmWindow()
        now = time.monotonic()
        for arm_name, started in list(self._pending.values()):
            # a call still in flight has taken at least its age so far: a lower bound, so counting it can only
            # understate a slow canary (conservative for the one-sided rank test), never overstate it
            if started >= since and arm_name in CHALLENGER_ARMS:
                challenger.latencies_ms.append((now - started) * 1000.0)
        for obs in list(self.observations):
            if obs.start < since:
                continue
            arm = challenger if obs.arm in CHALLENGER_ARMS else champion
            arm.requests += 1
            if not obs.ok:
                arm.errors += 1
                continue
            arm.latencies_ms.append(obs.latency_ms)
            arm.scores.extend(obs.pds)
            arm.approved += sum(d == "approve" for d in obs.decisions)
            arm.declined += sum(d == "decline" for d in obs.decisions)
        if audit is not None:
            name = self.challenger_arm()
            key = (audit.rollout_id, name)
            before = self.answered.get(key, 0)
            challenger.audited = audit.count(name)
            challenger.audit_answers = before
            challenger.audit_in_flight = self.answered.get(key, 0) + self.in_flight.get(key, 0) - before
        return challenger, champion

    def challenger_arm(self) -> str:
        """The arm name the current challenger is observed (and audited) under."""
        return {"canary": "canary", "shadow": "shadow", "ab": "b"}.get(self.table.mode, "canary")

    # -- request handling -----------------------------------------------------------------------------
    async def _predict_v1(self, request: Request) -> Response:
        body = await request.body()
        try:
            payload = json.loads(body)
            instances = payload["instances"]
            if not isinstance(instances, list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return JSONResponse(
                {"error": "body must be a JSON object with an 'instances' list"}, status_code=400
            )
        headers = _forwarded(request.headers)
        table = self.table
        if table.mode == "ab" and table.challenger is not None:
            return await self._ab(table, payload, instances, headers)
        if table.mode == "shadow" and table.challenger is not None:
            headers.pop("x-applicant-id", None)
            task = asyncio.create_task(self._shadow(table.challenger, body, headers, len(instances)))
            self._shadow_tasks.add(task)
            task.add_done_callback(self._shadow_tasks.discard)
        headers.pop("x-applicant-id", None)
        return await self._weighted(table, body, headers, len(instances), "predict")

    async def _infer_v2(self, request: Request) -> Response:
        body = await request.body()
        try:
            rows = max(len(i.get("data", [])) for i in json.loads(body)["inputs"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return JSONResponse(
                {"error": "body must be a V2 inference request with 'inputs'"}, status_code=400
            )
        table = self.table
        if table.mode == "ab":
            table = Table(table.champion)  # A/B needs applicant ids: V2 requests stay on the champion
        headers = _forwarded(request.headers)
        headers.pop("x-applicant-id", None)
        return await self._weighted(table, body, headers, rows, "infer")

    async def _weighted(
        self, table: Table, body: bytes, headers: dict[str, str], rows: int, kind: str
    ) -> Response:
        if (
            table.mode == "canary"
            and table.challenger is not None
            and self._rng.random() * 100 < table.weight
        ):
            resp = await self._call(table.challenger, "canary", kind, body, headers, rows)
            if resp is not None and resp.status_code < 500:
                return _relay(resp, "canary")
            # the canary failed: the champion answers instead, the client never sees the failure
        resp = await self._call(table.champion, "champion", kind, body, headers, rows)
        if resp is None:
            self.client_errors += 1
            return JSONResponse({"error": "model server unavailable"}, status_code=503)
        if resp.status_code >= 500:
            self.client_errors += 1
        return _relay(resp, "champion")

    async def _shadow(self, challenger: Backend, body: bytes, headers: dict[str, str], rows: int) -> None:
        await self._call(challenger, "shadow", "predict", body, headers, rows)  # recorded, never returned

    async def _ab(
        self, table: Table, payload: dict[str, Any], instances: list[Any], headers: dict[str, str]
    ) -> Response:
        if table.challenger is None:
            raise RuntimeError("A/B routing without a challenger")
        # the sticky key: each row's applicant_id (by-id requests), else the request's X-Applicant-Id header
        # (one applicant's raw features); rows without a key are not in the experiment and stay on arm a
        header_key = headers.pop("x-applicant-id", None)
        arms = []
        for inst in instances:
            key = inst.get("applicant_id") if isinstance(inst, dict) else None
            key = header_key if key is None else key
            arms.append("a" if key is None else ab_arm(str(key), table.ab_split))
        parts: dict[str, list[int]] = {}
        for index, arm in enumerate(arms):
            parts.setdefault(arm, []).append(index)

        async def run(arm: str, indexes: list[int]) -> tuple[str, list[int], httpx.Response | None]:
            sub = json.dumps({**payload, "instances": [instances[i] for i in indexes]}).encode()
            backend = table.challenger if arm == "b" else table.champion
            resp = await self._call(backend, arm, "predict", sub, headers, len(indexes))  # type: ignore[arg-type]
            if arm == "b" and (resp is None or resp.status_code >= 500):
                resp = await self._call(table.champion, "a", "predict", sub, headers, len(indexes))
            return arm, indexes, resp

        results = await asyncio.gather(*(run(arm, idx) for arm, idx in parts.items()))
        merged: list[Any] = [None] * len(instances)
        for _, indexes, resp in results:
            if resp is None or resp.status_code != 200:
                self.client_errors += resp is None or resp.status_code >= 500
                return _relay(resp, "a") if resp is not None else JSONResponse({"error": "unavailable"}, 503)
            for i, pred in zip(indexes, resp.json()["predictions"], strict=True):
                merged[i] = pred
        arm_header = ",".join(sorted(parts))
        return JSONResponse({"predictions": merged}, headers={"x-creditops-arm": arm_header})

    async def _call(
        self, backend: Backend, arm: str, kind: str, body: bytes, headers: dict[str, str], rows: int
    ) -> httpx.Response | None:
        if self._client is None:
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
            self._client = httpx.AsyncClient(timeout=self.timeout_s, limits=limits)
        path = (
            f"/v1/models/{self.model_name}:predict"
            if kind == "predict"
            else f"/v2/models/{self.model_name}/infer"
        )
        key = (self.rollout_id, arm)
        route = {ROUTE_HEADER: f"arm={arm};rollout={self.rollout_id}"}
        start = time.monotonic()
        self.in_flight[key] = self.in_flight.get(key, 0) + rows
        call_id = id(route)
        self._pending[call_id] = (arm, start)
        resp: httpx.Response | None
        try:
            resp = await self._client.post(backend.url + path, content=body, headers={**headers, **route})
        except httpx.HTTPError:
            resp = None
        finally:
            self.in_flight[key] -= rows
            self._pending.pop(call_id, None)
        ok = resp is not None and resp.status_code < 500
        obs = Observation(start, arm, backend.version, ok, rows, (time.monotonic() - start) * 1000.0)
        if resp is not None and resp.status_code == 200 and kind == "predict":
            preds = resp.json().get("predictions", [])
            obs.pds = [float(p["pd"]) for p in preds]
            obs.decisions = [str(p["decision"]) for p in preds]
            self.answered[key] = self.answered.get(key, 0) + len(preds)
        self.observations.append(obs)
        return resp

    async def _get_champion(self, request: Request) -> Response:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        try:
            resp = await self._client.get(
                self.table.champion.url + request.url.path, params=request.query_params
            )
        except httpx.HTTPError:
            return JSONResponse({"error": "model server unavailable"}, status_code=503)
        return _relay(resp, "champion")


def _percent(value: int) -> int:
    if not 0 <= value <= 100:
        raise ValueError(f"a traffic share must be within 0..100, got {value}")
    return int(value)


def _forwarded(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: headers[k] for k in FORWARDED_HEADERS if k in headers}


def _relay(resp: httpx.Response, arm: str) -> Response:
    media = resp.headers.get("content-type", "application/json")
    return Response(
        resp.content, status_code=resp.status_code, media_type=media, headers={"x-creditops-arm": arm}
    )


class AuditCounter:
    """Counts the audit records a rollout's arm wrote (``output.route == {"arm": ..., "rollout": ...}``)."""

    def __init__(self, audit_url: str, rollout_id: str) -> None:
        self.audit_url, self.rollout_id = audit_url, rollout_id

    def count(self, arm: str) -> int:
        """Records of ``arm`` in this rollout (the JSON is canonical, so the route is an exact substring)."""
        from creditops.governance.audit import TABLE, canonical_json

        needle = canonical_json({"route": {"arm": arm, "rollout": self.rollout_id}})[1:-1]
        pattern = f"%{needle}%"
        if self.audit_url.startswith("sqlite:///"):
            import sqlite3

            sql = f"SELECT count(*) FROM {TABLE} WHERE output LIKE ?"  # nosec B608  # constant table, bound value
            with sqlite3.connect(self.audit_url[len("sqlite:///") :], timeout=30) as conn:
                return int(conn.execute(sql, (pattern,)).fetchone()[0])
        import psycopg

        sql = f"SELECT count(*) FROM {TABLE} WHERE output LIKE %s"  # nosec B608  # constant table, bound value
        with psycopg.connect(self.audit_url) as conn:
            return int(conn.execute(sql, (pattern,)).fetchone()[0])


@contextmanager
def serving(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve an ASGI app with uvicorn from a thread; yield its base URL; stop it afterwards."""
    import socket

    import uvicorn

    sock = socket.socket()
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the router did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


class LocalTarget:
    """The controller's :class:`~creditops.deploy.controller.Target` on the local router."""

    def __init__(self, router: Router, canary: Backend) -> None:
        self.router, self.canary = router, canary
        self._started = False

    def set_canary(self, weight: int) -> None:
        """Start the canary at ``weight`` % or move it there."""
        if not self._started:
            self.router.start_canary(self.canary, weight)
            self._started = True
        else:
            self.router.set_weight(weight)

    def promote(self) -> None:
        """The canary serves everything."""
        self.router.promote()

    def rollback(self) -> None:
        """The champion serves everything new."""
        self.router.rollback()

    def ready(self) -> tuple[bool, str]:
        """The canary's model server answers ready."""
        try:
            r = httpx.get(f"{self.canary.url}/v2/models/{self.router.model_name}/ready", timeout=2)
        except httpx.HTTPError as exc:
            return False, f"canary unreachable: {type(exc).__name__}"
        return r.status_code == 200, f"canary ready: HTTP {r.status_code}"


class LocalWindow:
    """The controller's :class:`~creditops.deploy.controller.WindowSource` on the router (+ the audit log)."""

    def __init__(self, router: Router, audit: AuditCounter | None = None) -> None:
        self.router, self.audit = router, audit

    def window(self, since: float) -> tuple[ArmWindow, ArmWindow]:
        """``(canary, champion)`` since ``since``."""
        return self.router.window(since, self.audit)
