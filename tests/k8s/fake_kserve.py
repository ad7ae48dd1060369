"""A fake Kubernetes API server for InferenceServices: kmock's emulator plus a simulated KServe controller.

``KServeEmulator`` subclasses ``kmock.KubernetesEmulator`` and serves ``serving.kserve.io/v1beta1``
``inferenceservices`` itself, closing the gaps of the stock emulator that matter to a rollout controller and
to kubectl: 201 on create (409 on a duplicate, 422 on a bad DNS-1035 name), lists with ``kind`` /
``apiVersion``, ``uid`` / ``resourceVersion`` / ``creationTimestamp``, ``generation`` bumped only when the
spec changes, ``status`` as a subresource (a spec write cannot change status, a status write cannot change
spec), RFC 7386 merge patches, content types checked like a real server (a list labelled merge-patch -> 400,
strategic merge on a custom resource -> 415), PUT with 409 on a stale ``resourceVersion``, and a ``/version``
of v1.30. Discovery (``/apis/...``) is kmock's, fed with the CRD's names (kind, short name ``isvc``).

After each spec write the *controller* reconciles asynchronously (``reconcile_delay`` later), the way KServe
v0.20 does: Serverless makes a revision per pod-template change and splits traffic between the latest ready
revision and ``latestRolledoutRevision`` by ``canaryTrafficPercent`` (a rollback after a promotion takes two
reconciles); Standard reports ``canaryStatuses`` and ``CanaryPredictorReady``. A storageUri listed in
``never_ready`` makes a revision / canary that never gets ready.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import dicts, rendering

RESOURCE = kmock.resource("serving.kserve.io", "v1beta1", "inferenceservices")
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MERGE = "application/merge-patch+json"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else (lists too) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _status(code: int, reason: str, message: str) -> aiohttp.web.Response:
    body = {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure", "code": code}
    return aiohttp.web.json_response({**body, "reason": reason, "message": message}, status=code)


@attrs.define(kw_only=True)
class KServeEmulator(kmock.KubernetesEmulator):
    """kmock emulator serving InferenceServices like an API server, with a simulated KServe controller."""

    reconcile_delay: float = 0.05
    never_ready: set[str] = attrs.field(factory=set)
    store: dict[tuple[str, str], dict[str, Any]] = attrs.field(factory=dict)
    writes: list[dict[str, Any]] = attrs.field(factory=list)
    reconciles: int = 0
    loop: Any = None
    _versions: Iterator[int] = attrs.field(factory=lambda: itertools.count(1))
    _revisions: dict[tuple[str, str], list[str]] = attrs.field(factory=dict)
    _templates: dict[tuple[str, str], str] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        info = self.resources[RESOURCE]
        info.kind, info.singular, info.namespaced = "InferenceService", "inferenceservice", True
        info.shortnames = {"isvc"}
        info.verbs = {"get", "list", "create", "update", "patch", "delete", "watch"}
        info.subresources = {"status"}

    async def _serve_version(self, request: rendering.Request) -> rendering.Payload:
        payload = await super()._serve_version(request)
        for entry in payload.get("resources", []):
            if "/" in entry["name"]:  # a subresource has no short names (kubectl warns about ambiguity)
                entry["shortNames"] = []
        return payload

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if request.url.path == "/version":
            return aiohttp.web.json_response({"major": "1", "minor": "30", "gitVersion": "v1.30.0"})
        if request.resource is None or request.resource != RESOURCE:
            return await super()._handle(request)
        try:
            return await self._serve_isvc(request)
        except ValueError as exc:
            return _status(400, "BadRequest", str(exc))

    async def _serve_isvc(self, r: rendering.Request) -> aiohttp.web.StreamResponse:
        method = str(r.method.value if hasattr(r.method, "value") else r.method).upper()
        ns = r.namespace or ""
        if r.name is None:
            if method == "GET":
                items = [o for (n, _), o in sorted(self.store.items()) if not ns or n == ns]
                return aiohttp.web.json_response(
                    {
                        "apiVersion": "serving.kserve.io/v1beta1",
                        "kind": "InferenceServiceList",
                        "metadata": {"resourceVersion": str(next(self._versions))},
                        "items": items,
                    }
                )
            if method == "POST":
                return self._create(ns, r.data)
            return _status(405, "MethodNotAllowed", f"{method} on a collection")
        key = (ns, r.name)
        if key not in self.store:
            return _status(404, "NotFound", f'inferenceservices.serving.kserve.io "{r.name}" not found')
        obj = self.store[key]
        if method == "GET":
            return aiohttp.web.json_response(obj)
        if method == "DELETE":
            del self.store[key]
            return aiohttp.web.json_response(obj)
        if method == "PATCH":
            ctype = (r.headers.get("Content-Type") or r.headers.get("content-type") or "").split(";")[0]
            if ctype == "application/strategic-merge-patch+json":
                return _status(415, "UnsupportedMediaType", "strategic merge patch is not supported for CRs")
            if ctype == MERGE:
                if not isinstance(r.data, dict):
                    return _status(400, "BadRequest", "a merge patch must be a JSON object")
                new = merge_patch(obj, r.data)
            elif ctype == "application/json-patch+json":
                if not isinstance(r.data, list):
                    return _status(400, "BadRequest", "a JSON patch must be a list")
                new = dicts.json_patch_dict(obj, r.data)
            else:
                return _status(415, "UnsupportedMediaType", f"unsupported patch type {ctype!r}")
            self.writes.append({"verb": "patch", "subresource": r.subresource, "type": ctype, "body": r.data})
            return self._store(key, obj, new, r.subresource)
        if method == "PUT":
            sent = str((r.data or {}).get("metadata", {}).get("resourceVersion", ""))
            if sent and sent != obj["metadata"]["resourceVersion"]:
                return _status(
                    409, "Conflict", "the object has been modified; apply your changes to the latest"
                )
            self.writes.append({"verb": "put", "subresource": r.subresource, "type": "", "body": r.data})
            return self._store(key, obj, r.data, r.subresource)
        return _status(405, "MethodNotAllowed", method)

    def _create(self, ns: str, body: dict[str, Any]) -> aiohttp.web.Response:
        meta = body.get("metadata") or {}
        name = meta.get("name", "")
        if not DNS_1035.match(name) or len(name) > 63:
            return _status(422, "Invalid", f"metadata.name {name!r} is not a DNS-1035 label")
        key = (ns or meta.get("namespace", ""), name)
        if key in self.store:
            return _status(
                409, "AlreadyExists", f'inferenceservices.serving.kserve.io "{name}" already exists'
            )
        obj = copy.deepcopy(body)
        obj["metadata"] = {
            **meta,
            "namespace": key[0],
            "uid": str(uuid.uuid4()),
            "generation": 1,
            "resourceVersion": str(next(self._versions)),
            "creationTimestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        obj["status"] = {}
        self.store[key] = obj
        self.writes.append({"verb": "create", "subresource": None, "type": "", "body": body})
        self._schedule(key)
        return aiohttp.web.json_response(obj, status=201)

    def _store(
        self, key: tuple[str, str], old: dict[str, Any], new: dict[str, Any], subresource: str | None
    ) -> aiohttp.web.Response:
        new = copy.deepcopy(new)
        meta = {
            **old["metadata"],
            **{k: v for k, v in (new.get("metadata") or {}).items() if k in ("labels", "annotations")},
        }
        if subresource == "status":
            new = {**old, "status": new.get("status", {})}  # a status write never changes the spec
        else:
            new["status"] = old.get("status", {})  # a spec write never changes the status
            if new.get("spec") != old.get("spec"):
                meta["generation"] = int(old["metadata"]["generation"]) + 1
        meta["resourceVersion"] = str(next(self._versions))
        new["metadata"] = meta
        self.store[key] = new
        if subresource != "status" and meta["generation"] != old["metadata"]["generation"]:
            self._schedule(key)
        return aiohttp.web.json_response(new)

    # -- the simulated KServe controller ----------------------------------------------------------------
    def _schedule(self, key: tuple[str, str]) -> None:
        asyncio.get_running_loop().call_later(self.reconcile_delay, self._reconcile, key)

    def _reconcile(self, key: tuple[str, str]) -> None:
        obj = self.store.get(key)
        if obj is None:
            return
        self.reconciles += 1
        annotations = obj["metadata"].get("annotations") or {}
        standard = annotations.get("serving.kserve.io/deploymentMode") in ("Standard", "RawDeployment")
        status = copy.deepcopy(obj.get("status") or {})
        again = (
            self._reconcile_standard(obj, status) if standard else self._reconcile_knative(key, obj, status)
        )
        status["observedGeneration"] = obj["metadata"]["generation"]
        obj["status"] = status
        obj["metadata"]["resourceVersion"] = str(next(self._versions))
        if again:
            self._schedule(key)

    def _reconcile_knative(self, key: tuple[str, str], obj: dict[str, Any], status: dict[str, Any]) -> bool:
        predictor = obj["spec"]["predictor"]
        template = json.dumps(
            {k: v for k, v in predictor.items() if k != "canaryTrafficPercent"}, sort_keys=True
        )
        revisions = self._revisions.setdefault(key, [])
        comp = status.setdefault("components", {}).setdefault("predictor", {})
        if self._templates.get(key) != template:
            self._templates[key] = template
            revisions.append(f"{key[1]}-predictor-{len(revisions) + 1:05d}")
            comp["latestCreatedRevision"] = revisions[-1]
            if predictor.get("model", {}).get("storageUri") not in self.never_ready:
                comp["latestReadyRevision"] = revisions[-1]
        ready_rev = comp.get("latestReadyRevision", "")
        rolled, previous = comp.get("latestRolledoutRevision"), comp.get("previousRolledoutRevision")
        percent = predictor.get("canaryTrafficPercent")
        again = False
        if not rolled or percent is None:
            if rolled and rolled != ready_rev:
                comp["previousRolledoutRevision"] = rolled
            comp["latestRolledoutRevision"] = ready_rev
            comp["traffic"] = [{"revisionName": ready_rev, "latestRevision": True, "percent": 100}]
        elif rolled == ready_rev and previous and percent < 100:
            # rollback after a full promotion: KServe first points latestRolledoutRevision back at the
            # previous revision, and only the next reconcile routes 'prev' to it
            comp["latestRolledoutRevision"], comp["previousRolledoutRevision"] = previous, rolled
            again = True
        else:
            comp["traffic"] = [
                {"revisionName": ready_rev, "latestRevision": True, "percent": percent, "tag": "latest"},
                {"revisionName": rolled, "latestRevision": False, "percent": 100 - percent, "tag": "prev"},
            ]
        latest_ok = comp.get("latestCreatedRevision") == ready_rev
        status["conditions"] = [
            {"type": "Ready", "status": "True" if ready_rev else "False"},
            {"type": "LatestDeploymentReady", "status": "True" if latest_ok else "False"},
        ]
        return again

    def _reconcile_standard(self, obj: dict[str, Any], status: dict[str, Any]) -> bool:
        canaries = obj["spec"].get("canary") or []
        entries = []
        for c in canaries:
            ready = c["predictor"].get("model", {}).get("storageUri") not in self.never_ready
            entries.append(
                {
                    "name": c["predictor"]["name"],
                    "ready": ready,
                    "trafficPercent": c["trafficPercent"] if ready else 0,
                }
            )
        status["canaryStatuses"] = entries
        canary_weight = sum(e["trafficPercent"] for e in entries)
        name = obj["spec"]["predictor"].get("name", "predictor")
        status["components"] = {"predictor": {"traffic": [{"name": name, "percent": 100 - canary_weight}]}}
        conditions = [{"type": "Ready", "status": "True"}, {"type": "PredictorReady", "status": "True"}]
        if entries:
            ok = all(e["ready"] for e in entries)
            conditions.append({"type": "CanaryPredictorReady", "status": "True" if ok else "False"})
        status["conditions"] = conditions
        return False

    def settle(self) -> None:
        """Mark every object reconciled now (a fixture's initial state, before the test's first write)."""
        for key in list(self.store):
            self._reconcile(key)


@contextmanager
def running_emulator(**kwargs: Any) -> Iterator[tuple[KServeEmulator, str]]:
    """Serve a :class:`KServeEmulator` on a random loopback port from a thread; yield it and its URL.

    A thread of its own because the sync ``kubernetes`` client would deadlock a loop it shares with kmock.
    """
    emulator = KServeEmulator(**kwargs)
    started, stop = threading.Event(), threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        async with emulator, kmock.Server(emulator) as server:
            box["url"], box["loop"] = str(server.url).rstrip("/"), asyncio.get_running_loop()
            started.set()
            while not stop.is_set():
                await asyncio.sleep(0.02)

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced to the test below
            box["error"] = exc
            started.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    if "error" in box:
        raise box["error"]
    emulator.loop = box["loop"]
    try:
        yield emulator, box["url"]
    finally:
        stop.set()
        thread.join(10)


def call_in_loop(emulator: KServeEmulator, fn: Any) -> Any:
    """Run ``fn()`` in the emulator's loop (state changes the controller would make) and return its result."""
    done = threading.Event()
    box: dict[str, Any] = {}

    def wrapped() -> None:
        box["value"] = fn()
        done.set()

    emulator.loop.call_soon_threadsafe(wrapped)
    done.wait(5)
    return box.get("value")
