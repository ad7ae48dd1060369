"""Bodies of ``creditops rollout kube status|start|step|promote|rollback``: one KServe canary move per call.

Each call is a separate process (a CI step), so nothing is kept in memory between them: ``step``,
``promote`` and ``rollback`` read the canary from the live InferenceService (:meth:`KServeTarget.resume`).
The Kubernetes client is configured the standard way: a kubeconfig (``--kubeconfig``, ``$KUBECONFIG`` or
``~/.kube/config``), else the in-cluster service account. Every write is a row of the deployment history.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from creditops.deploy.history import DeploymentHistory
from creditops.deploy.kubernetes import KServeTarget, Mode
from creditops.deploy.release import actor_name
from creditops.errors import CreditOpsError

MODES: dict[str, Mode] = {"serverless": "Knative", "standard": "Standard"}


def custom_objects_api(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """A ``CustomObjectsApi`` from the kubeconfig, or the in-cluster config when there is none."""
    import kubernetes

    cfg = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
    except (kubernetes.config.ConfigException, FileNotFoundError) as kube_exc:
        if kubeconfig:
            raise CreditOpsError(f"--kubeconfig {kubeconfig}: {kube_exc}") from None
        try:
            kubernetes.config.load_incluster_config(client_configuration=cfg)
        except kubernetes.config.ConfigException as exc:
            raise CreditOpsError(
                f"no Kubernetes config: no kubeconfig ({kube_exc}) and not in a pod ({exc})"
            ) from None
    return kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(cfg))


def api_errors(namespace: str, name: str, call: Callable[[], Any]) -> Any:
    """Run ``call``; Kubernetes API and connection failures become one-line :class:`CreditOpsError`."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return call()
    except ApiException as exc:
        if exc.status == 404:
            raise CreditOpsError(f"InferenceService {namespace}/{name} not found") from None
        raise CreditOpsError(
            f"Kubernetes API: HTTP {exc.status} {exc.reason} on InferenceService {namespace}/{name}"
        ) from None
    except HTTPError as exc:
        raise CreditOpsError(f"Kubernetes API unreachable: {type(exc).__name__}: {exc}") from None


def status_document(target: KServeTarget) -> dict[str, Any]:
    """What ``rollout kube status`` prints: traffic, revisions, readiness, the canary (JSON-ready)."""
    obj = target.get()
    predictor = obj["spec"]["predictor"]
    s = target.status()
    canary = [
        {"name": c["predictor"].get("name"), "trafficPercent": c.get("trafficPercent"),
         "storageUri": c["predictor"].get("model", {}).get("storageUri")}
        for c in obj["spec"].get("canary") or []
    ]  # fmt: skip
    return {
        "namespace": target.namespace,
        "name": target.name,
        "mode": "standard" if target.mode == "Standard" else "serverless",
        "ready": s.ready,
        "generation": s.generation,
        "observedGeneration": s.observed_generation,
        "storageUri": predictor.get("model", {}).get("storageUri"),
        "canaryTrafficPercent": predictor.get("canaryTrafficPercent"),
        "canary": canary,
        "canaryInProgress": target.in_progress(),
        "revisions": {"latestCreated": s.latest_created, "latestReady": s.latest_ready,
                      "latestRolledout": s.rolled_out},
        "traffic": s.traffic,
        "canaryStatuses": s.canaries,
    }  # fmt: skip


def idle_problems(target: KServeTarget, doc: dict[str, Any]) -> list[str]:
    """Why the service is not idle (empty when a new canary may start)."""
    problems = []
    if doc["canaryInProgress"]:
        problems.append("a canary is in progress")
    try:
        target.precheck()
    except CreditOpsError as exc:
        problems.append(str(exc))
    return problems


def kube_action(
    action: str,
    *,
    api: Any,
    history: DeploymentHistory | None,
    model_name: str,
    environment: str,
    namespace: str,
    name: str,
    mode: str | None = None,
    storage_uri: str = "",
    percent: int | None = None,
    version: str | None = None,
    actor: str | None = None,
    reason: str = "",
    timeout_s: float = 600.0,
) -> dict[str, Any]:
    """Run one of ``start``, ``step``, ``promote``, ``rollback``; record it; return the status after it."""

    def run() -> dict[str, Any]:
        target = KServeTarget(
            api,
            namespace,
            name,
            storage_uri,
            mode=MODES[mode] if mode else None,
            poll_s=0.2,
            timeout_s=timeout_s,
        )
        if action == "start":
            if not storage_uri:
                raise CreditOpsError(
                    "rollout kube start needs --storage-uri (the challenger's model location)"
                )
            target.set_canary(_percent(percent))
        else:
            if action != "rollback" or target.in_progress():
                target.resume()
            if action == "step":
                target.set_canary(_percent(percent))
            elif action == "promote":
                target.promote()
            else:
                target.rollback()
        return {"candidate": target.candidate_uri, "status": status_document(target)}

    done = api_errors(namespace, name, run)
    if history is not None:
        event = {"start": "canary_started", "step": "step", "promote": "promoted", "rollback": "rolled_back"}
        label = version or done["candidate"] or "unknown"
        history.record(
            environment,
            model_name,
            label,
            event[action],
            serving=label if action == "promote" else None,
            actor=actor_name(actor),
            reason=reason,
            details={"target": "kubernetes", "namespace": namespace, "isvc": name,
                     "mode": done["status"]["mode"], "storage_uri": done["candidate"], "percent": percent},
        )  # fmt: skip
    return done["status"]


def _percent(percent: int | None) -> int:
    if percent is None or not 0 < percent < 100:
        raise CreditOpsError(f"--percent must be within 1..99 for a canary step, got {percent}")
    return percent
