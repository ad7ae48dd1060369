"""``creditops retrain`` through the real CLI: bad input is refused in one line before any pipeline step."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "COLUMNS", "TTY_COMPATIBLE")}
    return subprocess.run(
        [sys.executable, "-m", "creditops.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--reason", "  "], "--reason"),
        (["--reason", "drift", "--window-months", "0"], "--window-months"),
        (["--reason", "drift", "--applicants", "10"], "n_applicants"),
    ],
)
def test_bad_input_is_one_line_naming_the_option(args: list[str], named: str, tmp_path: Path) -> None:
    done = run_cli("retrain", "--workdir", str(tmp_path / "w"), *args, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert named in done.stdout and "Traceback" not in done.stdout + done.stderr
    assert len(done.stdout.strip().splitlines()) == 1
    assert not (tmp_path / "w" / "kfp").exists()  # refused before any pipeline step


def test_reason_is_required(tmp_path: Path) -> None:
    done = run_cli("retrain", cwd=tmp_path)
    assert done.returncode == 2 and "--reason" in done.stderr
