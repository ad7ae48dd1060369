"""The closed loop's wiring: a real monitoring run over a real audit log -> trigger inputs -> decision -> act.

The retraining pipeline itself runs in tests/integration (and the whole loop in tests/e2e); here the loop is
handed a retraining step that records its calls, so each rule can be shown on input built to pass or fail
it in seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from governance_helpers import FEATURES, make_bundle, make_frame

from creditops.artifact import load_bundle
from creditops.config import load_config
from creditops.deploy.history import DeploymentHistory
from creditops.governance.audit import AuditLog
from creditops.monitoring.alerts import Alert
from creditops.monitoring.loop import ENVIRONMENT, ReceivedAlerts, assess, close_loop, received_in
from creditops.monitoring.reference import ReferenceSet, load_reference, write_bundle_reference
from creditops.monitoring.run import run_monitoring
from creditops.monitoring.simulate import serve_to_audit
from creditops.monitoring.source import read_audit_decisions
from predictor.testing import embed_contract

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2026-06-01", tz="UTC")
NOW = datetime(2026, 6, 5, 12, tzinfo=UTC)
PER_DAY = 1500


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Four days served: days 0-1 as trained; ``drift_days`` at the end with utilisation shifted ~1 SD."""
    root = tmp_path_factory.mktemp("loop")
    bundle_dir, test = make_bundle(root / "bundle", n=6000)
    embed_contract(bundle_dir)
    write_bundle_reference(bundle_dir, make_frame(6000, 0).iloc[:4000][FEATURES], test, "defaulted")
    return {"root": root, "bundle": load_bundle(bundle_dir), "ref": load_reference(bundle_dir)}


def monitoring_run(served: dict[str, Any], name: str, drift_days: int) -> Any:
    apps = make_frame(4 * PER_DAY, 7)
    ts = np.array([T0 + DAY * (i // PER_DAY) + pd.Timedelta(seconds=i % PER_DAY) for i in range(len(apps))])
    first = (4 - drift_days) * PER_DAY
    apps.loc[first:, "utilisation"] = (apps.loc[first:, "utilisation"] + 0.3).clip(upper=1.5)
    url = f"sqlite:///{served['root'] / f'{name}.db'}"
    with AuditLog.open(url) as audit:
        serve_to_audit(served["bundle"], apps, ts, audit)
    refs = ReferenceSet()
    refs.add(served["ref"])
    return run_monitoring(read_audit_decisions(url, FEATURES), refs)


def settings_for(tmp_path: Any, **retraining: Any) -> Any:
    policy = {"schedule_days": None, "min_new_outcomes": 0, **retraining}
    return load_config(
        None, {"workdir": str(tmp_path), "monitoring": {"retraining": policy}, "mlflow": {"model_name": "m"}}
    ).resolved()


class Retrainer:
    """Stands in for the retraining pipeline run: records the reason, answers like a registered run."""

    def __init__(self, registered: str | None = "2") -> None:
        self.reasons: list[str] = []
        self.registered = registered

    def __call__(self, settings: Any, reason: str) -> dict[str, Any]:
        self.reasons.append(reason)
        gates = [{"name": "min_auc", "status": "pass" if self.registered else "fail"}]
        return {"registered_version": self.registered, "run_id": "r1", "gates": gates}


def test_two_drifted_windows_start_retraining_and_every_step_is_recorded(served, tmp_path):
    settings = settings_for(tmp_path)
    history = DeploymentHistory(settings.deploy.history_url)
    retrain = Retrainer()
    result = close_loop(settings, monitoring_run(served, "two", 2), history=history, now=NOW, retrain=retrain)
    assert result.decision.retrain, result.decision
    assert len(result.inputs.windows) == 4
    assert [bool(w) for w in result.inputs.alerts] == [False, False, True, True]
    assert len(retrain.reasons) == 1 and "FeatureDriftAct" in retrain.reasons[0]
    assert "feature=utilisation" in retrain.reasons[0] and "last 2 windows" in retrain.reasons[0]
    events = history.events(ENVIRONMENT, "m")
    assert [e.event for e in events] == ["retrain_decision", "retrain_started", "retrain_registered"]
    assert events[0].details["decision"]["retrain"] is True
    assert events[2].version == "2" and events[2].details["failed_gates"] == []
    assert result.events == ["retrain_decision", "retrain_started", "retrain_registered"]


def test_one_drifted_window_is_noise(served, tmp_path):
    settings = settings_for(tmp_path)
    retrain = Retrainer()
    result = close_loop(settings, monitoring_run(served, "one", 1), now=NOW, retrain=retrain)
    assert not result.decision.retrain and retrain.reasons == []
    assert [bool(w) for w in result.inputs.alerts] == [False, False, False, True]


def test_cooldown_keeps_a_second_turn_from_retraining_again(served, tmp_path):
    settings = settings_for(tmp_path, cooldown_days=7)
    history = DeploymentHistory(settings.deploy.history_url)
    run = monitoring_run(served, "cool", 2)
    retrain = Retrainer()
    first = close_loop(settings, run, history=history, now=NOW, retrain=retrain)
    assert first.decision.retrain
    second = close_loop(
        settings, run, history=history, now=datetime.now(UTC) + timedelta(hours=1), retrain=retrain
    )
    assert not second.decision.retrain and len(retrain.reasons) == 1
    assert any(b.startswith("cooldown") for b in second.decision.blockers)


def test_too_few_new_outcomes_block_and_a_dry_run_starts_nothing(served, tmp_path):
    run = monitoring_run(served, "block", 2)
    settings = settings_for(tmp_path, min_new_outcomes=10)
    outcomes = tmp_path / "outcomes"
    outcomes.mkdir()
    pd.DataFrame(
        {"applicant_id": ["a", "b"], "outcome_date": pd.to_datetime(["2026-06-02", "2026-06-03"], utc=True),
         "defaulted": [0, 1]}
    ).to_parquet(outcomes / "outcomes.parquet")  # fmt: skip
    retrain = Retrainer()
    blocked = close_loop(settings, run, now=NOW, retrain=retrain)
    assert not blocked.decision.retrain and retrain.reasons == []
    assert blocked.decision.blockers == ["only 2 new labelled outcomes (< 10)"]
    dry = close_loop(settings_for(tmp_path / "dry"), run, now=NOW, retrain=None)
    assert dry.decision.retrain and dry.events == ["retrain_decision"] and dry.retraining is None


def test_a_rejected_challenger_is_recorded_and_never_canaried(served, tmp_path):
    settings = settings_for(tmp_path)
    history = DeploymentHistory(settings.deploy.history_url)
    canaried: list[str] = []
    result = close_loop(
        settings, monitoring_run(served, "rejected", 2), history=history, now=NOW,
        retrain=Retrainer(registered=None), canary=lambda s, v: canaried.append(v),
    )  # fmt: skip
    assert result.events[-1] == "retrain_rejected" and canaried == []
    assert history.events(ENVIRONMENT, "m")[-1].details["failed_gates"] == ["min_auc"]


def test_registered_challenger_goes_to_the_canary_with_approval_required(served, tmp_path):
    settings = settings_for(tmp_path)
    seen: list[tuple[str, bool]] = []

    class Done:
        outcome = "promoted"

    def canary(s: Any, version: str) -> Done:
        seen.append((version, s.deploy.auto_promote))
        return Done()

    result = close_loop(
        settings, monitoring_run(served, "canary", 2), now=NOW, retrain=Retrainer(), canary=canary
    )
    assert seen == [("2", False)] and result.events[-1] == "canary_promoted"
    auto = settings_for(tmp_path / "auto", auto_promote=True)
    close_loop(auto, monitoring_run(served, "canary", 2), now=NOW, retrain=Retrainer(), canary=canary)
    assert seen[-1] == ("2", True)


def prometheus_alert(starts: str, status: str = "firing", ends: str = "0001-01-01T00:00:00Z") -> Alert:
    return Alert.from_alertmanager(
        {"status": status, "startsAt": starts, "endsAt": ends,
         "labels": {"alertname": "CreditOpsFeatureDriftAct", "severity": "critical", "feature": "income",
                    "model_version": "m@3", "retrain": "true"}}
    )  # fmt: skip


def test_received_alerts_count_in_every_window_they_fired_in(tmp_path):
    start, end = pd.Timestamp("2026-06-03", tz="UTC"), pd.Timestamp("2026-06-04", tz="UTC")
    assert [a.name for a in received_in([prometheus_alert("2026-06-01T10:00:00Z")], start, end)] == [
        "FeatureDriftAct"
    ]
    assert received_in([prometheus_alert("2026-06-04T10:00:00Z")], start, end) == []  # began later
    over = prometheus_alert("2026-06-01T10:00:00Z", "resolved", "2026-06-02T10:00:00Z")
    assert received_in([over], start, end) == []  # resolved before the window
    during = prometheus_alert("2026-06-01T10:00:00Z", "resolved", "2026-06-03T10:00:00Z")
    assert len(received_in([during], start, end)) == 1
    store = ReceivedAlerts(tmp_path / "received.jsonl")
    store.append([prometheus_alert("2026-06-01T10:00:00Z")])
    store.append([during])  # the same alert, now resolved: the newest state wins
    assert [a.status for a in store.read()] == ["resolved"]


def test_alertmanager_alerts_alone_can_trigger(tmp_path):
    """No served decisions in this run: the windows come from the received alerts, up to now."""
    settings = settings_for(tmp_path)
    began = (pd.Timestamp.now(tz="UTC") - 2 * DAY).strftime("%Y-%m-%dT%H:%M:%SZ")
    from creditops.monitoring.run import MonitoringRun

    empty = MonitoringRun(windows=[], references={})
    history = DeploymentHistory(settings.deploy.history_url)
    inputs = assess(settings, empty, history, received=[prometheus_alert(began)])
    assert len(inputs.windows) >= 3 and all(inputs.alerts)
    retrain = Retrainer()
    result = close_loop(settings, empty, history=history, received=[prometheus_alert(began)], retrain=retrain)
    assert result.decision.retrain and "FeatureDriftAct (feature=income" in retrain.reasons[0]
    late = prometheus_alert(pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"))
    fresh = settings_for(tmp_path / "fresh")
    assert not close_loop(fresh, empty, received=[late], retrain=Retrainer()).decision.retrain


def test_a_fresh_champion_counts_as_trained_when_it_was_registered(tmp_path):
    from creditops.monitoring.loop import retraining_state

    history = DeploymentHistory(f"sqlite:///{tmp_path / 'h.db'}")
    registered = datetime(2026, 6, 2, tzinfo=UTC)
    outcomes = pd.DataFrame(
        {"outcome_date": pd.to_datetime(["2026-06-01", "2026-06-03", "2026-06-04"], utc=True)}
    )
    assert retraining_state(history, "m", outcomes) == (None, 3)
    assert retraining_state(history, "m", outcomes, registered) == (registered, 2)
    history.record(ENVIRONMENT, "m", "1", "retrain_started", ts="2026-06-03T12:00:00Z")
    last, new = retraining_state(history, "m", outcomes, registered)
    assert last == datetime(2026, 6, 3, 12, tzinfo=UTC) and new == 1


def test_cli_trigger_is_a_dry_run_unless_told_and_receive_needs_a_token(
    served, tmp_path, capsys, monkeypatch
):
    import yaml

    from creditops import cli

    monitoring_run(served, "cli", 2)  # writes the audit log
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "workdir": str(tmp_path), "mlflow": {"model_name": "m"},
        "monitoring": {"retraining": {"schedule_days": None, "min_new_outcomes": 0}},
    }))  # fmt: skip
    audit = f"sqlite:///{served['root'] / 'cli.db'}"
    bundle = str(served["bundle"].path)
    code = cli.main(
        ["--config", str(config), "monitor", "trigger", "--reference", bundle, "--audit-url", audit]
    )
    out = capsys.readouterr().out
    assert code == 0 and "retrain" in out and "dry run: nothing started" in out
    (event,) = DeploymentHistory(f"sqlite:///{tmp_path / 'deployments.db'}").events(ENVIRONMENT)
    assert event.event == "retrain_decision" and event.details["dry_run"] is True
    monkeypatch.delenv("CREDITOPS_ALERT_TOKEN", raising=False)
    assert cli.main(["--config", str(config), "monitor", "receive", "--retrain", "--port", "0"]) == 2
    assert "--retrain starts retraining" in capsys.readouterr().out
