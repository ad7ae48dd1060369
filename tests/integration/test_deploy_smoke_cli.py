"""``creditops deploy smoke`` against live predictors on loopback ports (a good one and a failing one)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from creditops.cli import main
from creditops.deploy.local import free_port, model_server, predictor_command
from predictor.testing import tiny_bundle

MODEL = "credit"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("smoke")
    audit_url = f"sqlite:///{root / 'audit.db'}"
    bundle = tiny_bundle(root / "v1", seed=0)

    def server(name: str, launcher: tuple[str, ...] = ("-m", "predictor")) -> Any:
        return model_server(
            lambda port: predictor_command(str(bundle), audit_url, port, MODEL, launcher=launcher),
            MODEL,
            root / f"{name}.log",
            timeout_s=600,
        )

    with server("good") as good, server("bad", ("-m", "router.faults", "--error-rate", "1.0", "--")) as bad:
        yield {"good": good, "bad": bad, "root": root}


def smoke(tmp_path: Path, *args: str) -> int:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"workdir": str(tmp_path / "work")}))
    return main(["--config", str(config), "deploy", "smoke", "--model-name", MODEL, *args])


def test_a_good_endpoint_passes_and_is_recorded(
    servers: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert smoke(tmp_path, "--url", servers["good"], "--env", "staging", "--version", "7") == 0
    out = capsys.readouterr().out
    for check in ("ready", "predict", "bad_request_is_4xx"):
        assert f"smoke {check}: pass" in out
    assert "3/3 valid answers" in out
    with sqlite3.connect(tmp_path / "work" / "deployments.db") as conn:
        rows = conn.execute("SELECT environment, version, event FROM deployment_history").fetchall()
    assert rows == [("staging", "7", "smoke_passed")]


def test_a_failing_endpoint_fails(
    servers: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert smoke(tmp_path, "--url", servers["bad"]) == 1
    out = capsys.readouterr().out
    assert "smoke predict: FAIL" in out and "smoke ready: pass" in out


def test_nothing_listening_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke(tmp_path, "--url", f"http://127.0.0.1:{free_port()}") == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: smoke test of http://127.0.0.1:")
    assert "ConnectError" in lines[0]


def test_no_url_and_no_isvc_names_the_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke(tmp_path) == 2
    assert "--url, or --namespace and --isvc" in capsys.readouterr().out
