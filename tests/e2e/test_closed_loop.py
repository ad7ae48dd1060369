"""The closed loop end to end (bench/closed_loop.py --quick, about 6-10 minutes on this machine).

A served champion, a stream of applications with injected drift through it, monitoring windows over the
audit log, the trigger policy, the retraining pipeline on the KFP local runner, a gated challenger, a canary
on the local router under the same stream, an approval recorded by another actor with the real CLI, and
the champion alias moved: every step must be in the deployment history in that order, and every answer in
the audit log with intact chains.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess  # nosec B404  # runs our own bench script from an argv list
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from creditops.governance.audit import TABLE, AuditLog
from creditops.governance.registry import tracking_uri_for

ROOT = Path(__file__).resolve().parents[2]

ORDER = [
    "training:retrain_decision",
    "training:retrain_started",
    "training:retrain_registered",
    "prod:canary_started",
    "prod:step",
    "prod:awaiting_approval",
    "prod:approved",
    "prod:promoted",
]


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workdir = tmp_path_factory.mktemp("closed-loop")
    proc = subprocess.run(  # nosec B603  # fixed argv
        [sys.executable, str(ROOT / "bench" / "closed_loop.py"), "--quick", "--workdir", str(workdir)],
        capture_output=True, text=True, timeout=2400, cwd=ROOT, check=False,
    )  # fmt: skip
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr[-3000:]
    try:
        out = json.loads(lines[-1])
    except json.JSONDecodeError:
        pytest.fail(f"no result line (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    out["returncode"] = proc.returncode
    return out


def test_drift_alerts_persist_and_start_retraining(drill: dict[str, Any]) -> None:
    decision = drill["decision"]
    assert decision["retrain"], drill["checks"]
    assert any("FeatureDriftAct" in r and "credit_score" in r for r in decision["reasons"]), decision
    assert decision["blockers"] == [] and decision["promotion_requires_approval"]
    # the check before the one that retrained saw at most one drifted window: one window is noise
    assert not any(c["retrain"] for c in drill["checks"][:-1])


def test_challenger_is_canaried_approved_and_becomes_champion(drill: dict[str, Any]) -> None:
    assert drill["returncode"] == 0 and drill["promoted"], drill["history"]
    assert drill["new_champion"] != drill["old_champion"]
    assert drill["approved_by_officer"] == [drill["new_champion"]]
    assert drill["champion_stream"]["requests"] > 0 and drill["champion_stream"]["client_errors"] == 0


def test_every_step_is_in_the_history_in_order(drill: dict[str, Any]) -> None:
    seen = [f"{h['env']}:{h['event']}" for h in drill["history"]]
    positions = [seen.index(step) for step in ORDER]
    assert positions == sorted(positions), seen
    started = next(h for h in drill["history"] if h["event"] == "canary_started")
    # judged against the score shift the retraining pipeline validated against this champion
    assert started["details"]["validated_score_psi"] is not None
    assert started["details"]["psi_threshold"] > started["details"]["validated_score_psi"]
    approved = next(h for h in drill["history"] if h["event"] == "approved")
    assert approved["actor"] == "risk-officer" and approved["version"] == drill["new_champion"]
    timeline = drill["timeline_s"]
    assert 0 < timeline["first_alert"] <= timeline["training:retrain_started"] < timeline["prod:promoted"]


def test_reason_is_on_the_version_and_every_answer_is_audited(drill: dict[str, Any]) -> None:
    workdir = Path(drill["workdir"])
    uri = tracking_uri_for(f"sqlite:///{workdir / 'mlflow.db'}")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    tags = client.get_model_version("credit-pd", drill["new_champion"]).tags
    assert "FeatureDriftAct" in tags["retraining.reason"]
    with AuditLog.open(f"sqlite:///{workdir / 'audit.db'}") as audit:
        report = audit.verify()
    assert report.ok, report.reason
    with sqlite3.connect(workdir / "audit.db") as conn:
        versions = {v for (v,) in conn.execute(f"SELECT DISTINCT model_version FROM {TABLE}")}  # nosec B608
    assert {f"credit-pd@{drill['old_champion']}", f"credit-pd@{drill['new_champion']}"} <= versions
