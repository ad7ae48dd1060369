"""``feast ui`` starts on the repo (it needs grpc_health / grpc_reflection, which Feast does not declare)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from creditops.serve_local import free_port, running_process
from feast_repo.store import feast_env

REPO = Path(__file__).resolve().parents[2] / "feast_repo"
FEAST = str(Path(sys.executable).with_name("feast"))


def test_feast_ui_serves_the_registry(tmp_path):
    env = {**os.environ, **feast_env(data_dir=tmp_path / "feast")}
    applied = subprocess.run([FEAST, "apply"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert applied.returncode == 0, applied.stderr[-2000:]
    port = free_port()
    cmd = [FEAST, "--chdir", str(REPO), "ui", "--host", "127.0.0.1", "--port", str(port)]
    with running_process(cmd, env, f"http://127.0.0.1:{port}/", tmp_path / "ui.log", 120):
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).status_code == 200
        projects = httpx.get(f"http://127.0.0.1:{port}/projects-list.json", timeout=30).json()
        assert [p["id"] for p in projects["projects"]] == [env["CREDITOPS_FEAST_PROJECT"]]
