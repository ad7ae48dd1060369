"""``creditops serve`` runs the predictor in the foreground: SIGTERM reaches it, it is reaped, port freed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from creditops.config import Settings
from creditops.serve_local import free_port, predictor_command
from predictor.testing import tiny_bundle

KSERVE_DIR = Path(__file__).resolve().parents[2] / "kserve"
LAUNCHER = (
    "import sys, json; from creditops.serve_local import run_foreground; "
    "sys.exit(run_foreground(*json.load(sys.stdin)))"
)


def test_sigterm_is_forwarded_and_the_server_reaped(tmp_path: Path) -> None:
    bundle = tiny_bundle(tmp_path / "bundle", n_trees=5)
    port = free_port()
    cmd = [
        sys.executable, "-m", "predictor", "--bundle", str(bundle), "--model-name", "credit",
        "--audit-url", f"sqlite:///{tmp_path}/audit.db", "--http-port", str(port), "--auth", "anonymous",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(KSERVE_DIR)}
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdin=subprocess.PIPE, env=env)
    launcher.stdin.write(json.dumps([cmd, env]).encode())
    launcher.stdin.close()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise AssertionError("server not ready")
        (server,) = psutil.Process(launcher.pid).children()
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=30) == 0
        assert not server.is_running() or server.status() == psutil.STATUS_ZOMBIE
        with socket.socket() as s:  # the port is free again
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()


def test_serve_command_passes_host_auth_and_workers(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {"workdir": str(tmp_path), "serving": {"host": "127.0.0.5", "workers": 3, "auth": {"mode": "jwt",
         "jwt_key_file": str(tmp_path / "k"), "jwt_algorithms": ["ES256"]}}}
    ).resolved()  # fmt: skip
    cmd, _ = predictor_command(settings, str(tmp_path), 9999)
    line = " ".join(cmd)
    assert "--host 127.0.0.5" in line and "--workers 3" in line and "--auth jwt" in line
    assert f"--jwt-key-file {tmp_path / 'k'}" in line and "--jwt-algorithm ES256" in line
    assert f"--audit-anchor {tmp_path}/audit.anchor" in line
