"""The Prometheus alert rules pass ``promtool check rules`` and their unit tests (``promtool test rules``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

RULES_DIR = Path(__file__).resolve().parents[2] / "manifests" / "base" / "prometheus" / "rules"
RULES = RULES_DIR / "creditops-alerts.yaml"
TESTS = RULES_DIR / "creditops-alerts.test.yaml"
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found: install Debian's prometheus package (integrator: add "
    "`apt-get install -y --no-install-recommends prometheus` to .ci/run)",
)


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_rules_are_valid():
    result = _promtool("check", "rules", str(RULES), cwd=RULES_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass():
    result = _promtool("test", "rules", TESTS.name, cwd=RULES_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_fails(tmp_path):
    # the small-sample feature (PSI 0.40 under a critical value of 0.5) must NOT fire: expecting it fails
    shutil.copy(RULES, tmp_path / RULES.name)
    text = TESTS.read_text().replace("feature: income", "feature: age", 1)
    (tmp_path / TESTS.name).write_text(text)
    result = _promtool("test", "rules", TESTS.name, cwd=tmp_path)
    assert result.returncode != 0
    assert "CreditOpsFeatureDriftAct" in result.stdout + result.stderr


def test_every_alert_has_severity_and_runbook():
    import yaml

    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) >= 10
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["runbook"], rule["alert"]
