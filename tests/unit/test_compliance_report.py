"""The compliance report: every finding shown on input built to raise it, and its absence on clean input.

Real parts throughout: an MLflow registry on SQLite (register, promote), the deployment history, an audit
log written through the one decision path, and a monitoring run over it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from governance_helpers import FEATURES, PROTECTED, TARGET, make_bundle, make_frame

from creditops.artifact import load_bundle
from creditops.config import GatesConfig, load_config
from creditops.deploy.history import DeploymentHistory
from creditops.governance import registry
from creditops.governance.audit import TABLE, AuditLog
from creditops.governance.compliance import gather, render_compliance
from creditops.governance.gates import evaluate_gates
from creditops.monitoring.reference import ReferenceSet, load_reference, write_bundle_reference
from creditops.monitoring.run import run_monitoring
from creditops.monitoring.simulate import serve_to_audit
from creditops.monitoring.source import read_audit_decisions
from creditops.serving import audit_records, decide
from predictor.testing import embed_contract

T0 = pd.Timestamp("2026-06-01", tz="UTC")


@pytest.fixture
def platform(tmp_path: Any) -> dict[str, Any]:
    settings = load_config(None, {"workdir": str(tmp_path), "mlflow": {"model_name": "pd-model"}}).resolved()
    bundle_dir, test = make_bundle(tmp_path / "bundle", n=4000)
    embed_contract(bundle_dir)
    write_bundle_reference(bundle_dir, make_frame(4000, 0)[FEATURES], test, TARGET)
    bundle = load_bundle(bundle_dir)
    report = evaluate_gates(bundle, test, GatesConfig(), TARGET, PROTECTED)
    version = registry.register(bundle_dir, report, settings.mlflow.tracking_uri, "pd-model")
    apps = make_frame(1200, 5)
    ts = [T0 + pd.Timedelta(seconds=i * 60) for i in range(len(apps))]
    with AuditLog.open(settings.audit.url) as audit:
        serve_to_audit(bundle, apps, ts, audit)
    refs = ReferenceSet()
    refs.add(load_reference(bundle_dir))
    return {"settings": settings, "bundle": bundle, "version": version, "refs": refs, "apps": apps}


def facts_of(p: dict[str, Any]) -> Any:
    s = p["settings"]
    run = run_monitoring(read_audit_decisions(s.audit.url, FEATURES), p["refs"])
    return gather(s, run, owner="credit-risk-models")


def test_clean_platform_has_no_findings_and_the_report_shows_every_section(platform, tmp_path):
    facts = facts_of(platform)
    assert facts.findings == []
    assert [v["version"] for v in facts.inventory] == [platform["version"]]
    assert facts.inventory[0]["validation"] == "gates passed"
    assert facts.gate_history and facts.gate_history[-1]["passed"]
    (adverse,) = facts.adverse_action
    assert adverse["declines"] > 0 and adverse["coverage"] == 1.0
    assert facts.audit["records"] == 1200 and facts.audit["chains_ok"]
    assert facts.windows and facts.windows[0]["n"] == 1200
    html = render_compliance(facts, tmp_path / "c.html").read_text()
    for section in (
        "Model inventory",
        "Gate history",
        "Deployments and approvals",
        "Retraining decisions",
        "Adverse-action coverage",
        "Audit coverage",
        "Drift, back-test and fairness",
        "No findings",
    ):
        assert section in html  # fmt: skip


def test_a_decline_without_reasons_is_a_finding(platform):
    bundle, s = platform["bundle"], platform["settings"]
    rows = platform["apps"][FEATURES].to_numpy(dtype=np.float32)
    decisions = decide(bundle, rows)
    decline = int(np.flatnonzero(decisions.decision == "decline")[0])
    record = audit_records(decisions)[decline]
    with AuditLog.open(s.audit.url) as audit:
        audit.append([replace(record, explanation=[], prediction_id="no-reasons-1")])
    (finding,) = [f for f in facts_of(platform).findings if f.startswith("adverse action")]
    assert "1 of" in finding and "no-reasons-1" in finding


def test_a_tampered_audit_record_is_a_finding(platform):
    path = platform["settings"].audit.url[len("sqlite:///") :]
    with sqlite3.connect(path) as conn:
        conn.execute(f"DROP TRIGGER {TABLE}_no_update")  # an attacker with file access
        conn.execute(
            f"""UPDATE {TABLE} SET inputs = replace(inputs, '"income_k":', '"income_k":9') WHERE id = 7"""
        )
    facts = facts_of(platform)
    assert not facts.audit["chains_ok"]
    assert any(f.startswith("audit log: hash chain broken") for f in facts.findings)


def test_a_champion_without_a_recorded_approval_is_a_finding(platform):
    s, version = platform["settings"], platform["version"]
    registry.promote(s.mlflow.tracking_uri, "pd-model", version, promoted_by="someone")
    (finding,) = facts_of(platform).findings
    assert finding.startswith(f"inventory: champion v{version} has no recorded approval")
    DeploymentHistory(s.deploy.history_url).record(
        "prod", "pd-model", version, "approved", actor="risk-officer", reason="validated"
    )
    assert facts_of(platform).findings == []
