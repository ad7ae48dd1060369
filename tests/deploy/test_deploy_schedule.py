"""KFP recurring runs: daily data at 02:00 UTC, monthly retraining, one at a time, no catch-up."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from deploy_helpers import ROOT
from pydantic import ValidationError

KFP_DIR = ROOT / "manifests" / "base" / "kfp"


def load_module():
    spec = importlib.util.spec_from_file_location("kfp_schedule", KFP_DIR / "schedule.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


schedule = load_module()


def test_recurring_runs_are_daily_data_and_monthly_retraining_without_overlap_or_catchup() -> None:
    sched = schedule.load_schedule(KFP_DIR / "recurring-runs.yaml")
    runs = {r.pipeline: r for r in sched.runs}
    assert runs["daily"].cron == "0 0 2 * * *"  # every day 02:00:00 UTC (KFP cron has seconds first)
    sec, minute, hour, dom, month, dow = runs["training"].cron.split()
    assert (dom, month, dow) == ("1", "*", "*")  # the first of every month
    for run in sched.runs:
        request = schedule.recurring_run_request(run, "exp-1", Path("/p.yaml"), '{"workdir": "/tmp"}')
        assert request["max_concurrency"] == 1 and request["no_catchup"] is True
        assert request["cron_expression"] == run.cron and request["params"] == {
            "config": '{"workdir": "/tmp"}'
        }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cron", "0 2 * * *", "six fields"),
        ("max_concurrency", 0, "max_concurrency"),
        ("pipeline", "scoring", "pipeline"),
        ("catchup", True, "catchup"),
    ],
)
def test_bad_schedule_is_refused(tmp_path: Path, field: str, value: object, message: str) -> None:
    raw = yaml.safe_load((KFP_DIR / "recurring-runs.yaml").read_text())
    raw["runs"][0][field] = value
    path = tmp_path / "runs.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValidationError, match=message):
        schedule.load_schedule(path)


def test_dry_run_compiles_both_pipelines_with_the_environment_settings() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(KFP_DIR / "schedule.py"),
            "--runs",
            str(KFP_DIR / "recurring-runs.yaml"),
            "--settings",
            str(ROOT / "manifests/base/settings.yaml"),
            "--dry-run",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    requests = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["job_name"] for r in requests] == ["creditops-daily-data", "creditops-monthly-retraining"]
    assert requests[0]["pipeline_package_path"].endswith("pipelines/daily.yaml")
    assert requests[1]["pipeline_package_path"].endswith("pipelines/training.yaml")
    assert all(r["max_concurrency"] == 1 and r["no_catchup"] for r in requests)


def test_daily_run_uses_the_daily_pipeline_package() -> None:
    from pipelines.daily import COMPILED

    assert schedule.package_path("daily") == COMPILED
    package = yaml.safe_load(COMPILED.read_text())
    tasks = package["root"]["dag"]["tasks"]
    assert {"ingest-data", "validate-data"} <= set(tasks)
