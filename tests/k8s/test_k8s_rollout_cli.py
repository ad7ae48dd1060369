"""``creditops rollout kube ...`` as CI runs it: one CLI call per move, a kubeconfig, the fake API server.

Each step is a fresh CLI invocation (nothing kept in memory between moves) with the real ``kubernetes``
client; the test asserts the exact
merge patches the server received, in order, in both KServe modes, the JSON status, ``--require-idle``, the
deployment history rows (who, why), and a one-line error with a non-zero exit for an unknown service.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess  # nosec B404  # the test runs the real CLI
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import NAME, NS
from test_k8s_kserve_target import NEW, OLD, deploy, patches

from creditops.cli import main
from creditops.deploy.kubernetes import GROUP, PLURAL, PREVIOUS_ANNOTATION, VERSION


@pytest.fixture
def cli(cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run ``creditops`` against the fake server; returns (exit code, stdout, stderr).

    In-process through :func:`creditops.cli.main` (importing ``kubernetes`` takes seconds on a loaded
    machine), or as a separate process with ``process=True`` (what CI runs, traceback included if any).
    """
    _, url = cluster
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": url}}],
                "users": [{"name": "ci", "user": {"token": "t"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "ci"}}],
                "current-context": "fake",
            }
        )
    )
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"workdir": str(tmp_path / "work")}))

    def run(*args: str, process: bool = False) -> tuple[int, str, str]:
        argv = ["--config", str(config), *args, "--namespace", NS, "--kubeconfig", str(kubeconfig)]
        if process:
            cmd = [sys.executable, "-m", "creditops.cli", *argv]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)  # nosec B603
            return done.returncode, done.stdout, done.stderr
        capsys.readouterr()
        code = main(argv)
        out, err = capsys.readouterr()
        return code, out, err

    run.history = tmp_path / "work" / "deployments.db"  # type: ignore[attr-defined]
    return run


def history_rows(path: Path) -> list[tuple[str, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT environment, version, event, serving, actor, reason FROM deployment_history ORDER BY id"
        ).fetchall()


def ok(result: tuple[int, str, str]) -> dict[str, Any]:
    code, out, err = result
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("mode", ["Knative", "Standard"])
def test_start_step_promote_via_the_cli(cli: Any, api: Any, cluster: Any, mode: str) -> None:
    emulator, _ = cluster
    deploy(api, emulator, mode)
    flag = ["--isvc", NAME]
    idle = ok(cli("rollout", "kube", "status", *flag, "--require-idle"))
    assert idle["ready"] and not idle["canaryInProgress"] and idle["storageUri"] == OLD
    assert idle["mode"] == ("serverless" if mode == "Knative" else "standard")

    who = ["--by", "alice", "--reason", "passed staging", "--version", "2"]
    doc = ok(cli("rollout", "kube", "start", *flag, "--storage-uri", NEW, "--percent", "10", *who))
    assert doc["canaryInProgress"]
    code, out, err = cli("rollout", "kube", "status", *flag, "--require-idle")
    assert code == 1 and json.loads(out)["canaryInProgress"] and "a canary is in progress" in err
    ok(cli("rollout", "kube", "step", *flag, "--percent", "50", *who))
    doc = ok(cli("rollout", "kube", "promote", *flag, *who))
    assert not doc["canaryInProgress"] and doc["storageUri"] == NEW

    model_new = {"modelFormat": {"name": "xgboost"}, "storageUri": NEW}
    if mode == "Knative":
        assert doc["traffic"] == [
            {"revisionName": "credit-pd-predictor-00002", "latestRevision": True, "percent": 100}
        ]
        expected = [
            {"spec": {"predictor": {"canaryTrafficPercent": 10, "model": {"storageUri": NEW}}}},
            {"spec": {"predictor": {"canaryTrafficPercent": 50}}},
            {"spec": {"predictor": {"canaryTrafficPercent": None}}},
        ]
    else:
        assert doc["canary"] == [] and doc["canaryStatuses"] == []
        canary = {"name": "canary", "model": model_new}
        champion = {"name": "primary", "model": {"modelFormat": {"name": "xgboost"}, "storageUri": OLD}}
        kept = {"annotations": {PREVIOUS_ANNOTATION: json.dumps(champion, sort_keys=True)}}
        expected = [
            {"spec": {"canary": [{"trafficPercent": 10, "predictor": canary}]}},
            {"spec": {"canary": [{"trafficPercent": 50, "predictor": canary}]}},
            {
                "metadata": kept,
                "spec": {"predictor": {"name": "canary", "model": {"storageUri": NEW}}, "canary": []},
            },
        ]
    assert patches(emulator) == expected
    assert history_rows(cli.history) == [
        ("prod", "2", "canary_started", "", "alice", "passed staging"),
        ("prod", "2", "step", "", "alice", "passed staging"),
        ("prod", "2", "promoted", "2", "alice", "passed staging"),
    ]


@pytest.mark.parametrize("mode", ["Knative", "Standard"])
def test_start_then_rollback_via_the_cli(cli: Any, api: Any, cluster: Any, mode: str) -> None:
    emulator, _ = cluster
    deploy(api, emulator, mode)
    flag = ["--isvc", NAME, "--env", "staging", "--by", "ci"]
    ok(cli("rollout", "kube", "start", *flag, "--storage-uri", NEW, "--percent", "25"))
    doc = ok(cli("rollout", "kube", "rollback", *flag, "--reason", "judges failed"))
    assert not doc["canaryInProgress"]
    if mode == "Knative":
        assert patches(emulator) == [
            {"spec": {"predictor": {"canaryTrafficPercent": 25, "model": {"storageUri": NEW}}}},
            {"spec": {"predictor": {"canaryTrafficPercent": 0}}},
        ]
        assert {t.get("tag"): t["percent"] for t in doc["traffic"]} == {"prev": 100, "latest": 0}
    else:
        canary = {"name": "canary", "model": {"modelFormat": {"name": "xgboost"}, "storageUri": NEW}}
        assert patches(emulator) == [
            {"spec": {"canary": [{"trafficPercent": 25, "predictor": canary}]}},
            {"spec": {"canary": []}},
        ]
        assert doc["storageUri"] == OLD and doc["canary"] == []
    assert [r[2:] for r in history_rows(cli.history)] == [
        ("canary_started", "", "ci", ""),
        ("rolled_back", "", "ci", "judges failed"),
    ]
    assert history_rows(cli.history)[0][1] == NEW  # no --version: the storage URI names the candidate


@pytest.mark.parametrize("mode", ["Knative", "Standard"])
def test_rollback_after_a_promotion_made_by_another_process(
    cli: Any, api: Any, cluster: Any, mode: str
) -> None:
    """Promote in one CLI call, roll back in the next: the previous champion serves again."""
    emulator, _ = cluster
    deploy(api, emulator, mode)
    flag = ["--isvc", NAME, "--by", "ci"]
    ok(cli("rollout", "kube", "start", *flag, "--storage-uri", NEW, "--percent", "10", "--version", "2"))
    ok(cli("rollout", "kube", "promote", *flag, "--version", "2"))
    emulator.writes.clear()
    doc = ok(
        cli("rollout", "kube", "rollback", *flag, "--version", "2", "--reason", "incident 7", process=True)
    )
    assert not doc["canaryInProgress"] and doc["ready"]
    if mode == "Knative":
        assert patches(emulator) == [{"spec": {"predictor": {"canaryTrafficPercent": 0}}}]
        assert {t.get("tag"): t["percent"] for t in doc["traffic"]} == {"prev": 100, "latest": 0}
        assert doc["revisions"]["latestRolledout"] == "credit-pd-predictor-00001"
    else:
        assert doc["storageUri"] == OLD and doc["canary"] == []
        obj = api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, NAME)
        assert obj["spec"]["predictor"]["name"] == "primary"
        assert PREVIOUS_ANNOTATION not in obj["metadata"]["annotations"]
        code, out, err = cli("rollout", "kube", "rollback", *flag)
        assert code == 2 and "nothing to roll back" in out + err  # undone once, not flipped back again
    assert history_rows(cli.history)[-1][2:] == ("rolled_back", "", "ci", "incident 7")


def test_unknown_isvc_is_one_line_and_nonzero(cli: Any, api: Any, cluster: Any) -> None:
    emulator, _ = cluster
    deploy(api, emulator, "Knative")
    for args in (
        ("rollout", "kube", "status", "--isvc", "no-such"),
        ("rollout", "kube", "start", "--isvc", "no-such", "--storage-uri", NEW, "--percent", "10"),
        ("rollout", "kube", "promote", "--isvc", "no-such"),
    ):
        code, out, err = cli(*args, process=args[2] == "start")
        lines = (out + err).strip().splitlines()
        assert code == 2 and lines == [f"error: InferenceService {NS}/no-such not found"], (out, err)
    assert emulator.writes == []


def test_step_without_a_canary_and_bad_percent_are_refused(cli: Any, api: Any, cluster: Any) -> None:
    emulator, _ = cluster
    deploy(api, emulator, "Standard")
    code, out, err = cli("rollout", "kube", "step", "--isvc", NAME, "--percent", "20")
    assert code == 2 and "has no canary in progress" in out + err and "Traceback" not in err
    code, out, err = cli("rollout", "kube", "start", "--isvc", NAME, "--storage-uri", NEW, "--percent", "100")
    assert code == 2 and "--percent must be within 1..99" in out + err
    assert emulator.writes == []
