"""Dockerfiles, workflows, shell and Python pass their linters, and each linter fails on input built to fail.

hadolint, actionlint and bandit are pinned wheels of the dev extra (requirements.lock); checkov lives in its
own venv (.venv-checkov, `make static` builds it); promtool and shellcheck are Debian packages (.ci/run
installs them if missing).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_helpers import ROOT

BIN = Path(sys.executable).parent
DOCKERFILES = [
    "Dockerfile",
    "controller.Dockerfile",
    "kserve/predictor.Dockerfile",
    "kserve/explainer.Dockerfile",
    "kserve/detector.Dockerfile",
    "kserve/alibi.Dockerfile",
]
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


def run(*argv: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_hadolint_clean_and_fails_on_a_bad_dockerfile(tmp_path: Path) -> None:
    ok = run(BIN / "hadolint", *DOCKERFILES)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\nUSER root\n")
    out = run(BIN / "hadolint", bad)
    assert out.returncode != 0 and "DL3007" in out.stdout and "DL3008" in out.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_image_runs_as_non_root_from_the_make_locks(dockerfile: str) -> None:
    text = (ROOT / dockerfile).read_text()
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0") and int(users[-1]) >= 10000
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    if any(f.startswith("python:") for f in froms):
        # Built from scratch: from the same lock as the Makefile (core or alibi), through the same uv pin.
        make = (ROOT / "Makefile").read_text()
        uv_pin = re.search(r"UV_VERSION := (\S+)", make).group(1)
        assert f"uv=={uv_pin}" in text
        assert "requirements.lock" in text
    else:
        assert froms == ["${BASE_IMAGE}"]  # the project image of the same commit


def test_pipeline_image_is_configurable_at_compile_time(tmp_path: Path) -> None:
    image = "registry.example/creditops@sha256:" + "ab" * 32
    code = (
        "import sys; from pathlib import Path; from pipelines.training import compile_pipeline; "
        "compile_pipeline(Path(sys.argv[1]))"
    )
    out = tmp_path / "training.yaml"
    env = {"CREDITOPS_PIPELINE_IMAGE": image, "PATH": str(BIN), "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(out)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    images = set(re.findall(r"^\s+image: (\S+)", out.read_text(), re.M))
    assert images == {image}
    checked_in = set(re.findall(r"^\s+image: (\S+)", (ROOT / "pipelines/training.yaml").read_text(), re.M))
    assert image not in checked_in


def test_actionlint_clean_and_fails_on_a_broken_workflow(tmp_path: Path) -> None:
    ok = run(BIN / "actionlint")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    repo = tmp_path / "repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".git").mkdir()
    (repo / ".github" / "workflows" / "bad.yml").write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.event.head_commit.message }}\n"
        "      - uses: actions/checkout@v5\n        with:\n          fetch-depht: 0\n"
    )
    bad = run(BIN / "actionlint", cwd=repo)
    assert bad.returncode != 0 and "fetch-depht" in bad.stdout


def test_workflows_cover_the_required_stages() -> None:
    wf = {p.stem: p.read_text() for p in (ROOT / ".github" / "workflows").glob("*.yml")}
    assert {"ci_data", "ci_model", "cd_staging", "cd_production"} <= set(wf)
    assert "bandit" in wf["ci_model"] and "pip-audit" in wf["ci_model"] and "make static" in wf["ci_model"]
    assert "test_fairness.py" in wf["ci_model"] and "test_gates.py" in wf["ci_model"]
    assert "build-push-action" in wf["cd_staging"] and "CREDITOPS_PIPELINE_IMAGE" in wf["cd_staging"]
    assert "environment: production" in wf["cd_production"]
    assert "if: (failure() || cancelled())" in wf["cd_production"] and "rollback" in wf["cd_production"]


def test_bandit_clean_and_fails_on_an_unjustified_finding(tmp_path: Path) -> None:
    ok = run(
        BIN / "bandit",
        "-q",
        "-r",
        "src",
        "kserve",
        "feast_repo",
        "components",
        "pipelines",
        "tools",
        "manifests",
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "bad.py"
    bad.write_text("import subprocess\n\n\ndef f(cmd):\n    return subprocess.call(cmd, shell=True)\n")
    out = run(BIN / "bandit", "-q", bad)
    assert out.returncode != 0 and "B602" in out.stdout


def test_every_nosec_names_its_test_and_a_reason() -> None:
    offenders = []
    for top in ("src", "kserve", "feast_repo", "components", "pipelines", "tools", "manifests"):
        for path in (ROOT / top).rglob("*.py"):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if "# nosec" in line and not re.search(r"# nosec B\d{3}(, ?B\d{3})*  # \S", line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}")
    assert offenders == []


@pytest.mark.skipif(
    shutil.which("shellcheck") is None, reason="shellcheck not installed (.ci/run installs it)"
)
def test_shellcheck_clean_and_fails_on_a_bad_script(tmp_path: Path) -> None:
    ok = run("shellcheck", ".ci/run", "tools/static_checks.sh", "tools/build_checkov_env.sh")
    assert ok.returncode == 0, ok.stdout
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\ncd $1\nrm -rf $2/*\n")
    assert run("shellcheck", bad).returncode != 0


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (.ci/run installs prometheus)"
)
def test_alert_rules_pass_promtool_and_a_broken_rule_fails(tmp_path: Path) -> None:
    ok = run("promtool", "check", "rules", "manifests/base/prometheus/rules/creditops-alerts.yaml")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x[5m] > 1\n")
    assert run("promtool", "check", "rules", bad).returncode != 0


@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov venv not built: `make static` builds .venv-checkov")
def test_checkov_fails_on_insecure_input_of_each_framework(tmp_path: Path) -> None:
    # One checkov start for all four frameworks (its import alone takes seconds on a loaded machine).
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: x\nspec:\n  containers:\n"
        "    - name: c\n      image: nginx\n      securityContext:\n        privileged: true\n"
    )
    (tmp_path / "tf").mkdir()
    (tmp_path / "tf" / "main.tf").write_text(
        'resource "aws_db_instance" "db" {\n  engine = "postgres"\n  instance_class = "db.t4g.micro"\n'
        "  storage_encrypted = false\n  publicly_accessible = true\n}\n"
    )
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "Dockerfile").write_text("FROM python:latest\nRUN pip install flask\n")
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "w.yml").write_text(
        "on: push\npermissions: write-all\njobs:\n  a:\n    runs-on: ubuntu-24.04\n"
        "    steps:\n      - run: echo hi\n"
    )
    out = run(
        CHECKOV, "--skip-download", "--quiet", "--compact", "-o", "cli",
        "--framework", "kubernetes", "terraform", "dockerfile", "github_actions", "-d", tmp_path,
    )  # fmt: skip
    assert out.returncode != 0
    for check in ("CKV_K8S_16", "CKV_AWS_16", "CKV_DOCKER_7", "CKV2_GHA_1"):
        assert check in out.stdout, check
