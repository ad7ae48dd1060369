"""The fake API server behaves like a real one where it matters; the README's kubectl commands run on it."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from conftest import NAME, NS, isvc
from kubernetes.client.exceptions import ApiException

from creditops.deploy.kubernetes import GROUP, PLURAL, VERSION, KServeTarget

KUBECTL = shutil.which("kubectl.1.32") or (
    "/usr/lib/google-cloud-sdk/bin/kubectl.1.32"
    if Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.32").exists()
    else shutil.which("kubectl")
)


def wait_observed(api: Any, generation: int) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        obj = api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, NAME)
        if obj["status"].get("observedGeneration") == generation:
            return obj
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_api_server_semantics(api: Any, cluster: Any) -> None:
    emulator, url = cluster
    created = api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, isvc("Knative"))
    meta = created["metadata"]
    assert meta["generation"] == 1 and meta["uid"] and meta["resourceVersion"] and meta["creationTimestamp"]
    with pytest.raises(ApiException) as dup:
        api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, isvc("Knative"))
    assert dup.value.status == 409
    bad = isvc("Knative")
    bad["metadata"]["name"] = "Credit_PD"
    with pytest.raises(ApiException) as invalid:
        api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, bad)
    assert invalid.value.status == 422
    wait_observed(api, 1)

    # a metadata-only change keeps the generation; a spec change bumps it
    same = api.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, NAME, {"metadata": {"labels": {"a": "b"}}}
    )
    assert same["metadata"]["generation"] == 1
    # status is a subresource: a spec write cannot change it, a status write cannot change the spec
    moved = api.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        NS,
        PLURAL,
        NAME,
        {"spec": {"predictor": {"minReplicas": 2}}, "status": {"observedGeneration": 99}},
    )
    assert moved["metadata"]["generation"] == 2 and moved["status"]["observedGeneration"] == 1
    st = api.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        NS,
        PLURAL,
        NAME,
        {"spec": {"predictor": {"minReplicas": 5}}, "status": {"url": "http://x"}},
    )
    assert st["spec"]["predictor"]["minReplicas"] == 2 and st["status"]["url"] == "http://x"

    # PUT with a stale resourceVersion conflicts
    stale = dict(created)
    with pytest.raises(ApiException) as conflict:
        api.replace_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, NAME, stale)
    assert conflict.value.status == 409

    # a JSON-patch list labelled merge-patch (what kubernetes 30.1 sends) is refused like a real server does
    with pytest.raises(ApiException) as mislabelled:
        api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            NS,
            PLURAL,
            NAME,
            [{"op": "replace", "path": "/spec/predictor/minReplicas", "value": 3}],
        )
    assert mislabelled.value.status == 400
    listed = api.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
    assert listed["kind"] == "InferenceServiceList" and [o["metadata"]["name"] for o in listed["items"]] == [
        NAME
    ]
    with pytest.raises(ApiException) as missing:
        api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "nope")
    assert missing.value.status == 404


def test_strategic_merge_on_a_custom_resource_is_415(cluster: Any) -> None:
    import httpx

    emulator, url = cluster
    cfg = kubernetes.client.Configuration()
    cfg.host = url
    kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(cfg)).create_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, isvc("Knative")
    )
    path = f"{url}/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}/{NAME}"
    r = httpx.patch(path, content=b"{}", headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert r.status_code == 415


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_readme_kubectl_equivalents_run_against_the_fake_server(
    api: Any, cluster: Any, tmp_path: Path
) -> None:
    emulator, url = cluster
    api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, isvc("Knative"))
    wait_observed(api, 1)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": url}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "c", "context": {"cluster": "fake", "user": "u", "namespace": NS}}],
                "current-context": "c",
            }
        )
    )
    base = [str(KUBECTL), "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache")]

    def kubectl(*args: str) -> str:
        done = subprocess.run([*base, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "Warning" not in done.stderr, done.stderr
        return done.stdout

    # the README's commands, in order: start a canary at 10 %, read the split and the revisions, roll back,
    # promote (each followed by what the controller reads)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("The same by hand, Serverless mode:", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [
        shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines() if line.strip()
    ]
    assert [c[:2] for c in commands] == [["kubectl", "patch"], ["kubectl", "get"], ["kubectl", "get"]] + [
        ["kubectl", "patch"]
    ] * 2
    prev = "jsonpath={.status.components.predictor.traffic[?(@.tag=='prev')].percent}"
    latest = "jsonpath={.status.components.predictor.traffic[?(@.latestRevision==true)].percent}"
    assert "patched" in kubectl(*commands[0][1:])
    wait_observed(api, 2)
    assert kubectl(*commands[1][1:]) == "90"
    assert kubectl("get", "isvc", NAME, "-o", latest) == "10"
    assert kubectl(*commands[2][1:]) == "credit-pd-predictor-00002 credit-pd-predictor-00002"
    kubectl(*commands[3][1:])  # roll back: 0 %
    wait_observed(api, 3)
    assert kubectl("get", "isvc", NAME, "-o", prev) == "100"
    new = "s3://models/credit-pd/2"
    assert KServeTarget(api, NS, NAME, new).status().percent(tag="prev") == 100  # what the controller reads
    kubectl(*commands[4][1:])  # promote: the percent removed
    wait_observed(api, 4)
    assert kubectl("get", "isvc", NAME, "-o", latest) == "100"
    status = KServeTarget(api, NS, NAME, new).status()
    assert status.rolled_out == "credit-pd-predictor-00002" and len(status.traffic) == 1
    assert NAME in kubectl("get", "isvc")
