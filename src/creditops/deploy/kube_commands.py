"""Bodies of ``creditops rollout kube ...``: one KServe canary move per call, or a whole judged canary.

``status|start|step|promote|rollback`` make one move; ``run`` drives a canary with automatic analysis
(:func:`kube_run`).

Each call is a separate process (a CI step), so nothing is kept in memory between them: ``step``,
``promote`` and ``rollback`` read the canary from the live InferenceService (:meth:`KServeTarget.resume`).
The Kubernetes client is configured the standard way: a kubeconfig (``--kubeconfig``, ``$KUBECONFIG`` or
``~/.kube/config``), else the in-cluster service account. Every write is a row of the deployment history.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from creditops.config import CanaryConfig
from creditops.deploy.controller import RolloutResult, StepReport, run_canary
from creditops.deploy.history import DeploymentHistory, utc_now
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


def version_label(model_name: str, version: str) -> str:
    """The ``model_version`` the predictor audits for a registered version (``"credit-pd@2"``)."""
    return version if "@" in version else f"{model_name}@{version}"


class _StartRecorder:
    """A target that records ``canary_started`` once the first weight is applied (then just delegates)."""

    def __init__(self, target: KServeTarget, on_start: Callable[[int], None]) -> None:
        self.target, self.on_start, self.started = target, on_start, False

    def set_canary(self, weight: int) -> None:
        self.target.set_canary(weight)
        if not self.started:
            self.started = True
            self.on_start(weight)

    def promote(self) -> None:
        self.target.promote()

    def rollback(self) -> None:
        self.target.rollback()

    def ready(self) -> tuple[bool, str]:
        return self.target.ready()


def kube_run(
    *,
    api: Any,
    history: DeploymentHistory,
    model_name: str,
    environment: str,
    namespace: str,
    name: str,
    version: str,
    storage_uri: str,
    audit_url: str,
    cfg: CanaryConfig,
    champion_version: str | None = None,
    canary_label: str | None = None,
    champion_label: str | None = None,
    prometheus_url: str | None = None,
    mode: str | None = None,
    auto_promote: bool = False,
    actor: str | None = None,
    reason: str = "",
    timeout_s: float = 600.0,
    approval_timeout_s: float = 3600.0,
    on_report: Callable[[StepReport], None] | None = None,
) -> RolloutResult:
    """Canary ``version`` on the InferenceService with the judges deciding every step; promote or roll back.

    The canary starts at ``cfg.steps[0]`` % and moves through the steps while the judges pass on the audit
    log (scores, decisions) and Prometheus (errors, latency; without ``prometheus_url`` those are
    inconclusive, so the canary cannot be promoted and the progress deadline rolls it back). After the last
    step it is promoted once an approval of ``version`` is in the deployment history (or ``auto_promote``).
    Every move is a history row; an error mid-rollout (API, audit log) rolls the canary back and re-raises.
    ``canary_label`` / ``champion_label`` override the audit ``model_version`` of each arm (default
    ``"<model_name>@<version>"``, what a predictor resolving the registry writes).
    """
    from creditops.deploy.kube_analysis import KubeWindow, PrometheusMetrics

    if not storage_uri:
        raise CreditOpsError("rollout kube run needs --storage-uri (the challenger's model location)")
    actor = actor_name(actor)
    if champion_version is None:
        served = history.served_at(environment, model_name, utc_now())
        if served is None:
            raise CreditOpsError(
                f"no version of {model_name} is recorded serving {environment}: pass --champion-version"
            )
        champion_version = served.version
    canary_label = canary_label or version_label(model_name, version)
    champion_label = champion_label or version_label(model_name, champion_version)
    metrics = PrometheusMetrics(prometheus_url, namespace, name) if prometheus_url else None
    if metrics is not None:
        try:
            metrics.check()
        except CreditOpsError as exc:
            raise CreditOpsError(f"--prometheus-url: {exc}") from None
    source = KubeWindow(audit_url, canary_label, champion_label, metrics=metrics, clock=time.time)
    target = api_errors(
        namespace,
        name,
        lambda: KServeTarget(
            api, namespace, name, storage_uri, mode=MODES[mode] if mode else None, poll_s=0.2,
            timeout_s=timeout_s,
        ),
    )  # fmt: skip
    rollout_id = uuid.uuid4().hex[:12]
    base = {"target": "kubernetes", "namespace": namespace, "isvc": name, "mode": target.mode,
            "storage_uri": storage_uri, "rollout": rollout_id, "champion": champion_version,
            "analysis": {"audit": True, "prometheus": bool(metrics)},
            "labels": {"canary": canary_label, "champion": champion_label}}  # fmt: skip

    def record(event: str, *, why: str = "", serving: str | None = None, **details: Any) -> None:
        history.record(
            environment, model_name, version, event, serving=serving, actor=actor, reason=why,
            details={**base, **details},
        )  # fmt: skip

    awaiting: list[float] = []

    def report(r: StepReport) -> None:
        verdicts = [v.to_dict() for v in r.verdicts]
        kind = r.action.kind
        if kind == "advance":
            record("step", why=reason, percent=r.weight, verdicts=verdicts)
        elif kind == "await_approval" and not awaiting:
            awaiting.append(r.at)
            record("awaiting_approval", why=r.action.reason, percent=r.weight, verdicts=verdicts)
        elif kind == "promote":
            approval = history.approval(model_name, version)
            who = approval.actor if approval else "auto-promote"
            record("promoted", why=r.action.reason, serving=version, approved_by=who, verdicts=verdicts)
        elif kind == "rollback":
            record("rolled_back", why=r.action.reason, serving=champion_version, verdicts=verdicts)
        if on_report is not None:
            on_report(r)

    recorder = _StartRecorder(target, lambda w: record("canary_started", why=reason, percent=w))
    try:
        return api_errors(
            namespace,
            name,
            lambda: run_canary(
                recorder, source, cfg, auto_promote=auto_promote,
                approver=lambda: history.approval(model_name, version) is not None, on_report=report,
                clock=time.time, approval_timeout_s=approval_timeout_s,
            ),
        )  # fmt: skip
    except Exception as exc:
        if target.started:  # the canary patch went out (its wait may be what failed): undo it
            why = f"rollout aborted: {type(exc).__name__}: {exc}"
            try:
                api_errors(namespace, name, target.rollback)
            except CreditOpsError as again:
                why += f"; the rollback failed too: {again}"
            record("rolled_back", why=why, serving=champion_version)
        raise
