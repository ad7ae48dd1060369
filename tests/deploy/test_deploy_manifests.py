"""The kustomize overlays render, validate like the API server would, and keep the platform's properties.

Each check is a function over rendered documents; every one is shown failing on a document built to fail it.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import OVERLAYS, ROOT

from tools import deploy_checks

Docs = list[dict[str, Any]]
SECRETISH = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$|CONNECTION", re.I)
WORKLOADS = {"Deployment", "StatefulSet", "Job", "CronJob", "DaemonSet"}


def by_kind(docs: Docs, kind: str) -> Docs:
    return [d for d in docs if d["kind"] == kind]


def one(docs: Docs, kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def pod_specs(docs: Docs) -> list[tuple[str, dict[str, Any]]]:
    """(where, pod spec) of every workload and of each InferenceService component."""
    out = []
    for d in docs:
        where = f"{d['kind']}/{d['metadata']['name']}"
        if d["kind"] in WORKLOADS:
            tpl = (
                d["spec"]["jobTemplate"]["spec"]["template"]
                if d["kind"] == "CronJob"
                else d["spec"]["template"]
            )
            out.append((where, tpl["spec"]))
        elif d["kind"] == "InferenceService":
            for comp in ("predictor", "explainer"):
                spec = d["spec"].get(comp)
                if spec:
                    containers = list(spec.get("containers", []))
                    if "model" in spec:
                        containers.append(spec["model"])
                    out.append((f"{where}.{comp}", {**spec, "containers": containers}))
    return out


# ---------------------------------------------------------------- property checks (each returns findings)


def security_findings(docs: Docs) -> list[str]:
    """Non-root pods, no privilege escalation, all capabilities dropped, read-only root fs, limits set."""
    found = []
    for where, spec in pod_specs(docs):
        pod_sc = spec.get("securityContext", {})
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            sc = c.get("securityContext", {})
            name = f"{where}/{c.get('name', 'model')}"
            if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
                found.append(f"{name}: runAsNonRoot not true")
            if sc.get("runAsUser", pod_sc.get("runAsUser", 0)) < 10000:
                found.append(f"{name}: runAsUser below 10000")
            if sc.get("allowPrivilegeEscalation") is not False:
                found.append(f"{name}: allowPrivilegeEscalation not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                found.append(f"{name}: readOnlyRootFilesystem not true")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                found.append(f"{name}: capabilities not dropped")
            limits = c.get("resources", {}).get("limits", {})
            if not {"cpu", "memory"} <= set(limits):
                found.append(f"{name}: cpu/memory limits missing")
    return found


def secret_findings(docs: Docs) -> list[str]:
    """No Secret objects and no literal value for a credential-looking variable: references only."""
    found = [f"Secret/{d['metadata']['name']}: secret object in the tree" for d in by_kind(docs, "Secret")]
    for where, spec in pod_specs(docs):
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            for env in c.get("env", []):
                if SECRETISH.search(env["name"]) and "value" in env:
                    found.append(f"{where}: {env['name']} has a literal value")
    for cm in by_kind(docs, "ConfigMap"):
        for key in cm.get("data", {}):
            if SECRETISH.search(key):
                found.append(f"ConfigMap/{cm['metadata']['name']}: key {key} looks like a credential")
    return found


def network_findings(docs: Docs) -> list[str]:
    """A default-deny ingress policy, and every Service's pods admitted by some policy."""
    policies = by_kind(docs, "NetworkPolicy")
    found = []
    if not any(p["spec"]["podSelector"] == {} and "ingress" not in p["spec"] for p in policies):
        found.append("no default-deny ingress NetworkPolicy")
    for svc in by_kind(docs, "Service"):
        selector = svc["spec"].get("selector")
        if not selector:
            continue
        admitted = any(
            p["spec"].get("ingress")
            and p["spec"]["podSelector"].get("matchLabels", {}).items() <= selector.items()
            and p["spec"]["podSelector"] != {}
            for p in policies
        )
        if not admitted:
            found.append(f"Service/{svc['metadata']['name']}: no NetworkPolicy admits its pods")
    return found


def backing_findings(env: str, docs: Docs) -> list[str]:
    """dev runs Postgres + Redis in the cluster; staging/prod point `postgres`/`redis` at the managed ones."""
    found = []
    statefulsets = {d["metadata"]["name"] for d in by_kind(docs, "StatefulSet")}
    services = {d["metadata"]["name"]: d for d in by_kind(docs, "Service")}
    for name in ("postgres", "redis"):
        svc = services.get(name)
        if svc is None:
            found.append(f"no Service {name}")
        elif env == "dev":
            if name not in statefulsets or svc["spec"].get("type") == "ExternalName":
                found.append(f"dev: {name} must be an in-cluster StatefulSet")
        else:
            if name in statefulsets:
                found.append(f"{env}: {name} StatefulSet present (managed service expected)")
            if svc["spec"].get("externalName") != f"{name}.{env}.creditops.internal":
                found.append(f"{env}: Service {name} does not point at {name}.{env}.creditops.internal")
    return found


def isvc_findings(env: str, docs: Docs) -> list[str]:
    """The InferenceService: predictor + explainer, logger to an existing monitor Service, no percent left."""
    found = []
    isvc = one(docs, "InferenceService", "credit-pd")
    spec = isvc["spec"]
    if "explainer" not in spec:
        found.append("no explainer")
    if "canaryTrafficPercent" in spec["predictor"]:
        found.append("canaryTrafficPercent in the manifest (the rollout controller owns it)")
    logger = spec["predictor"].get("logger", {})
    host = re.match(r"http://([a-z0-9-]+)[/:]", logger.get("url", ""))
    services = {d["metadata"]["name"] for d in by_kind(docs, "Service")}
    if logger.get("mode") != "all" or not host or host.group(1) not in services:
        found.append(f"logger does not send everything to an existing Service: {logger}")
    if env == "prod" and spec["predictor"].get("minReplicas", 0) < 2:
        found.append("prod predictor minReplicas < 2")
    storage = spec["predictor"]["model"]["storageUri"]
    if not storage.startswith(f"s3://creditops-{env}-model-registry/"):
        found.append(f"storageUri {storage} is not the {env} model-registry bucket")
    return found


# ---------------------------------------------------------------- the overlays


@pytest.mark.parametrize("env", OVERLAYS)
def test_overlay_validates_against_crd_and_builtin_schemas(env, rendered, isvc_validator) -> None:
    findings, counts = deploy_checks.check_documents(rendered[env], isvc_validator)
    assert findings == []
    assert counts["inferenceservices"] == 1 and counts["builtin"] >= 25


@pytest.mark.parametrize("env", OVERLAYS)
def test_overlay_properties(env, rendered) -> None:
    docs = rendered[env]
    assert security_findings(docs) == []
    assert secret_findings(docs) == []
    assert network_findings(docs) == []
    assert backing_findings(env, docs) == []
    assert isvc_findings(env, docs) == []
    namespaces = {d["metadata"].get("namespace") for d in docs}
    assert namespaces == {"creditops" if env == "prod" else f"creditops-{env}"}
    images = {c["image"] for _, s in pod_specs(docs) for c in s["containers"] if "image" in c}
    ours = {i for i in images if i.startswith("ghcr.io/creditops/")}
    assert ours and all(i.endswith(f":{env}") for i in ours), ours


def test_alert_rules_are_mounted_from_the_monitoring_file(rendered) -> None:
    rules = (ROOT / "manifests/base/prometheus/rules/creditops-alerts.yaml").read_text()
    for docs in rendered.values():
        (cm,) = [
            d
            for d in by_kind(docs, "ConfigMap")
            if d["metadata"]["name"].startswith("creditops-prometheus-rules")
        ]
        assert cm["data"]["creditops-alerts.yaml"] == rules


# ---------------------------------------------------------------- each check fails on input built to fail it


def test_isvc_validator_rejects_unknown_field_duplicate_key_bad_name_and_percent(
    rendered, isvc_validator
) -> None:
    good = one(rendered["prod"], "InferenceService", "credit-pd")
    assert isvc_validator.errors(good) == []

    unknown = copy.deepcopy(good)
    unknown["spec"]["predictor"]["model"]["storageURI"] = "s3://typo"
    assert any("storageURI" in e for e in isvc_validator.errors(unknown))

    dup = copy.deepcopy(good)
    ports = dup["spec"]["explainer"]["containers"][0]["ports"]
    ports.append(dict(ports[0]))
    assert any("duplicate entry" in e for e in isvc_validator.errors(dup))

    bad_name = copy.deepcopy(good)
    bad_name["metadata"]["name"] = "Credit_PD"
    assert any("DNS-1035" in e for e in isvc_validator.errors(bad_name))

    percent = copy.deepcopy(good)
    percent["spec"]["predictor"]["canaryTrafficPercent"] = 150
    errors = isvc_validator.errors(percent)
    assert errors == ["spec.predictor.canaryTrafficPercent: 150 not within 0..100"]

    wrong_type = copy.deepcopy(good)
    wrong_type["spec"]["predictor"]["minReplicas"] = "two"
    assert any("minReplicas" in e for e in isvc_validator.errors(wrong_type))


def test_plain_crd_schema_would_accept_the_unknown_field(isvc_validator) -> None:
    # Why strict_schema exists: the raw CRD schema lets a misspelt field through silently.
    import jsonschema

    raw = deploy_checks.load_crd_schema()
    doc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "x"},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "m"}, "storageURI": "s3://x"}}},
    }
    assert list(jsonschema.Draft7Validator(raw).iter_errors(doc)) == []
    assert any("storageURI" in e for e in isvc_validator.errors(doc))


def test_builtin_kinds_are_validated_strictly(rendered) -> None:
    deploy = copy.deepcopy(one(rendered["dev"], "Deployment", "creditops-mlflow"))
    assert deploy_checks.builtin_errors(deploy) == []
    deploy["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    assert deploy_checks.builtin_errors(deploy)
    svc = copy.deepcopy(one(rendered["dev"], "Service", "mlflow"))
    svc["spec"]["ports"][0]["port"] = "http"
    assert deploy_checks.builtin_errors(svc)


def test_unknown_custom_resource_is_a_finding(isvc_validator) -> None:
    doc = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    findings, _ = deploy_checks.check_documents([doc], isvc_validator)
    assert findings and "no schema" in findings[0]


def test_property_checks_fail_on_broken_documents(rendered) -> None:
    docs = copy.deepcopy(rendered["prod"])
    mlflow = one(docs, "Deployment", "creditops-mlflow")
    container = mlflow["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["allowPrivilegeEscalation"] = True
    del container["resources"]["limits"]
    mlflow["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = 0
    found = security_findings(docs)
    assert any("allowPrivilegeEscalation" in f for f in found)
    assert any("limits" in f for f in found)
    assert any("runAsUser" in f for f in found)

    container["env"].append({"name": "MLFLOW_DB_PASSWORD", "value": "hunter2"})
    docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "leak"}, "data": {}})
    found = secret_findings(docs)
    assert any("literal value" in f for f in found) and any("secret object" in f for f in found)

    no_deny = [
        d
        for d in docs
        if not (d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "default-deny-ingress")
    ]
    no_feast = [
        d for d in no_deny if not (d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "allow-feast")
    ]
    found = network_findings(no_feast)
    assert "no default-deny ingress NetworkPolicy" in found
    assert any("feast-server" in f for f in found)

    dev_like = [d for d in docs if d["kind"] != "Service" or d["metadata"]["name"] != "postgres"]
    assert backing_findings("prod", dev_like) == ["no Service postgres"]
    assert backing_findings("dev", docs)  # ExternalName where dev needs a StatefulSet

    isvc = one(docs, "InferenceService", "credit-pd")
    isvc["spec"]["predictor"]["canaryTrafficPercent"] = 100
    isvc["spec"]["predictor"]["minReplicas"] = 1
    isvc["spec"]["predictor"]["logger"]["url"] = "http://nowhere/v1/models/x:predict"
    found = isvc_findings("prod", docs)
    assert len(found) == 3, found


def test_broken_overlay_fails_to_render(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    kust = tmp_path / "manifests/overlays/dev/kustomization.yaml"
    kust.write_text(kust.read_text().replace("../../base", "../../no-such-base"))
    with pytest.raises(subprocess.CalledProcessError):
        deploy_checks.render(tmp_path / "manifests/overlays/dev")
    assert deploy_checks.main([str(tmp_path / "manifests/overlays/dev")]) == 1


# ---------------------------------------------------------------- pipeline settings and recurring runs


@pytest.mark.parametrize("env", OVERLAYS)
def test_pipeline_settings_validate_with_each_overlays_environment(env, rendered, monkeypatch) -> None:
    from creditops.config import load_config

    docs = rendered[env]
    endpoints = next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == "creditops-endpoints")
    mounted = next(
        d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].startswith("creditops-settings")
    )
    text = mounted["data"]["settings.yaml"]
    assert text == (ROOT / "manifests/base/settings.yaml").read_text()  # one file for every environment
    assert not re.search(r"password|token|\$\{[A-Z_]*(PASSWORD|REDIS)\b", text.split("\nworkdir")[1], re.I)
    for key, value in endpoints["data"].items():  # what the schedule Job's envFrom gives the expansion
        monkeypatch.setenv(key, value)
    path = ROOT / "manifests/base/settings.yaml"
    settings = load_config(path)
    assert settings.feast.online_store == "redis" and settings.feast.offline_store == "postgres"
    assert settings.feast.postgres_password == ""  # the file becomes a KFP run parameter: no credential
    assert settings.feast.postgres_sslmode == ("disable" if env == "dev" else "require")
    assert settings.training.n_trials == {"dev": 20, "staging": 30, "prod": 100}[env]


def test_pipeline_settings_with_unknown_key_is_refused(tmp_path: Path) -> None:
    from creditops.config import load_config
    from creditops.errors import ConfigError

    bad = yaml.safe_load((ROOT / "manifests/base/settings.yaml").read_text())
    bad["feast"]["online_stor"] = "redis"
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="online_stor"):
        load_config(path)


def test_standard_mode_component_renders_and_validates(tmp_path: Path, isvc_validator) -> None:
    overlay = tmp_path / "manifests" / "overlays" / "prod-standard"
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources: [../prod]\ncomponents: [../../components/standard-mode]\n"
    )
    docs = deploy_checks.render(overlay)
    isvc = one(docs, "InferenceService", "credit-pd")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    assert "canary" not in isvc["spec"]
    findings, _ = deploy_checks.check_documents(docs, isvc_validator)
    assert findings == []
